"""The floor: forward the request body to the fake upstream and answer with its body, nothing else.

Same HTTP client setup as gateway/proxy/upstream.py (httpx over httpx-aiohttp's transport, the same limits), so
the distance between this and Tollgate is what Tollgate's own work costs.
"""

import os

import httpx
from django.http import HttpResponse, StreamingHttpResponse
from httpx_aiohttp import AiohttpTransport

_UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:9100/v1/chat/completions")
_STREAM_UPSTREAM = os.environ.get("FLOOR_STREAM_UPSTREAM", "http://127.0.0.1:9101/v1/chat/completions")
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)
_HEADERS = {"content-type": "application/json", "authorization": "Bearer fake-key"}
_client: httpx.AsyncClient | None = None


# FLOOR_TRANSPORT=httpx measures httpx's own transport, to compare with the aiohttp one the gateway uses.
_TRANSPORT = os.environ.get("FLOOR_TRANSPORT", "aiohttp")


def _http() -> httpx.AsyncClient:
    global _client
    if _client is None:
        transport = AiohttpTransport(limits=_LIMITS, trust_env=False) if _TRANSPORT == "aiohttp" else None
        _client = httpx.AsyncClient(transport=transport, limits=_LIMITS)
    return _client


async def forward(request):
    upstream = await _http().post(_UPSTREAM, content=request.body, headers=_HEADERS)
    return HttpResponse(upstream.content, status=upstream.status_code, content_type="application/json")


async def forward_stream(request):
    client = _http()
    upstream = await client.send(
        client.build_request("POST", _STREAM_UPSTREAM, content=request.body, headers=_HEADERS), stream=True
    )

    async def relay():
        try:
            async for data in upstream.aiter_raw():
                yield data
        finally:
            await upstream.aclose()

    return StreamingHttpResponse(relay(), status=upstream.status_code, content_type="text/event-stream")


async def liveliness(request):
    return HttpResponse(b'"I\'m alive!"', content_type="application/json")
