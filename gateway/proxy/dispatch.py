"""Calling upstream: one attempt per deployment, retries within the group, then fallback groups.

Retried: connection errors, timeouts, 408/409/429 and 5xx. A 4xx is the request's own fault and is passed
through at once. Every failure counts toward the deployment's cooldown. When every attempt failed, the last
failure decides the status: 429 (with the upstream's retry-after), 502 for a bad or broken answer (5xx, malformed,
the connection cut mid-answer), 503 when no connection could be made, 504 when the upstream took too long.
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import httpx

from gateway.providers.base import SHAPE_ERRORS, ProviderError
from gateway.proxy.errors import UpstreamFailed, UpstreamRejected
from gateway.proxy.registry import RoutedDeployment
from gateway.proxy.router import NoCapacity, strategy_order
from gateway.proxy.state import GatewayState
from gateway.proxy.upstream import send_upstream

_MAX_BACKOFF_SECONDS = 2.0


@dataclass(slots=True)
class Attempted:
    """The outcome of dispatching: the winning deployment and what it took to get there."""

    result: object
    deployment: RoutedDeployment
    retries: int
    fallbacks: int


def _timeout(deployment: RoutedDeployment, state: GatewayState) -> httpx.Timeout:
    seconds = deployment.timeout or state.table.config.timeout
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def is_timeout(exc: BaseException) -> bool:
    # httpx-aiohttp maps any aiohttp connection error to an httpx timeout class; the cause tells them apart.
    cause = exc.__cause__
    if cause is not None:
        return isinstance(cause, asyncio.TimeoutError | aiohttp.ServerTimeoutError)
    return isinstance(exc, httpx.TimeoutException)


def could_not_connect(exc: BaseException) -> bool:
    """No connection was made (refused, unknown host): unlike a connection the upstream broke off mid-answer."""
    cause = exc.__cause__
    if cause is not None:
        return isinstance(cause, aiohttp.ClientConnectorError)
    return isinstance(exc, httpx.ConnectError)


async def dispatch(
    state: GatewayState,
    group: str,
    call_type: str,
    attempt: Callable[[RoutedDeployment, httpx.Timeout], Awaitable],
    tokens: int = 0,
) -> Attempted:
    """`tokens`: what the call is expected to use (its estimated prompt and the max_tokens it asks for), for
    usage-based routing."""
    table = state.table
    config = table.config
    retries = 0
    last_error: BaseException | None = None
    groups = (group, *config.fallbacks.get(group, ()))
    for fallback_index, group_name in enumerate(groups):
        deployments = [d for d in table.group(group_name) if call_type in d.provider.call_types]
        if not deployments:
            continue
        try:
            order = strategy_order(config, state.cooldowns.available(deployments), state.stats, tokens)
        except NoCapacity as exc:
            last_error = exc  # the group's fallbacks may have room
            continue
        for try_index in range(config.num_retries + 1):
            deployment = order[try_index % len(order)]
            if try_index >= len(order):
                await asyncio.sleep(_backoff(try_index - len(order), last_error))
            try:
                result = await _tracked(state, deployment, attempt, tokens)
            except ProviderError as exc:
                if not exc.retryable:
                    if 400 <= exc.status < 500:
                        raise UpstreamRejected(exc.message, status=exc.status) from None
                    raise UpstreamFailed(exc.message, status=502, code="upstream_error") from None
                last_error = exc
            except httpx.TransportError as exc:
                last_error = exc
            else:
                state.cooldowns.record_success(deployment.model_id)
                return Attempted(result, deployment, retries, fallback_index)
            state.cooldowns.record_failure(deployment.model_id, config)
            retries += 1
    raise _final_error(last_error, retries)


async def _tracked(state: GatewayState, deployment: RoutedDeployment, attempt, tokens: int):
    """One attempt, counted in the routing stats: in flight until it ends (a stream: until the relay closes it),
    and its latency to an answer, or to a failure."""
    stats = state.stats
    stats.started(deployment.model_id, tokens)
    began = time.perf_counter()
    held = False
    try:
        result = await attempt(deployment, _timeout(deployment, state))
        if isinstance(result, OpenedStream) and result.response is not None:
            result.on_close = lambda: stats.finished(deployment.model_id)
            held = True
        return result
    finally:
        stats.answered(deployment.model_id, time.perf_counter() - began)
        if not held:
            stats.finished(deployment.model_id)


def _backoff(repeat: int, last_error: BaseException | None) -> float:
    retry_after = getattr(last_error, "retry_after", None)
    if retry_after:
        return min(float(retry_after), _MAX_BACKOFF_SECONDS)
    return min(0.05 * (2**repeat), _MAX_BACKOFF_SECONDS)


def _final_error(last_error: BaseException | None, attempts: int) -> Exception:
    headers = {"x-litellm-attempted-retries": str(max(attempts - 1, 0))}
    if isinstance(last_error, NoCapacity):
        headers["retry-after"] = str(math.ceil(last_error.seconds_left))
        return UpstreamFailed(
            "No deployment has capacity: every one is at its rpm or tpm limit for this minute (usage-based-routing).",
            status=429,
            code="no_deployment_capacity",
            headers=headers,
        )
    if isinstance(last_error, ProviderError):
        if last_error.status == 429:
            if last_error.retry_after:
                headers["retry-after"] = str(int(last_error.retry_after + 0.999))
            return UpstreamRejected(
                f"Upstream rate limited the request: {last_error.message}", status=429, headers=headers
            )
        return UpstreamFailed(
            f"Upstream failed after {attempts} attempt(s): {last_error.message}",
            status=502,
            code="upstream_error",
            headers=headers,
        )
    if last_error is not None and is_timeout(last_error):
        return UpstreamFailed(
            f"Upstream timed out after {attempts} attempt(s).", status=504, code="upstream_timeout", headers=headers
        )
    if last_error is not None and could_not_connect(last_error):
        return UpstreamFailed(
            f"Upstream unreachable after {attempts} attempt(s): the connection could not be made.",
            status=503,
            code="upstream_unavailable",
            headers=headers,
        )
    if last_error is not None:
        return UpstreamFailed(
            f"Upstream failed after {attempts} attempt(s): it closed the connection before a complete answer.",
            status=502,
            code="upstream_error",
            headers=headers,
        )
    return UpstreamFailed("No deployment is available for this model.", status=503, code="no_deployment")


def upstream_payload(deployment: RoutedDeployment, payload: dict) -> dict:
    return {**payload, "model": deployment.target.model}


async def _built(deployment: RoutedDeployment, call_type: str, body: dict, stream: bool, timeout: httpx.Timeout):
    """The provider's request, with the credentials it must fetch first (Vertex AI's access token) added."""
    provider, target = deployment.provider, deployment.target
    request = _translated(deployment, provider.build_request, target, call_type, body, stream)
    if provider.fetches_credentials:
        request.headers.update(await provider.authorization(target, lambda sent: send_upstream(sent, timeout)))
    return request


def _translated(deployment: RoutedDeployment, translate, *args):
    """A provider's translation of the client's request; a request it cannot translate is the client's 400."""
    try:
        return translate(*args)
    except SHAPE_ERRORS as exc:
        raise ProviderError(
            400, f"The request cannot be sent to {deployment.target.provider}: {type(exc).__name__}: {exc}", False
        ) from exc


def _local_answer(deployment: RoutedDeployment, call_type: str, body: dict, stream: bool):
    """A local (mock) provider's answer, made here instead of by an upstream: a response, or a stream's chunks."""
    return _translated(deployment, deployment.provider.local_response, deployment.target, call_type, body, stream)


async def complete_once(deployment: RoutedDeployment, timeout: httpx.Timeout, call_type: str, payload: dict):
    """One non-streaming attempt: the OpenAI-shaped response and how long the upstream took."""
    provider, target = deployment.provider, deployment.target
    body = upstream_payload(deployment, payload)
    started = time.perf_counter()
    if provider.local:
        return _local_answer(deployment, call_type, body, False), time.perf_counter() - started
    request = await _built(deployment, call_type, body, False, timeout)
    response = await send_upstream(request, timeout)
    parsed = provider.parse_response(target, call_type, body, response.status_code, response.content, response.headers)
    return parsed, time.perf_counter() - started


class LocalStream:
    """The stream-parser view of a local provider's chunks: already OpenAI-shaped, complete, usage known."""

    def __init__(self, chunks: list[dict]):
        self.usage = next((chunk["usage"] for chunk in reversed(chunks) if chunk.get("usage")), None)
        self.done = True


@dataclass(slots=True)
class OpenedStream:
    response: httpx.Response | None  # None for a local (mock) provider
    parser: object
    local_chunks: list | None
    started: float
    on_close: Callable[[], None] | None = None  # the routing stats' end of this call: the relay closes the stream

    def closed(self) -> None:
        """The relay is done with the upstream stream (however it ended): the call is no longer in flight."""
        release, self.on_close = self.on_close, None
        if release is not None:
            release()


async def open_stream(deployment: RoutedDeployment, timeout: httpx.Timeout, call_type: str, payload: dict):
    """Start a streaming attempt: fails (and so is retried) until the upstream answers 200."""
    provider, target = deployment.provider, deployment.target
    body = upstream_payload(deployment, payload)
    started = time.perf_counter()
    if provider.local:
        chunks = _local_answer(deployment, call_type, body, True)
        return OpenedStream(None, LocalStream(chunks), chunks, started)
    parser = provider.stream_parser(target, call_type, body)
    request = await _built(deployment, call_type, body, True, timeout)
    response = await send_upstream(request, timeout, stream=True)
    if response.status_code >= 300:
        try:
            error_body = await response.aread()
        finally:
            await response.aclose()
        provider.parse_response(target, call_type, body, response.status_code, error_body, response.headers)
    return OpenedStream(response, parser, None, started)
