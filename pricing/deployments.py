"""Where the apps below gateway find deployments, which gateway owns: an interface here, gateway's answer behind it.

keys checks that a key's aliases name model groups, spend prices /spend/calculate and reprices by deployment, and
neither may import gateway (or reach it through `apps.get_model`, which hides the dependency instead of removing
it). They call `deployments()`; gateway registers the directory that answers when its app is ready.
"""

from collections.abc import Collection, Iterable
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured

from pricing.resolve import PricedDeployment


class DeploymentDirectory(Protocol):
    """What the lower apps ask about deployments (gateway.directory.Deployments answers it)."""

    def model_groups(self, names: Collection[str]) -> set[str]:
        """Which of `names` are model groups (some deployment's model_name)."""
        ...

    def first_in_group(self, model_group: str) -> PricedDeployment | None:
        """The group's first deployment (the one made first), or None when no deployment serves it."""
        ...

    def every_deployment(self) -> Iterable[PricedDeployment]:
        """Every deployment, enabled or not."""
        ...


_directory: DeploymentDirectory | None = None


def register_deployments(directory: DeploymentDirectory) -> None:
    """Make `directory` the one `deployments()` returns (gateway's AppConfig.ready)."""
    global _directory
    _directory = directory


def deployments() -> DeploymentDirectory:
    if _directory is None:
        raise ImproperlyConfigured("No deployment directory is registered: gateway must be in INSTALLED_APPS.")
    return _directory
