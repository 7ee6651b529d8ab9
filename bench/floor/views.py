"""The floor: forward the request body to the fake upstream and answer with its body, nothing else.

It sends with the gateway's own `send_upstream` (gateway/proxy/upstream.py: the same pool, the same HTTP client),
so the distance between this and Tollgate is what Tollgate's own work costs.
"""

import os

import httpx
from django.http import HttpResponse, StreamingHttpResponse

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


async def forward(request):
    upstream = await _send(_UPSTREAM, request.body, stream=False)
    return HttpResponse(upstream.content, status=upstream.status_code, content_type="application/json")


async def forward_stream(request):
    upstream = await _send(_STREAM_UPSTREAM, request.body, stream=True)

    async def relay():
        try:
            async for data in upstream.aiter_raw():
                yield data
        finally:
            await upstream.aclose()

    return StreamingHttpResponse(relay(), status=upstream.status_code, content_type="text/event-stream")


async def liveliness(request):
    return HttpResponse(b'"I\'m alive!"', content_type="application/json")
