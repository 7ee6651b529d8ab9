"""The floor: forward the request body to the fake upstream and answer with its body, nothing else.

Same HTTP client setup as gateway/proxy/upstream.py (an httpx request handed straight to httpx-aiohttp's transport,
the same limits), so the distance between this and Tollgate is what Tollgate's own work costs.
"""

import os

import httpx
from django.http import HttpResponse, StreamingHttpResponse
from httpx_aiohttp import AiohttpTransport

_UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:9100/v1/chat/completions")
_STREAM_UPSTREAM = os.environ.get("FLOOR_STREAM_UPSTREAM", "http://127.0.0.1:9101/v1/chat/completions")
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)
_HEADERS = {"content-type": "application/json", "authorization": "Bearer fake-key"}
_URL, _STREAM_URL = httpx.URL(_UPSTREAM), httpx.URL(_STREAM_UPSTREAM)
_transport: httpx.AsyncBaseTransport | None = None


# FLOOR_TRANSPORT=httpx measures httpx's own transport, to compare with the aiohttp one the gateway uses.
_TRANSPORT = os.environ.get("FLOOR_TRANSPORT", "aiohttp")


async def _send(url: httpx.URL, body: bytes) -> httpx.Response:
    global _transport
    if _transport is None:
        if _TRANSPORT == "aiohttp":
            _transport = AiohttpTransport(limits=_LIMITS, trust_env=False)
        else:
            _transport = httpx.AsyncHTTPTransport(limits=_LIMITS)
    return await _transport.handle_async_request(httpx.Request("POST", url, content=body, headers=_HEADERS))


async def forward(request):
    upstream = await _send(_URL, request.body)
    try:
        body = await upstream.aread()
    finally:
        await upstream.aclose()
    return HttpResponse(body, status=upstream.status_code, content_type="application/json")


async def forward_stream(request):
    upstream = await _send(_STREAM_URL, request.body)

    async def relay():
        try:
            async for data in upstream.aiter_raw():
                yield data
        finally:
            await upstream.aclose()

    return StreamingHttpResponse(relay(), status=upstream.status_code, content_type="text/event-stream")


async def liveliness(request):
    return HttpResponse(b'"I\'m alive!"', content_type="application/json")
