"""/health: every deployment probed on demand with a real, minimal call, as LiteLLM's /health does.

A chat deployment is sent one user message with max_tokens 1, an embedding deployment one short input; all at
once (at most _CONCURRENT_PROBES in flight), each with its deployment's timeout (connect, and each read), capped
at _PROBE_TIMEOUT_SECONDS. A wildcard deployment has no model of its own: it is probed with its
model_info.health_check_model (LiteLLM's setting), and reported unhealthy, saying so, without one.

Probes are the operator's, not a caller's: no key is charged and no spend log is written (LiteLLM charges none
either; the spend logs are the ledger of what keys owe). The upstream still bills its few tokens to the
deployment's account. Each unhealthy deployment is logged once per probe as a warning. Probes leave cooldowns and
routing stats alone: they say how a deployment answers now, traffic decides where calls go.
"""

import asyncio
import logging

import httpx

from gateway.providers.base import ProviderError
from gateway.proxy.dispatch import complete_once, could_not_connect, is_timeout
from gateway.proxy.errors import NotFound
from gateway.proxy.registry import RoutedDeployment, RoutingTable

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_SECONDS = 60.0  # LiteLLM's default health check timeout
_CONCURRENT_PROBES = 32
_PROBE_TEXT = "ping"


def _probe_payload(deployment: RoutedDeployment) -> tuple[str, dict]:
    """The call type and body of the cheapest real call the deployment serves."""
    call_types = deployment.provider.call_types
    if "chat" not in call_types or deployment.price.entry.get("mode") == "embedding":
        if "embedding" in call_types:
            return "embedding", {"model": deployment.model_name, "input": _PROBE_TEXT}
    return "chat", {
        "model": deployment.model_name,
        "messages": [{"role": "user", "content": _PROBE_TEXT}],
        "max_tokens": 1,
    }


def _described(exc: BaseException, deployment: RoutedDeployment, seconds: float) -> str:
    """What went wrong, told without the deployment's secrets (its key, an address with credentials in it)."""
    if isinstance(exc, ProviderError):
        text = f"upstream answered {exc.status}: {exc.message}"
    elif isinstance(exc, httpx.TransportError) and is_timeout(exc):
        text = f"no answer within {seconds:g} s"
    elif isinstance(exc, httpx.TransportError) and could_not_connect(exc):
        text = "the connection could not be made"
    elif isinstance(exc, httpx.TransportError):
        text = "the connection closed before a complete answer"
    else:
        text = f"the probe failed: {type(exc).__name__}"
    secret = deployment.target.api_key
    return text.replace(secret, "***") if secret else text


def _endpoint(deployment: RoutedDeployment, group: str) -> dict:
    return {
        "model": deployment.litellm_model,
        "model_group": group,
        "model_id": deployment.model_id,
        "api_base": deployment.public_api_base,
    }


async def _probe(deployment: RoutedDeployment, limit: asyncio.Semaphore) -> str | None:
    """None when the deployment answered; else why not."""
    seconds = min(deployment.timeout or _PROBE_TIMEOUT_SECONDS, _PROBE_TIMEOUT_SECONDS)
    call_type, payload = _probe_payload(deployment)
    async with limit:
        try:
            await complete_once(deployment, httpx.Timeout(seconds), call_type, payload)
        except Exception as exc:
            return _described(exc, deployment, seconds)
    return None


async def probe_health(table: RoutingTable, model_group: str | None = None) -> dict:
    """Probe every deployment (of `model_group` only, when given) and report LiteLLM's /health body."""
    probed: list[tuple[str, RoutedDeployment]] = []
    unprobed: list[dict] = []
    for name, deployments in table.groups.items():
        probed.extend((name, deployment) for deployment in deployments)
    for name, deployment, probe in table.wildcards.health_check_targets():
        if probe:
            probed.append((name, deployment))
        else:
            reason = "a wildcard deployment: set model_info.health_check_model to the model to probe it with"
            unprobed.append({**_endpoint(deployment, name), "error": reason})
    if model_group is not None:
        probed = [(name, deployment) for name, deployment in probed if name == model_group]
        unprobed = [endpoint for endpoint in unprobed if endpoint["model_group"] == model_group]
        if not probed and not unprobed:
            raise NotFound(f"No model group {model_group!r} to probe.", param="model")
    limit = asyncio.Semaphore(_CONCURRENT_PROBES)
    errors = await asyncio.gather(*(_probe(deployment, limit) for _name, deployment in probed))
    healthy, unhealthy = [], list(unprobed)
    for (name, deployment), error in zip(probed, errors, strict=True):
        if error is None:
            healthy.append(_endpoint(deployment, name))
        else:
            logger.warning("health probe: deployment %s of %r is unhealthy: %s", deployment.model_id, name, error)
            unhealthy.append({**_endpoint(deployment, name), "error": error})
    return {
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
        "healthy_count": len(healthy),
        "unhealthy_count": len(unhealthy),
    }
