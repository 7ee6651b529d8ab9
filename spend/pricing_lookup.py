"""The price a model group is charged at, resolved as the proxy resolves it (for /spend/calculate)."""

from pricing import store
from pricing.deployments import deployments
from pricing.resolve import ResolvedPrice, resolve_deployment_price, resolve_price


def price_of_model(model: str) -> ResolvedPrice:
    """The price of the group's first deployment (custom price, base model, cost map), or of the cost-map entry
    named ``model`` when no deployment serves it."""
    cost_map = store.load_active_cost_map()
    deployment = deployments().first_in_group(model)
    if deployment is None:
        return resolve_price(
            custom={}, custom_version="", base_model="", provider="", model=model,
            cost_map=cost_map.entries, cost_map_version=cost_map.version,
        )  # fmt: skip
    return resolve_deployment_price(deployment, cost_map.entries, cost_map.version)
