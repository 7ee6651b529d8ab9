from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self):
        from django.core import checks

        # Registers the OpenAPI description of the master key's authentication with drf-spectacular.
        from gateway import schema  # noqa: F401
        from gateway.directory import Deployments
        from gateway.security import check_master_key
        from pricing.deployments import register_deployments

        # keys and spend ask about deployments through pricing.deployments, never by importing gateway.
        register_deployments(Deployments())

        # `serve` (and every management command) refuses a short or well-known master key outside DEBUG.
        checks.register(check_master_key, checks.Tags.security)
