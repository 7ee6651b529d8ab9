"""The routes a key may call (its `allowed_routes`, as LiteLLM's keys name them): paths, or route groups by name.

A path is one route however a client spells it: with or without `/v1`, a trailing slash, or Azure's
`/openai/deployments/<name>` in front (the same endpoint for a chosen deployment). Pure Python: the gateway matches
a request's path with it, the management API checks what a key may be given.
"""

import re

# LiteLLM's LiteLLMRoutes groups that name routes Tollgate serves to a virtual key.
LLM_API_ROUTES = frozenset(
    {"/chat/completions", "/completions", "/embeddings", "/messages", "/messages/count_tokens", "/responses", "/models"}
)
INFO_ROUTES = frozenset({"/key/info", "/models", "/model/info"})
# Reports a key reads only with permissions {"get_spend_routes": true} (LiteLLM's global_spend_tracking_routes).
SPEND_TRACKING_ROUTES = frozenset(
    {
        "/global/spend",
        "/global/spend/logs",
        "/global/spend/keys",
        "/global/spend/teams",
        "/global/spend/models",
        "/global/spend/end_users",
        "/global/spend/tags",
        "/global/spend/report",
    }
)
ROUTE_GROUPS = {
    "llm_api_routes": LLM_API_ROUTES,
    "openai_routes": LLM_API_ROUTES,
    "info_routes": INFO_ROUTES,
    "global_spend_tracking_routes": SPEND_TRACKING_ROUTES,
}

_AZURE_DEPLOYMENT = re.compile(r"^/openai/deployments/[^/]+(?=/)")


def route_of(path: str) -> str:
    """A path as one route: `/v1/chat/completions/` and `/openai/deployments/x/chat/completions` are
    `/chat/completions`."""
    route = _AZURE_DEPLOYMENT.sub("", "/" + path.strip("/"))
    return route.removeprefix("/v1") if route.startswith("/v1/") else route


def is_route_name(entry: str) -> bool:
    """An entry an `allowed_routes` list may hold: a path, or a route group's name."""
    return entry.startswith("/") or entry in ROUTE_GROUPS


def allowed_routes(entries) -> frozenset[str]:
    """Every route an `allowed_routes` list names, its groups expanded (empty: the list allows every route)."""
    routes: set[str] = set()
    for entry in entries or ():
        routes.update(ROUTE_GROUPS[entry] if entry in ROUTE_GROUPS else {route_of(entry)})
    return frozenset(routes)
