"""The routing table a server process serves from: deployments, their providers and prices, held in memory.

Built from the database off the event loop; replaced whole (never edited) when the routing version or the
active cost map changes, so a request sees one consistent table. Wildcard deployments (`model_name: "openai/*"`)
are kept apart, in gateway.proxy.wildcards, and serve the names no exact group has.
"""

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway import secrets
from gateway.models import Deployment, RouterSettings
from gateway.providers import get_provider
from gateway.providers.base import Provider, Target
from gateway.proxy.router import RouterConfig
from gateway.proxy.wildcards import WildcardRoutes, access_groups_of, is_wildcard
from pricing.active import ActiveCostMap
from pricing.resolve import ResolvedPrice, resolve_deployment_price
from pricing.revisions import latest_revision_labels


@dataclass(frozen=True, slots=True)
class RoutedDeployment:
    """One deployment as the hot path needs it: provider, target, limits and its resolved price."""

    model_id: str
    model_name: str
    litellm_model: str
    provider: Provider
    target: Target
    # What may be shown of target.api_base (response headers, spend logs, /health): credentials in it stay here.
    public_api_base: str
    timeout: float | None
    rpm: int | None
    tpm: int | None
    weight: int | None
    price: ResolvedPrice
    max_output_tokens: int | None
    prices: Mapping[str, str] = field(default_factory=dict)  # price.snapshot(), made once: every log keeps it
    price_key: str = ""  # names this price in the spend journal while the table lasts
    access_groups: frozenset[str] = frozenset()  # model_info.access_groups: a key listing one may call this group
    # The reservation bounds already priced at this deployment, by their exact inputs (gateway.proxy.service's
    # worst_case_cost): made new with the deployment, so it never outlives the price it was computed at.
    worst_costs: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class RoutingTable:
    version: int
    cost_map_version: str
    groups: Mapping[str, tuple[RoutedDeployment, ...]]
    config: RouterConfig = field(default_factory=RouterConfig)
    wildcards: WildcardRoutes = field(default_factory=WildcardRoutes)

    def group(self, name: str) -> tuple[RoutedDeployment, ...]:
        """The deployments serving a model name: its exact group, else the most specific wildcard matching it."""
        exact = self.groups.get(name)
        return exact if exact is not None else self.wildcards.route(name)

    def access_groups(self, name: str) -> frozenset[str]:
        """The access groups through which a key may call `name`: those of any deployment serving it."""
        return access_groups_of(self.group(name))

    def listed_models(self, *, wildcard_routes: bool = False) -> dict[str, frozenset[str]]:
        """What /v1/models lists, each name with its access groups: every exact group and the known models each
        wildcard serves (with `wildcard_routes`, the wildcards themselves too), as LiteLLM's does."""
        listed = self.wildcards.listed(routes=wildcard_routes)
        listed.update((name, access_groups_of(deployments)) for name, deployments in self.groups.items())
        return listed


def _routed(
    deployment: Deployment,
    cost_map: ActiveCostMap,
    revision_labels: Mapping[str, str],
    served_model: str = "",
) -> RoutedDeployment:
    """The deployment as the hot path needs it; `served_model`, for a wildcard deployment, is the litellm model one
    requested name became: the deployment calls and is priced as that model."""
    if served_model:
        deployment = copy.copy(deployment)
        deployment.litellm_model = served_model
    provider_name = deployment.provider
    provider = get_provider(provider_name)
    extra = {
        key: secrets.unseal(value) if isinstance(value, str) else value
        for key, value in deployment.extra_params.items()
    }
    target = Target(
        provider=provider_name,
        model=deployment.provider_model,
        # As LiteLLM: what the deployment does not name comes from the provider's environment variables.
        api_base=secrets.unseal(deployment.api_base) or provider.environment_api_base(),
        api_key=secrets.unseal(deployment.api_key) or provider.environment_api_key(),
        api_version=deployment.api_version or None,
        extra=extra,
    )
    price = resolve_deployment_price(
        deployment,
        cost_map.entries,
        cost_map.version,
        custom_version=revision_labels.get(deployment.model_id, f"deployment:{deployment.model_id}"),
    )
    max_output = price.entry.get("max_output_tokens") or price.entry.get("max_tokens")
    return RoutedDeployment(
        model_id=deployment.model_id,
        model_name=deployment.model_name,
        litellm_model=deployment.litellm_model,
        provider=provider,
        target=target,
        public_api_base=public_url(target.api_base or ""),
        timeout=deployment.timeout,
        rpm=deployment.rpm,
        tpm=deployment.tpm,
        weight=deployment.weight,
        price=price,
        max_output_tokens=_whole_number(max_output),
        prices=price.snapshot(),
        # A wildcard deployment has one price per model it serves: each needs its own name in the journal.
        price_key=f"{deployment.model_id}{':' + served_model if served_model else ''}@{price.version}",
        access_groups=frozenset(deployment.access_groups),
    )


def shown_api_base(stored: str) -> str:
    """A stored api_base as /model/info and the admin show it: an os.environ/ reference as written (it names the
    variable, not the value), anything else as its public_url."""
    if stored.startswith(secrets.ENV_PREFIX):
        return stored
    return public_url(secrets.unseal(stored))


# Query parameters that never hold a secret; any other value may (Azure Functions' `code`, `key`, `sig`, `token`...).
_SHOWN_QUERY_PARAMETERS = frozenset({"api-version", "api_version"})


def public_url(url: str) -> str:
    """What may be shown of an upstream address: scheme, host, port and path. An api_base may carry credentials
    (`user:password@`, a key or signature in the query) that must reach the upstream and nobody else: the user part
    is shown as `***@`, every query value but the API version as `***`, the fragment not at all; an address that
    cannot be read that way is shown as `***`."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises for a port that is not a number ("http://user:password/v1")
    except ValueError:
        return "***"
    if not parts.scheme or not parts.netloc:
        return "***"
    _user, at, host = parts.netloc.rpartition("@")
    shown = f"{parts.scheme}://{'***@' if at else ''}{host}{parts.path}"
    if parts.query:
        shown += "?" + "&".join(_public_parameter(item) for item in parts.query.split("&"))
    return shown


def _public_parameter(item: str) -> str:
    name, equals, _value = item.partition("=")
    if not equals:
        return "***"  # a bare token: its name may be the secret
    return item if name.lower() in _SHOWN_QUERY_PARAMETERS else f"{name}=***"


def _whole_number(value) -> int | None:
    """A cost-map token count as an int; None where the entry has none (or something that is not a number)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def build_routing_table(version: int, cost_map: ActiveCostMap) -> RoutingTable:
    """Read deployments and router settings (synchronous ORM: call it off the event loop)."""
    router = RouterSettings.load()
    groups: dict[str, list[RoutedDeployment]] = {}
    # Not the deployments a config named with a provider Tollgate has no adapter for, even if enabled by hand.
    deployments = list(Deployment.objects.filter(enabled=True, disabled_reason="").order_by("model_name", "id"))
    revision_labels = latest_revision_labels(deployment.model_id for deployment in deployments)
    patterns: dict[str, list[Deployment]] = {}
    for deployment in deployments:
        if is_wildcard(deployment.model_name):
            patterns.setdefault(deployment.model_name, []).append(deployment)
        else:
            groups.setdefault(deployment.model_name, []).append(_routed(deployment, cost_map, revision_labels))
    fallbacks: dict[str, tuple[str, ...]] = {}
    for item in router.fallbacks or []:
        for group, targets in item.items():
            fallbacks[group] = tuple(targets)
    config = RouterConfig(
        num_retries=router.num_retries,
        timeout=router.timeout,
        cooldown_time=router.cooldown_time,
        allowed_fails=router.allowed_fails,
        fallbacks=fallbacks,
        routing_strategy=router.routing_strategy,
        routing_strategy_args=router.routing_strategy_args or {},
    )
    return RoutingTable(
        version=version,
        cost_map_version=cost_map.version,
        groups={name: tuple(items) for name, items in groups.items()},
        config=config,
        wildcards=WildcardRoutes(
            patterns,
            lambda deployment, served_model: _routed(deployment, cost_map, revision_labels, served_model),
            cost_map.entries,
        ),
    )
