"""One proxied call from request to charged response: the meeting point of keys, routing, pricing and spend."""

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse

from gateway.proxy.dispatch import Attempted, complete_once, dispatch, open_stream
from gateway.proxy.errors import BadRequest, UpstreamFailed, UpstreamRejected, error_response, is_domain_error
from gateway.proxy.payload import client_wants_usage, estimate_prompt_tokens, parse_payload
from gateway.proxy.registry import RoutedDeployment
from gateway.proxy.state import gateway_state
from gateway.security import check_auth_throttle, client_ip, record_auth_failure
from keys.auth import Caller, authenticate
from keys.errors import AuthenticationFailed
from keys.limits import admit
from pricing.calculator import CostBreakdown, Usage, compute_cost, format_money
from pricing.errors import UnpricedModelBlocked
from spend.ledger import SpendEntry, ledger
from spend.models import SpendLog

logger = logging.getLogger(__name__)

_ZERO = Decimal(0)


class Call:
    """What the pipeline knows about one call as it goes: used for headers and the spend log."""

    def __init__(self, call_type: str, received: float):
        self.call_type = call_type
        self.received = received
        self.start_time = datetime.now(UTC)
        self.request_id = f"chatcmpl-{uuid.uuid4().hex}" if call_type == "chat" else uuid.uuid4().hex
        self.caller: Caller | None = None
        self.payload: dict = {}
        self.group = ""
        self.upstream_seconds = 0.0

    def entry(self, deployment: RoutedDeployment | None, usage: Usage, cost: CostBreakdown | None, **fields):
        end_time = datetime.now(UTC)
        caller = self.caller
        return SpendEntry(
            request_id=self.request_id,
            call_type=self.call_type,
            requested_model=str(self.payload.get("model", ""))[:300],
            model_group=self.group,
            deployment_id=deployment.model_id if deployment else "",
            provider=deployment.target.provider if deployment else "",
            provider_model=deployment.target.model if deployment else "",
            api_base=deployment.api_base if deployment else "",
            key_hash=caller.key_hash if caller else "",
            user_id=caller.user_id if caller else "",
            team_id=caller.team_id if caller else "",
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cache_creation_tokens=usage.cache_creation_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost=cost.total if cost else _ZERO,
            cost_breakdown={k: format_money(v) for k, v in cost.as_dict().items()} if cost else {},
            prices=deployment.price.snapshot() if deployment else {},
            pricing_source=deployment.price.source if deployment else "",
            price_version=deployment.price.version if deployment else "",
            start_time=self.start_time,
            end_time=end_time,
            duration_ms=int((end_time - self.start_time) / timedelta(milliseconds=1)),
            metadata=_metadata(self.payload),
            request_tags=_tags(self.payload),
            **fields,
        )


def _metadata(payload: dict) -> dict:
    metadata = payload.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _tags(payload: dict) -> list:
    tags = _metadata(payload).get("tags") or payload.get("tags")
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


def price_call(deployment: RoutedDeployment, usage: Usage, seconds: float) -> CostBreakdown:
    if not deployment.price.priced:
        logger.warning("call to %s (%s) is unpriced: charged 0", deployment.model_name, deployment.litellm_model)
    return compute_cost(deployment.price.entry, usage, Decimal(str(round(seconds, 6))), billed_at=datetime.now(UTC))


def _common_headers(call: Call, attempted: Attempted) -> dict[str, str]:
    now = time.perf_counter()
    total_ms = (now - call.received) * 1000
    deployment = attempted.deployment
    return {
        "x-litellm-call-id": call.request_id,
        "x-litellm-model-id": deployment.model_id,
        "x-litellm-model-group": call.group,
        "x-litellm-model-api-base": deployment.api_base,
        "x-litellm-attempted-retries": str(attempted.retries),
        "x-litellm-attempted-fallbacks": str(attempted.fallbacks),
        "x-litellm-response-duration-ms": f"{total_ms:.3f}",
        "x-litellm-overhead-duration-ms": f"{max(total_ms - call.upstream_seconds * 1000, 0):.3f}",
    }


def _cost_headers(cost: CostBreakdown) -> dict[str, str]:
    return {
        "x-litellm-response-cost": format_money(cost.total),
        "x-litellm-response-cost-input": format_money(cost.input),
        "x-litellm-response-cost-output": format_money(cost.output),
        "x-litellm-response-cost-cache-read": format_money(cost.cache_read),
        "x-litellm-response-cost-cache-creation": format_money(cost.cache_creation),
    }


async def authenticate_request(request) -> Caller:
    """The caller of a request; an address that keeps failing is slowed (429) before any key lookup."""
    address = client_ip(request)
    await check_auth_throttle(address)
    try:
        return await authenticate(request.headers.get("Authorization"))
    except AuthenticationFailed:
        record_auth_failure(address)
        raise


async def handle(request, call_type: str, default_model: str = "") -> HttpResponse:
    call = Call(call_type, time.perf_counter())
    try:
        call.caller = await authenticate_request(request)
        call.payload = parse_payload(request.body, call_type, settings.TOLLGATE_MAX_REQUEST_BYTES, default_model)
        await ledger().ensure_available()
        state = await gateway_state()
        requested = call.payload["model"]
        call.group = call.caller.resolve_model(requested)
        deployments = state.table.group(call.group)
        if not deployments:
            raise BadRequest(
                f"Invalid model name passed in model={requested}. Call /v1/models to see the models you can use.",
                param="model",
                code="model_not_found",
            )
        call.caller.check_model_access(call.group, requested)
        if not any(call_type in deployment.provider.call_types for deployment in deployments):
            raise BadRequest(
                f"Model {requested!r} does not serve {call_type} calls.", param="model", code="unsupported_call_type"
            )
        if settings.BLOCK_UNPRICED_MODELS and not all(d.price.priced for d in deployments):
            raise UnpricedModelBlocked(call.group)
        admission = await admit(
            call.caller,
            model_group=call.group,
            worst_case_cost=worst_case_cost(state, call),
            estimated_tokens=_estimated_tokens(call.payload, call.call_type),
        )
        try:
            if call.payload.get("stream"):
                return await _stream(call, state, admission)
            return await _complete(call, state, admission)
        except BaseException:
            await admission.release()  # a no-op once the call was settled
            raise
    except Exception as exc:
        if not is_domain_error(exc):
            logger.exception("proxy call %s failed unexpectedly", call.request_id)
        return error_response(exc)


_DEFAULT_MAX_OUTPUT_TOKENS = 4096


def _max_output_tokens(payload: dict, deployment: RoutedDeployment) -> int:
    for name in ("max_tokens", "max_completion_tokens"):
        if isinstance(payload.get(name), int):
            return payload[name]
    return deployment.max_output_tokens or _DEFAULT_MAX_OUTPUT_TOKENS


def _estimated_tokens(payload: dict, call_type: str) -> int:
    requested = payload.get("max_tokens") or payload.get("max_completion_tokens") or 0
    return estimate_prompt_tokens(payload, call_type) + (requested if isinstance(requested, int) else 0)


def worst_case_cost(state, call: Call) -> Decimal:
    """What the call may cost at most, on any deployment it may reach: reserved against budgets before sending."""
    prompt_tokens = estimate_prompt_tokens(call.payload, call.call_type)
    worst = _ZERO
    for group in (call.group, *state.table.config.fallbacks.get(call.group, ())):
        for deployment in state.table.group(group):
            if not deployment.price.priced:
                continue
            completion = 0 if call.call_type == "embedding" else _max_output_tokens(call.payload, deployment)
            seconds = Decimal(str(deployment.timeout or state.table.config.timeout))
            usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion)
            worst = max(worst, compute_cost(deployment.price.entry, usage, seconds).total)
    return worst


async def _dispatch_or_log_failure(call: Call, state, attempt) -> Attempted:
    """Dispatch; a call every deployment failed is still logged, at cost 0, with its attempts counted."""
    try:
        return await dispatch(state, call.group, call.call_type, attempt)
    except (UpstreamFailed, UpstreamRejected) as exc:
        attempts = int(exc.headers.get("x-litellm-attempted-retries", "0")) + 1
        failed = call.entry(
            None, Usage(), None, status=SpendLog.Status.FAILURE, error_class=type(exc).__name__, attempts=attempts
        )
        await ledger().charge(failed)
        raise


async def _complete(call: Call, state, admission) -> HttpResponse:
    attempted = await _dispatch_or_log_failure(
        call, state, lambda deployment, timeout: complete_once(deployment, timeout, call.call_type, call.payload)
    )
    body, call.upstream_seconds = attempted.result
    usage = Usage.from_openai(body.get("usage"))
    cost = price_call(attempted.deployment, usage, call.upstream_seconds)
    await ledger().charge(call.entry(attempted.deployment, usage, cost, attempts=attempted.retries + 1))
    await admission.settle(cost.total, usage.prompt_tokens + usage.completion_tokens)
    response = HttpResponse(orjson.dumps(body), content_type="application/json")
    for name, value in {**_common_headers(call, attempted), **_cost_headers(cost), **admission.headers()}.items():
        response[name] = value
    return response


async def _stream(call: Call, state, admission) -> StreamingHttpResponse:
    attempted = await _dispatch_or_log_failure(
        call, state, lambda deployment, timeout: open_stream(deployment, timeout, call.call_type, call.payload)
    )
    response = StreamingHttpResponse(_relay(call, attempted, admission), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    for name, value in {**_common_headers(call, attempted), **admission.headers()}.items():
        response[name] = value
    return response


def money_json(value: Decimal) -> orjson.Fragment:
    """A JSON number with the Decimal's own digits (orjson would otherwise refuse or round through float)."""
    return orjson.Fragment(format_money(value).encode())


def _sse(chunk: dict) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _text_of(chunk: dict) -> int:
    characters = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        text = content if isinstance(content, str) else choice.get("text")
        if isinstance(text, str):
            characters += len(text)
    return characters


_background_charges: set[asyncio.Task] = set()


async def _charge_and_settle(spend_entry, admission, cost: Decimal, tokens: int) -> None:
    try:
        await ledger().charge(spend_entry)
    except Exception:
        logger.exception("call %s could not be charged", spend_entry.request_id)
        await admission.release()
        raise
    await admission.settle(cost, tokens)


def charge_in_background(spend_entry, admission, cost: Decimal, tokens: int) -> None:
    """Charge a call whose client is gone: a task of its own, so the request's cancellation cannot stop it."""
    task = asyncio.get_running_loop().create_task(_charge_and_settle(spend_entry, admission, cost, tokens))
    _background_charges.add(task)
    task.add_done_callback(_background_charges.discard)


async def _relay(call: Call, attempted: Attempted, admission):
    """Forward chunks as they arrive; charge before [DONE], or for what was used when the client goes away."""
    opened = attempted.result
    deployment = attempted.deployment
    parser = opened.parser
    wants_usage = client_wants_usage(call.payload)
    streamed_characters = 0
    first_chunk_at: float | None = None
    usage_chunk: dict | None = None
    charged = False

    def usage_now() -> Usage:
        if parser.usage:
            return Usage.from_openai(parser.usage)
        # The upstream never reported usage (it stopped early): estimate what it used from what was sent.
        return Usage(
            prompt_tokens=estimate_prompt_tokens(call.payload, call.call_type),
            completion_tokens=(streamed_characters + 3) // 4,
        )

    def entry(status: str, error_class: str = ""):
        seconds = time.perf_counter() - opened.started
        usage = usage_now()
        cost = price_call(deployment, usage, seconds)
        ttft = int((first_chunk_at - opened.started) * 1000) if first_chunk_at else None
        spend_entry = call.entry(
            deployment,
            usage,
            cost,
            status=status,
            error_class=error_class,
            attempts=attempted.retries + 1,
            time_to_first_token_ms=ttft,
        )
        return cost, usage.prompt_tokens + usage.completion_tokens, spend_entry

    try:
        async for chunk in _upstream_chunks(opened):
            if first_chunk_at is None:
                first_chunk_at = time.perf_counter()
            if chunk.get("usage") and not chunk.get("choices"):
                usage_chunk = chunk  # held back: it goes out last, with the cost, and only if asked for
                continue
            if "usage" in chunk and not wants_usage:
                chunk = {key: value for key, value in chunk.items() if key != "usage"}
            streamed_characters += _text_of(chunk)
            yield _sse(chunk)
        status = SpendLog.Status.SUCCESS if parser.done else SpendLog.Status.FAILURE
        cost, tokens, spend_entry = entry(status, "" if parser.done else "IncompleteStream")
        charged = True
        await _charge_and_settle(spend_entry, admission, cost.total, tokens)
        if wants_usage:
            usage_chunk = usage_chunk or {"id": call.request_id, "object": "chat.completion.chunk", "choices": []}
            usage_chunk["usage"] = {**(parser.usage or {}), "cost": money_json(cost.total)}
            yield _sse(usage_chunk)
        yield b"data: [DONE]\n\n"
    except (asyncio.CancelledError, GeneratorExit):
        if not charged:
            cost, tokens, spend_entry = entry(SpendLog.Status.CLIENT_DISCONNECTED, "ClientDisconnected")
            charge_in_background(spend_entry, admission, cost.total, tokens)
            charged = True
        raise
    except Exception as exc:
        if not charged:
            cost, tokens, spend_entry = entry(SpendLog.Status.FAILURE, type(exc).__name__)
            charge_in_background(spend_entry, admission, cost.total, tokens)
        logger.warning("stream %s ended by an upstream error: %s", call.request_id, type(exc).__name__)
        yield _sse(
            {
                "error": {
                    "message": "The upstream stream failed.",
                    "type": "api_error",
                    "param": None,
                    "code": "upstream_stream_error",
                }
            }
        )
    finally:
        if opened.response is not None:
            await opened.response.aclose()


async def _upstream_chunks(opened):
    if opened.local_chunks is not None:
        for chunk in opened.local_chunks:
            yield chunk
        return
    async for data in opened.response.aiter_bytes():
        for parsed in opened.parser.feed(data):
            yield parsed
    for parsed in opened.parser.finish():
        yield parsed
