"""The client every upstream call goes through."""

import httpx

from gateway.providers.base import UpstreamRequest
from gateway.proxy.upstream import UpstreamClient, close_http_clients, upstream_request


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


async def test_an_upstream_request_carries_the_providers_url_headers_body_and_timeout():
    provider_request = UpstreamRequest(
        "POST", "http://127.0.0.1:9/v1/chat/completions", {"authorization": "Bearer sk-up"}, b'{"model":"m"}'
    )

    built = upstream_request(provider_request, httpx.Timeout(30.0, connect=5.0))
    await close_http_clients()

    assert (built.method, str(built.url), built.content) == ("POST", provider_request.url, b'{"model":"m"}')
    assert built.headers["authorization"] == "Bearer sk-up"
    assert built.extensions["timeout"] == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}
