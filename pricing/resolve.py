"""Which price a deployment is charged at: the spec's decision tree, pure Python.

custom pricing (model_info / admin) → base_model's cost-map entry → the deployment's own model in the cost map
(with the provider prefix, then without) → unpriced.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from pricing.calculator import format_money
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

    def snapshot(self) -> dict[str, str]:
        """The prices a spend log keeps (its ``prices``): each top-level price as an exact decimal string."""
        return {key: format_money(value) for key, value in self.entry.items() if isinstance(value, Decimal)}


@dataclass(slots=True)
class Step:
    """One rung of the decision tree as a resolution walked it (for ``manage.py cost --explain``)."""

    source: str
    detail: str
    tried: list[tuple[str, bool]] = field(default_factory=list)  # cost-map keys looked up, and whether found
    matched: bool = False


class PricedDeployment(Protocol):
    """What resolution reads from a deployment (gateway.models.Deployment has it; pricing does not import it)."""

    model_id: str
    base_model: str
    provider: str
    provider_model: str

    def custom_pricing(self) -> Mapping[str, Decimal]: ...


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
    trace: list[Step] | None = None,
) -> ResolvedPrice:
    """The price, by the decision tree. ``trace``, when given, receives the steps taken, in order."""
    record = trace.append if trace is not None else _discard
    # Custom pricing is the whole price: a cache rate it leaves out falls back to its own input rate, never to
    # a cost-map rate the admin did not negotiate.
    if has_custom_pricing(custom):
        record(Step(SOURCE_CUSTOM, ", ".join(sorted(key for key in custom if custom[key] is not None)), matched=True))
        return ResolvedPrice(dict(custom), SOURCE_CUSTOM, "", custom_version)
    record(Step(SOURCE_CUSTOM, "no custom input/output price (per token or per second) set"))
    if base_model:
        found = _lookup(cost_map, base_model, None, trace, SOURCE_BASE_MODEL, f"base_model {base_model!r}")
        if found is not None:
            return ResolvedPrice(found[1], SOURCE_BASE_MODEL, found[0], cost_map_version)
    else:
        record(Step(SOURCE_BASE_MODEL, "no base_model set"))
    found = _lookup(cost_map, model, provider, trace, SOURCE_COST_MAP, f"model {model!r}, provider {provider!r}")
    if found is not None:
        return ResolvedPrice(found[1], SOURCE_COST_MAP, found[0], cost_map_version)
    record(Step(SOURCE_UNPRICED, "no price found: charged 0", matched=True))
    return ResolvedPrice({}, SOURCE_UNPRICED, "", cost_map_version)


def resolve_deployment_price(
    deployment: PricedDeployment,
    cost_map: Mapping[str, Mapping],
    cost_map_version: str,
    *,
    custom_version: str = "",
    trace: list[Step] | None = None,
) -> ResolvedPrice:
    """A deployment's price, as the gateway's routing table resolves it."""
    return resolve_price(
        custom=deployment.custom_pricing(),
        custom_version=custom_version or f"deployment:{deployment.model_id}",
        base_model=deployment.base_model,
        provider=deployment.provider,
        model=deployment.provider_model,
        cost_map=cost_map,
        cost_map_version=cost_map_version,
        trace=trace,
    )


def _lookup(cost_map, model, provider, trace, source, detail):
    if trace is None:
        return lookup(cost_map, model, provider)
    probe = _ProbedMap(cost_map)
    found = lookup(probe, model, provider)
    trace.append(Step(source, detail, probe.tried, matched=found is not None))
    return found


class _ProbedMap(Mapping):
    """A cost map that remembers which keys ``lookup`` asked for, so --explain shows the real lookup's steps."""

    def __init__(self, entries: Mapping):
        self._entries = entries
        self.tried: list[tuple[str, bool]] = []

    def __contains__(self, key) -> bool:
        found = key in self._entries
        self.tried.append((key, found))
        return found

    def __getitem__(self, key):
        return self._entries[key]

    def __iter__(self) -> Iterator:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _discard(step: Step) -> None:
    pass
