"""gateway's answer to pricing.deployments.DeploymentDirectory: the lower apps' view of the Deployment table."""

from collections.abc import Collection, Iterable

from gateway.models import Deployment


class Deployments:
    """Deployments as keys and spend may ask about them (registered in GatewayConfig.ready)."""

    def model_groups(self, names: Collection[str]) -> set[str]:
        found = Deployment.objects.filter(model_name__in=set(names)).values_list("model_name", flat=True)
        return set(found.distinct())

    def first_in_group(self, model_group: str) -> Deployment | None:
        return Deployment.objects.filter(model_name=model_group).order_by("pk").first()

    def every_deployment(self) -> Iterable[Deployment]:
        return Deployment.objects.all()
