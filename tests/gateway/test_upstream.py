"""The client every upstream call goes through."""

import httpx

import gateway.proxy.upstream
from gateway.providers.base import UpstreamRequest
from gateway.proxy.upstream import UpstreamClient, send_upstream


async def test_a_cookie_one_upstream_answer_sets_never_rides_along_on_the_next_call():
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"set-cookie": "__cf_bm=caller-one; Path=/; HttpOnly"}, json={})

    async with UpstreamClient(transport=httpx.MockTransport(upstream)) as client:
        first = await client.post("https://api.example.com/v1/chat/completions", json={})
        await client.post("https://api.example.com/v1/chat/completions", json={})

        assert first.cookies["__cf_bm"] == "caller-one"  # the answer still carries it, for whoever reads it
        assert [request.headers.get("cookie") for request in seen] == [None, None]
        assert not client.cookies


async def test_a_providers_request_goes_out_with_its_url_headers_body_and_timeout(monkeypatch):
    sent: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"ok": True})

    client = UpstreamClient(transport=httpx.MockTransport(upstream))
    monkeypatch.setattr(gateway.proxy.upstream, "http_client", lambda: client)
    provider_request = UpstreamRequest(
        "POST", "http://127.0.0.1:9/v1/chat/completions", {"authorization": "Bearer sk-up"}, b'{"model":"m"}'
    )

    async with client:
        answer = await send_upstream(provider_request, httpx.Timeout(30.0, connect=5.0))

    assert answer.json() == {"ok": True}
    [request] = sent
    assert (request.method, str(request.url), request.content) == ("POST", provider_request.url, b'{"model":"m"}')
    assert request.headers["authorization"] == "Bearer sk-up"
    assert request.extensions["timeout"] == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}
