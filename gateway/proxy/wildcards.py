"""Wildcard deployments, LiteLLM's provider-specific wildcard routing: `model_name: "openai/*"` with
`litellm_params.model: "openai/*"` serves any `openai/<model>` a client asks for. What the `*` of the model name
matched takes the place of the `*` in litellm_params.model: that is the model the upstream is called with, and the
model the call is priced as (the cost map under the provider's prefix), so `openai/gpt-4o-mini` through `openai/*`
costs what gpt-4o-mini costs.

Exact model groups are looked up first (RoutingTable.group); then the patterns, most specific first (the longest,
as LiteLLM sorts them), so `openai/gpt-4*` wins over `openai/*`, which wins over `*`. A requested name is resolved
once per table: the deployments it makes (provider, target, price) are kept, so a call neither searches the
patterns nor looks up the cost map again. The cache is bounded: a client cycling through made-up names evicts the
oldest, it does not grow the process.
"""

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from gateway.providers import unservable_reason

_RESOLVED_LIMIT = 4096
# What the `*` of a name may match. Some providers put the model in the upstream URL's path (Gemini, Vertex AI):
# a name the operator wrote is trusted, a part a client chose is not. Letters, digits and the punctuation model
# ids use (ft:..., llama3:8b, claude-...@2024..., accounts/x/models/y, ARNs) pass; `..`, `?`, `#`, `%`, spaces and
# control characters would let a client reach another path of the upstream with the deployment's credentials.
_SAFE_PART = re.compile(r"[A-Za-z0-9._:/@+-]*")


def is_wildcard(model_name: str) -> bool:
    return "*" in model_name


def pattern_regex(pattern: str) -> re.Pattern:
    """A model-name pattern as a regular expression: each `*` captures any text, everything else is literal."""
    return re.compile(re.escape(pattern).replace(r"\*", "(.*)"))


def served_model(litellm_model: str, parts: Sequence[str], requested: str) -> str:
    """The litellm model a requested name becomes: each `*` of `litellm_model` replaced, in order, by what the
    model name's wildcards matched (LiteLLM's set_deployment_model_name). A litellm model without `*` is used as
    written; one with fewer `*` than the name matched gets the requested name whole, as LiteLLM does."""
    if "*" not in litellm_model:
        return litellm_model
    if len(parts) > litellm_model.count("*"):
        return requested
    for part in parts:
        litellm_model = litellm_model.replace("*", part, 1)
    return litellm_model


class WildcardRoutes:
    """The wildcard model names of one routing table, and the requested names they have resolved."""

    def __init__(
        self,
        patterns: Mapping[str, Sequence] | None = None,
        build: Callable | None = None,
        cost_map: Mapping[str, Mapping] | None = None,
    ):
        """`patterns`: wildcard model_name -> its deployments (gateway.models.Deployment); `build(deployment,
        served_model)` makes the RoutedDeployment that serves one requested name."""
        patterns = patterns or {}
        self._patterns = sorted(
            ((pattern_regex(name), name, tuple(deployments)) for name, deployments in patterns.items()),
            key=lambda item: (len(item[1]), item[1].count("*")),
            reverse=True,
        )
        self._build = build
        self._resolved: OrderedDict[str, tuple] = OrderedDict()
        self._known = _known_models(self._patterns, cost_map or {})

    def listed(self, *, routes: bool = False) -> dict[str, frozenset[str]]:
        """What /v1/models lists of the wildcards, each name with its access groups: the known models they serve,
        and, with `routes`, the wildcard names themselves (LiteLLM's return_wildcard_routes)."""
        listed = dict(self._known)
        if routes:
            listed.update((name, access_groups_of(deployments)) for _regex, name, deployments in self._patterns)
        return listed

    def health_check_targets(self):
        """(wildcard name, routed deployment, probed?) for each wildcard deployment, as /health sees it: built for
        its model_info.health_check_model (LiteLLM's setting) to be probed; without one, as written, not probed."""
        for _regex, name, deployments in self._patterns:
            for deployment in deployments:
                model = str(deployment.model_info.get("health_check_model") or "")
                probed = bool(model) and not unservable_reason(model)
                yield name, self._build(deployment, model if probed else deployment.litellm_model), probed

    def route(self, requested: str) -> tuple:
        """The deployments serving `requested` (empty when no pattern matches it)."""
        if not self._patterns:
            return ()
        found = self._resolved.get(requested)
        if found is None:
            found = self._resolve(requested)
            if len(self._resolved) >= _RESOLVED_LIMIT:
                self._resolved.popitem(last=False)
            self._resolved[requested] = found
        return found

    def _resolve(self, requested: str) -> tuple:
        for regex, _name, deployments in self._patterns:
            match = regex.fullmatch(requested)
            if match is None:
                continue
            if not all(_SAFE_PART.fullmatch(part) and ".." not in part for part in match.groups()):
                return ()
            served = [
                (deployment, served_model(deployment.litellm_model, match.groups(), requested))
                for deployment in deployments
            ]
            # `*` -> `*` passes the provider through from the name: one Tollgate has no adapter for serves nothing.
            return tuple(self._build(deployment, model) for deployment, model in served if not unservable_reason(model))
        return ()


def access_groups_of(deployments) -> frozenset[str]:
    """The access groups of any of `deployments` (Deployment rows or routed deployments alike)."""
    return frozenset(group for deployment in deployments for group in deployment.access_groups)


def _known_models(patterns: list, cost_map: Mapping[str, Mapping]) -> dict[str, frozenset[str]]:
    """The cost map's models of each wildcard's provider, named as the wildcard serves them, with the wildcard's
    access groups: LiteLLM's /v1/models lists `openai/*` as `openai/gpt-4o`, `openai/gpt-4o-mini`... A wildcard with
    no provider in its model name (`*`) lists none. A name two wildcards match is the more specific one's, as in
    routing (the patterns come sorted)."""
    known: dict[str, frozenset[str]] = {}
    for regex, name, deployments in patterns:
        prefix, slash, _rest = name.partition("/")
        if not slash or "*" in prefix:
            continue
        providers = {d.litellm_model.split("/", 1)[0] for d in deployments if "/" in d.litellm_model}
        access_groups = access_groups_of(deployments)
        for key, entry in cost_map.items():
            if entry.get("litellm_provider") in providers:
                listed = key if key.startswith(f"{prefix}/") else f"{prefix}/{key}"
                if regex.fullmatch(listed):
                    known.setdefault(listed, access_groups)
    return known
