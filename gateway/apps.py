from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self):
        # Registers the OpenAPI description of the master key's authentication with drf-spectacular.
        from gateway import schema  # noqa: F401
