from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self):
        from django.core import checks
        from django.db.models.signals import post_migrate

        # Registers the OpenAPI description of the master key's authentication with drf-spectacular.
        from gateway import audit, schema  # noqa: F401
        from gateway.directory import Deployments
        from gateway.roles import sync_roles_after_migrate
        from gateway.security import check_master_key
        from pricing.deployments import register_deployments

        # keys and spend ask about deployments through pricing.deployments, never by importing gateway.
        register_deployments(Deployments())

        # `serve` (and every management command) refuses a short or well-known master key outside DEBUG.
        checks.register(check_master_key, checks.Tags.security)

        # The roles' groups follow every migrate, so models added later (customers, budgets) join the roles.
        post_migrate.connect(sync_roles_after_migrate, sender=self)

        # People's changes land in the audit trail (gateway/audit.py).
        audit.connect_receivers()
