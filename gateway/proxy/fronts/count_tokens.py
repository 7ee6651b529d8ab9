"""`POST /v1/messages/count_tokens`: how many input tokens a Messages request would be billed, never charged.

A model group served by an Anthropic deployment asks that deployment's own count_tokens endpoint (its tokenizer's
exact count). Any other group is counted with the gateway's own prompt estimate (4 characters a token over the
messages' text, the estimate budgets and tpm limits use), since no other provider has such an endpoint.
"""

import httpx
import orjson
from django.conf import settings
from django.http import HttpResponse

from gateway.body_limit import read_body
from gateway.providers.base import UpstreamRequest
from gateway.proxy import service
from gateway.proxy.errors import BadRequest, UpstreamFailed, UpstreamRejected
from gateway.proxy.fronts.anthropic_messages import AnthropicMessagesFront
from gateway.proxy.payload import estimate_prompt_tokens, parse_payload
from gateway.proxy.registry import RoutedDeployment
from gateway.proxy.state import gateway_state
from gateway.proxy.upstream import send_upstream

# What Anthropic's count_tokens takes of a Messages request; anything else it refuses.
_COUNTED = ("messages", "system", "tools", "tool_choice", "thinking")


async def count_tokens(request) -> HttpResponse:
    front = AnthropicMessagesFront(counting=True)
    original: dict = {}

    def translate(body: dict) -> dict:
        original.update(body)
        return front.to_chat(body)

    try:
        caller = await service.authenticate_request(request)
        payload = parse_payload(
            read_body(request),
            "chat",
            settings.TOLLGATE_MAX_REQUEST_BYTES,
            translate=translate,
            check=caller.check_enforced_params,
        )
        state = await gateway_state()
        requested = payload["model"]
        group = caller.resolve_model(requested)
        deployments = state.table.group(group)
        if not deployments:
            raise BadRequest(f"Invalid model name passed in model={requested}.", param="model", code="model_not_found")
        caller.check_model_access(group, requested, state.table.access_groups(group))
        native = next((d for d in deployments if d.target.provider == "anthropic"), None)
        if native is None:
            tokens = estimate_prompt_tokens(payload, "chat")
        else:
            counted = {name: original[name] for name in _COUNTED if name in original}
            tokens = await _count_upstream(native, payload, counted, native.timeout or state.table.config.timeout)
    except Exception as exc:
        return front.error_response(exc)
    return HttpResponse(orjson.dumps({"input_tokens": tokens}), content_type="application/json")


async def _count_upstream(deployment: RoutedDeployment, payload: dict, counted: dict, seconds: float) -> int:
    provider, target = deployment.provider, deployment.target
    # The provider's own Messages request gives the address, key, version and extra headers; only the path differs.
    messages = provider.build_request(target, "chat", {**payload, "model": target.model}, False)
    body = orjson.dumps({**counted, "model": target.model})
    request = UpstreamRequest("POST", messages.url + "/count_tokens", messages.headers, body)
    try:
        response = await send_upstream(request, httpx.Timeout(seconds, connect=min(seconds, 10.0)))
    except httpx.TransportError as exc:
        raise UpstreamFailed(
            "The upstream's count_tokens could not be reached.", status=503, code="upstream_unavailable"
        ) from exc
    if response.status_code != 200:
        error = provider.error_from_response(response.status_code, response.content, response.headers)
        if 400 <= error.status < 500:
            raise UpstreamRejected(error.message, status=error.status)
        raise UpstreamFailed(error.message, status=502, code="upstream_error")
    try:
        return int(orjson.loads(response.content)["input_tokens"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UpstreamFailed(
            "The upstream's count_tokens answered without input_tokens.", status=502, code="upstream_error"
        ) from exc
