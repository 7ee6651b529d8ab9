"""Which price a deployment is charged at: the spec's decision tree, pure Python.

custom pricing (model_info / admin) → base_model's cost-map entry → the deployment's own model in the cost map
(with the provider prefix, then without) → unpriced.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from pricing.costmap import lookup

SOURCE_CUSTOM = "custom"
SOURCE_BASE_MODEL = "base_model"
SOURCE_COST_MAP = "cost_map"
SOURCE_UNPRICED = "unpriced"

_PRICE_KEYS = ("input_cost_per_token", "output_cost_per_token", "input_cost_per_second", "output_cost_per_second")


@dataclass(frozen=True, slots=True)
class ResolvedPrice:
    """The price entry a deployment is charged at, and where it came from."""

    entry: Mapping[str, Decimal]
    source: str
    matched: str  # the cost-map key used, or "" for custom / unpriced
    version: str  # the cost-map version or custom pricing revision the price belongs to

    @property
    def priced(self) -> bool:
        return self.source != SOURCE_UNPRICED


def has_custom_pricing(custom: Mapping) -> bool:
    return any(custom.get(key) is not None for key in _PRICE_KEYS)


def resolve_price(
    *,
    custom: Mapping[str, Decimal],
    custom_version: str,
    base_model: str,
    provider: str,
    model: str,
    cost_map: Mapping[str, Mapping],
    cost_map_version: str,
) -> ResolvedPrice:
    # Custom pricing is the whole price: a cache rate it leaves out falls back to its own input rate, never to
    # a cost-map rate the admin did not negotiate.
    if has_custom_pricing(custom):
        return ResolvedPrice(dict(custom), SOURCE_CUSTOM, "", custom_version)
    if base_model:
        found = lookup(cost_map, base_model, None)
        if found is not None:
            return ResolvedPrice(found[1], SOURCE_BASE_MODEL, found[0], cost_map_version)
    found = lookup(cost_map, model, provider)
    if found is not None:
        return ResolvedPrice(found[1], SOURCE_COST_MAP, found[0], cost_map_version)
    return ResolvedPrice({}, SOURCE_UNPRICED, "", cost_map_version)
