"""The floor's views: forward the request body to the fake upstream and answer with its body, nothing else.

They send with the gateway's own `send_upstream` (gateway/proxy/upstream.py: the same pool, the same HTTP client),
and a stream goes back as Tollgate's does (a streaming response whose `aiter()` is the relay itself), so the
distance between this and Tollgate is what Tollgate's own work costs.
"""

import gc
import os
import sys

import httpx
import orjson
from django.http import HttpResponse, StreamingHttpResponse

from gateway.memory import YOUNG_COLLECTION_THRESHOLD
from gateway.providers.base import UpstreamRequest
from gateway.proxy.upstream import send_upstream

_UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:9100/v1/chat/completions")
_STREAM_UPSTREAM = os.environ.get("FLOOR_STREAM_UPSTREAM", "http://127.0.0.1:9101/v1/chat/completions")
_HEADERS = {"content-type": "application/json", "authorization": "Bearer fake-key"}
_TIMEOUT = httpx.Timeout(600.0, connect=5.0)

# FLOOR_TRANSPORT=httpx sends with httpx's own transport instead, to compare it with the aiohttp one the gateway uses.
_HTTPX_TRANSPORT = os.environ.get("FLOOR_TRANSPORT") == "httpx"
_httpx_transport: httpx.AsyncHTTPTransport | None = None


async def _send(url: str, body: bytes, stream: bool) -> httpx.Response:
    if not _HTTPX_TRANSPORT:
        return await send_upstream(UpstreamRequest("POST", url, _HEADERS, body), _TIMEOUT, stream=stream)
    global _httpx_transport
    if _httpx_transport is None:
        _httpx_transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1000))
    response = await _httpx_transport.handle_async_request(httpx.Request("POST", url, content=body, headers=_HEADERS))
    if not stream:
        await response.aread()
        await response.aclose()
    return response


class RelayedStream(StreamingHttpResponse):
    """As gateway.proxy.streaming.RelayResponse: `aiter()` is the relay itself, not Django's two wrappers."""

    def __init__(self, upstream: httpx.Response):
        self.chunks = self._relay(upstream)
        super().__init__(self.chunks, status=upstream.status_code, content_type="text/event-stream")

    @staticmethod
    async def _relay(upstream: httpx.Response):
        try:
            async for data in upstream.aiter_raw():
                yield data
        finally:
            await upstream.aclose()

    def __aiter__(self):
        return self.chunks


async def forward(request):
    upstream = await _send(_UPSTREAM, request.body, stream=False)
    return HttpResponse(upstream.content, status=upstream.status_code, content_type="application/json")


async def forward_stream(request):
    return RelayedStream(await _send(_STREAM_UPSTREAM, request.body, stream=True))


async def liveliness(request):
    return HttpResponse(b'"I\'m alive!"', content_type="application/json")


async def tuning(request):
    """What the floor's process runs with, for tests/bench/test_floor.py to compare with Tollgate's serving."""
    state = {
        "handler": type(sys.modules["bench.floor.asgi"].handler).__qualname__,
        "gc_frozen_objects": gc.get_freeze_count(),
        "gc_young_threshold": gc.get_threshold()[0],
        "gc_young_threshold_tollgate": YOUNG_COLLECTION_THRESHOLD,
    }
    return HttpResponse(orjson.dumps(state), content_type="application/json")
