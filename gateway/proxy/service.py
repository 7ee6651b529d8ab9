"""One proxied call from request to charged response: the meeting point of keys, routing, pricing and spend."""

import asyncio
import logging
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property

import orjson
from django.conf import settings
from django.http import HttpResponse

from gateway import metrics
from gateway.body_limit import read_body
from gateway.proxy.charges import charge, charge_in_background, price_call
from gateway.proxy.dispatch import Attempted, complete_once, dispatch, open_stream
from gateway.proxy.errors import BadRequest, UpstreamFailed, UpstreamRejected, error_response, is_domain_error
from gateway.proxy.payload import (
    PromptBound,
    check_call_tags,
    end_user_of,
    estimate_prompt_tokens,
    parse_payload,
    prompt_bound,
)
from gateway.proxy.registry import RoutedDeployment
from gateway.proxy.state import gateway_state
from gateway.proxy.streaming import Relay, RelayResponse
from keys.auth import Caller, authenticate, presented_key, sync_key_cache
from keys.cache import key_cache
from keys.caller import Limits
from keys.customers import customer_state
from keys.errors import AuthenticationFailed
from keys.holders import call_tags, start_model_spend, tag_holders
from keys.limits import admit
from keys.throttle import check_auth_throttle, client_ip, record_auth_failure
from pricing.calculator import CostBreakdown, Usage, compute_cost, format_money
from pricing.charges import most_searches
from pricing.errors import UnpricedModelBlocked
from spend.ledger import SpendEntry, journal, ledger
from spend.models import SpendLog
from spend.resets import reset_ended_periods

logger = logging.getLogger(__name__)

_ZERO = Decimal(0)


class Call:
    """What the pipeline knows about one call as it goes: used for headers and the spend log."""

    def __init__(self, call_type: str, received: float, front=None):
        self.call_type = call_type
        self.front = front  # the API the client speaks, when not OpenAI's (gateway.proxy.fronts)
        self.received = received
        self.start_time = datetime.now(UTC)
        if front is not None:
            self.request_id = front.id_prefix + uuid.uuid4().hex
        else:
            self.request_id = f"chatcmpl-{uuid.uuid4().hex}" if call_type == "chat" else uuid.uuid4().hex
        self.caller: Caller | None = None
        self.payload: dict = {}
        self.end_user = ""  # the customer the call is for (LiteLLM's end user), charged as its key is
        self.header_tags: list[str] = []  # the x-litellm-tags header's
        self.body_size = 0
        self.group = ""
        self.known_group = ""  # `group` once it names deployments: a label metrics may count under
        self.upstream_seconds = 0.0
        self.attempts = 0  # upstream attempts started, the one in flight included
        self.deployment: RoutedDeployment | None = None  # the deployment of the latest attempt
        self.attempt_started: float | None = None  # while an attempt is in flight
        self.charged = False  # a charge owns the admission from here: it settles or releases it

    @cached_property
    def estimated_prompt_tokens(self) -> int:
        """The prompt's likely size before the upstream reports it: for tpm limits, and for a stream cut short."""
        return estimate_prompt_tokens(self.payload, self.call_type)

    @cached_property
    def prompt_bound(self) -> PromptBound:
        """The most the prompt can be billed at: what budgets reserve."""
        return prompt_bound(self.body_size, self.payload, self.call_type)

    def payload_for(self, deployment: RoutedDeployment) -> dict:
        """The payload as this attempt's deployment takes it. A front's payload may carry fields of its own API that
        only some providers take (Anthropic's cache hints, thinking, documents); which provider serves is known only
        here, per attempt, since a retry or fallback may reach another."""
        return self.front.for_deployment(self.payload, deployment) if self.front else self.payload

    def journal(self, deployment: RoutedDeployment, usage: Usage, **fields) -> None:
        """Put the call on record as it would be charged if its process died now (see spend.journal): `usage` at
        the deployment's price, priced only if it ever comes to that."""
        entry = self.entry(
            deployment, usage, None, status=SpendLog.Status.INTERRUPTED, error_class="ProcessDied", **fields
        )
        journal().record(entry, deployment.price.entry, deployment.price_key)

    @property
    def own_tags(self) -> list[str]:
        """The tags the call itself carries: metadata.tags, else tags; then the x-litellm-tags header's."""
        return [*_body_tags(self.payload), *self.header_tags]

    @property
    def tags(self) -> list[str]:
        """The call's own tags, then its key's: what its log keeps, and whose budgets it pays."""
        return call_tags(self.own_tags, self.caller) if self.caller else self.own_tags

    def entry(self, deployment: RoutedDeployment | None, usage: Usage, cost: CostBreakdown | None, **fields):
        end_time = datetime.now(UTC)
        caller = self.caller
        return SpendEntry(
            request_id=self.request_id,
            call_type=self.front.call_type if self.front else self.call_type,
            requested_model=str(self.payload.get("model", ""))[:300],
            model_group=self.group,
            deployment_id=deployment.model_id if deployment else "",
            provider=deployment.target.provider if deployment else "",
            provider_model=deployment.target.model if deployment else "",
            api_base=deployment.public_api_base if deployment else "",
            key_hash=caller.key_hash if caller else "",
            user_id=caller.user_id if caller else "",
            team_id=caller.team_id if caller else "",
            organization_id=caller.organization_id if caller else "",
            end_user=self.end_user,
            **usage.logged_counts(),
            cost=cost.total if cost else _ZERO,
            cost_breakdown={k: format_money(v) for k, v in cost.as_dict().items()} if cost else {},
            prices=deployment.prices if deployment else {},
            pricing_source=deployment.price.source if deployment else "",
            price_version=deployment.price.version if deployment else "",
            start_time=self.start_time,
            end_time=end_time,
            duration_ms=int((end_time - self.start_time) / timedelta(milliseconds=1)),
            metadata=_metadata(self.payload),
            request_tags=self.tags,
            **fields,
        )


def _metadata(payload: dict) -> dict:
    metadata = payload.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _body_tags(payload: dict) -> list:
    tags = _metadata(payload).get("tags") or payload.get("tags")
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


def header_tags(headers) -> list[str]:
    """LiteLLM's x-litellm-tags header: tags separated by commas."""
    return [tag.strip() for tag in headers.get("x-litellm-tags", "").split(",") if tag.strip()]


# What a header value cannot hold: uvicorn refuses to send it (Django, a line break). Names and ids are refused with
# one where deployments are made; one stored before, or by hand, is sent percent-encoded rather than failing a call
# the upstream has already answered and billed.
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_value(stored: str) -> str:
    return _UNSENDABLE.sub(lambda match: f"%{ord(match.group()):02X}", stored)


def _common_headers(call: Call, attempted: Attempted) -> dict[str, str]:
    now = time.perf_counter()
    total_ms = (now - call.received) * 1000
    deployment = attempted.deployment
    return {
        "x-litellm-call-id": call.request_id,
        "x-litellm-model-id": _header_value(deployment.model_id),
        "x-litellm-model-group": _header_value(call.group),
        "x-litellm-model-api-base": _header_value(deployment.public_api_base),
        "x-litellm-attempted-retries": str(attempted.retries),
        "x-litellm-attempted-fallbacks": str(attempted.fallbacks),
        "x-litellm-response-duration-ms": f"{total_ms:.3f}",
        "x-litellm-overhead-duration-ms": f"{max(total_ms - call.upstream_seconds * 1000, 0):.3f}",
    }


def _with_headers(response, *header_sets: dict[str, str]):
    for headers in header_sets:
        for name, value in headers.items():
            response[name] = value
    return response


def _cost_headers(breakdown: dict[str, str]) -> dict[str, str]:
    """The cost headers, from the spend log's cost_breakdown: the amounts the log keeps, written out once."""
    return {
        "x-litellm-response-cost": breakdown["total"],
        "x-litellm-response-cost-input": breakdown["input"],
        "x-litellm-response-cost-output": breakdown["output"],
        "x-litellm-response-cost-cache-read": breakdown["cache_read"],
        "x-litellm-response-cost-cache-creation": breakdown["cache_creation"],
    }


async def authenticate_request(request) -> Caller:
    """The caller of a request; an address that keeps failing is slowed (429) before any key lookup, and a key whose
    allowed_routes leave out the path is refused (403). A caller whose budget period has ended has it reset first
    (by this call, if no scheduler got there before), and is read again."""
    address = client_ip(request)
    await check_auth_throttle(address)
    authorization = presented_key(request.headers)
    try:
        caller = await authenticate(authorization)
    except AuthenticationFailed:
        record_auth_failure(address)
        raise
    caller.check_route(request.path)
    ended = caller.ended_periods(int(time.time() * 1000))
    if ended:
        await key_cache().run(_reset_periods, ended)
        caller = await authenticate(authorization)
    return caller


async def customer_limits(end_user: str) -> Limits | None:
    """The limits of the customer a call names (made on first sight), its ended period reset first as a key's is;
    a blocked customer is refused."""
    if not end_user:
        return None
    customer = await customer_state(end_user)
    if 0 < customer.limits.period <= int(time.time() * 1000):
        await key_cache().run(_reset_periods, [("customer", end_user)])
        customer = await customer_state(end_user)
    customer.check_usable()
    return customer.limits


async def tag_limits(tags: list[str]) -> tuple[Limits, ...]:
    """The limits of the tag holders a call carries, an ended period reset first as a key's is."""
    held = await tag_holders(tags)
    now_ms = int(time.time() * 1000)
    ended = [(limits.kind, limits.entity_id) for limits in held if 0 < limits.period <= now_ms]
    if ended:
        await key_cache().run(_reset_periods, ended)
        held = await tag_holders(tags)
    return held


async def with_model_spend(request, caller: Caller, group: str) -> Caller:
    """The caller, its spend row for `group` made first if it has a budget for that model and no row yet."""
    if group not in caller.unstarted_models:
        return caller
    await key_cache().run(_start_model_spend, caller.key_hash, group)
    return await authenticate(presented_key(request.headers))


def _start_model_spend(token_hash: str, group: str) -> None:
    start_model_spend(token_hash, group)
    sync_key_cache()


def _reset_periods(entities: list[tuple[str, str]]) -> None:
    reset_ended_periods(entities)
    sync_key_cache()  # this reset's key changes, or another process's: the caller is read in its new period


async def handle(request, call_type: str, default_model: str = "", front=None) -> HttpResponse:
    """One proxied call. With a `front`, the client speaks another API (gateway.proxy.fronts): its body is
    translated to a chat call, run as any chat call is, and the answer, stream or refusal translated back."""
    call = Call(call_type, time.perf_counter(), front)
    metrics.in_flight.inc()
    try:
        response = await _answer(request, call, default_model)
    finally:
        metrics.in_flight.dec()
    metrics.count_request(call.known_group, call.caller, response.status_code)
    return response


async def _answer(request, call: Call, default_model: str) -> HttpResponse:
    call_type, front = call.call_type, call.front
    try:
        call.caller = await authenticate_request(request)
        body = read_body(request)
        call.payload = parse_payload(
            body,
            call_type,
            settings.TOLLGATE_MAX_REQUEST_BYTES,
            default_model,
            front.to_chat if front else None,
            check=call.caller.check_enforced_params,
        )
        call.body_size = len(body)
        call.end_user = end_user_of(call.payload, request.headers)
        call.header_tags = header_tags(request.headers)
        check_call_tags(call.own_tags)
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
        call.known_group = call.group
        call.caller.check_model_access(call.group, requested, state.table.access_groups(call.group))
        if not any(call_type in deployment.provider.call_types for deployment in deployments):
            raise BadRequest(
                f"Model {requested!r} does not serve {call_type} calls.", param="model", code="unsupported_call_type"
            )
        if settings.BLOCK_UNPRICED_MODELS and not all(d.price.priced for d in deployments):
            raise UnpricedModelBlocked(call.group)
        call.caller = await with_model_spend(request, call.caller, call.group)
        admission = await admit(
            call.caller,
            model_group=call.group,
            worst_case_cost=worst_case_cost(state, call),
            estimated_tokens=_estimated_tokens(call),
            customer=await customer_limits(call.end_user),
            tags=await tag_limits(call.tags),
        )
        try:
            if call.payload.get("stream"):
                return await _stream(call, state, admission)
            return await _complete(call, state, admission)
        except BaseException:
            if not call.charged:
                await admission.release()
            raise
    except Exception as exc:
        if not is_domain_error(exc):
            logger.exception("proxy call %s failed unexpectedly", call.request_id)
        return front.error_response(exc) if front else error_response(exc)


_DEFAULT_MAX_OUTPUT_TOKENS = 4096


def _max_output_tokens(payload: dict, deployment: RoutedDeployment) -> int:
    """The most output one call may be billed: per choice (max_tokens, else the model's limit), times the choices
    generated (`n`, and a completion's `best_of`, which bills every candidate)."""
    per_choice = deployment.max_output_tokens or _DEFAULT_MAX_OUTPUT_TOKENS
    for name in ("max_tokens", "max_completion_tokens"):
        if isinstance(payload.get(name), int):
            per_choice = payload[name]
            break
    return per_choice * max(payload.get("n") or 1, payload.get("best_of") or 1)  # counts checked by parse_payload


def _estimated_tokens(call: Call) -> int:
    requested = call.payload.get("max_tokens") or call.payload.get("max_completion_tokens") or 0
    return call.estimated_prompt_tokens + (requested if isinstance(requested, int) else 0)


def worst_case_cost(state, call: Call) -> Decimal:
    """What the call may cost at most, on any deployment it may reach: reserved against budgets before sending."""
    bound = call.prompt_bound
    worst = _ZERO
    for group in (call.group, *state.table.config.fallbacks.get(call.group, ())):
        for deployment in state.table.group(group):
            if not deployment.price.priced:
                continue
            prompt_tokens = bound.tokens(deployment.price.matched, deployment.target.model, deployment.litellm_model)
            completion = 0 if call.call_type == "embedding" else _max_output_tokens(call.payload, deployment)
            searches, size = most_searches(deployment.price.entry, call.payload)
            timeout = deployment.timeout or state.table.config.timeout
            worst = max(worst, _deployment_worst_cost(deployment, prompt_tokens, completion, searches, size, timeout))
    return worst


_WORST_COSTS_KEPT = 512  # per deployment; then the memo starts over


def _deployment_worst_cost(
    deployment: RoutedDeployment, prompt_tokens: int, completion: int, searches: int, size: str, timeout
) -> Decimal:
    """compute_cost of the most the call may use at this deployment, memoized on every input it depends on (the
    entry is the deployment's own): the same bound, exactly, for calls whose bodies are as long and ask as much.
    worst_case_cost of a chat call to one deployment at a gpt-4o-like per-token price: 32 µs before, 5 µs on a hit
    (timeit). A body of another length is a miss: the bound is never priced for a prompt other than its own."""
    key = (prompt_tokens, completion, searches, size, timeout)
    memo = deployment.worst_costs
    cost = memo.get(key)
    if cost is None:
        usage = Usage(prompt_tokens, completion, search_queries=searches, search_context_size=size)
        cost = compute_cost(deployment.price.entry, usage, Decimal(str(timeout))).total
        if len(memo) >= _WORST_COSTS_KEPT:
            memo.clear()
        memo[key] = cost
    return cost


async def _dispatch_or_log_failure(call: Call, state, admission, send) -> Attempted:
    """Dispatch, each attempt sent by `send` (complete_once or open_stream). A call every deployment failed is still
    logged, at cost 0, with its attempts counted; so is one whose client left while waiting for the upstream. That upstream had not answered: nothing it used is known, so
    only a per-second price charges anything, for the seconds the attempt in flight had lasted."""

    async def counted_attempt(deployment: RoutedDeployment, timeout):
        call.attempts += 1
        call.deployment = deployment
        call.journal(deployment, Usage(prompt_tokens=call.estimated_prompt_tokens), attempts=call.attempts)
        call.attempt_started = started = time.perf_counter()
        try:
            result = await send(deployment, timeout, call.call_type, call.payload_for(deployment))
        except Exception as exc:
            metrics.count_attempt(call.group, call.caller, deployment, 0.0, exc)
            raise
        finally:
            call.attempt_started = None
        metrics.count_attempt(call.group, call.caller, deployment, time.perf_counter() - started, None)
        return result

    try:
        return await dispatch(state, call.group, call.call_type, counted_attempt, tokens=_estimated_tokens(call))
    except (UpstreamFailed, UpstreamRejected) as exc:
        failed = call.entry(
            call.deployment,
            Usage(),
            None,
            status=SpendLog.Status.FAILURE,
            error_class=type(exc).__name__,
            attempts=call.attempts,
        )
        metrics.count_charge(failed, call.caller)
        await ledger().charge(failed)
        raise
    except asyncio.CancelledError:
        if call.deployment is not None:
            in_flight = time.perf_counter() - call.attempt_started if call.attempt_started else 0.0
            cost = price_call(call.deployment, Usage(), in_flight)
            left = call.entry(
                call.deployment,
                Usage(),
                cost,
                status=SpendLog.Status.CLIENT_DISCONNECTED,
                error_class="ClientDisconnected",
                attempts=call.attempts,
            )
            call.charged = True
            charge_in_background(left, admission, cost.total, 0)
        raise


async def _complete(call: Call, state, admission) -> HttpResponse:
    attempted = await _dispatch_or_log_failure(call, state, admission, complete_once)
    body, call.upstream_seconds = attempted.result
    usage = Usage.from_openai(body.get("usage"), call.payload)
    cost = price_call(attempted.deployment, usage, call.upstream_seconds)
    call.charged = True
    entry = call.entry(attempted.deployment, usage, cost, attempts=attempted.retries + 1)
    await charge(entry, admission, cost.total, usage.prompt_tokens + usage.completion_tokens)
    answer = call.front.answer(body, call) if call.front else body
    response = HttpResponse(orjson.dumps(answer), content_type="application/json")
    return _with_headers(
        response, _common_headers(call, attempted), _cost_headers(entry.cost_breakdown), admission.headers()
    )


async def _stream(call: Call, state, admission) -> RelayResponse:
    attempted = await _dispatch_or_log_failure(call, state, admission, open_stream)
    call.charged = True  # from here the relay charges the call, however it ends
    return _with_headers(
        RelayResponse(Relay(call, attempted, admission)), _common_headers(call, attempted), admission.headers()
    )
