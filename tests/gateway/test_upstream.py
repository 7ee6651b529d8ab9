"""The pool every upstream call goes through, against a real upstream on loopback."""

import asyncio
import gzip

import aiohttp
import httpx
import pytest

from gateway.providers.base import UpstreamRequest
from gateway.proxy.dispatch import is_timeout
from gateway.proxy.upstream import close_upstream_pool, send_upstream, upstream_pool


class Upstream:
    """An HTTP/1.1 server on loopback that records each request (head fields, body) and gives `answers` in turn."""

    def __init__(self, *answers: bytes, host: str = "127.0.0.1"):
        self.answers = list(answers)
        self.host = host
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.handlers: set[asyncio.Task] = set()

    async def __aenter__(self) -> "Upstream":
        self.server = await asyncio.start_server(self._serve, self.host, 0)
        self.url = f"http://{self.host}:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"
        return self

    async def __aexit__(self, *exc) -> None:
        await close_upstream_pool()
        self.server.close()
        for handler in self.handlers:
            handler.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def _serve(self, reader, writer):
        self.handlers.add(asyncio.current_task())
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
                fields = {name.lower(): value for name, _, value in (line.partition(": ") for line in head[1:] if line)}
                body = await reader.readexactly(int(fields.get("content-length", 0)))
                self.requests.append((head[0], fields, body))
                if not self.answers:
                    await asyncio.sleep(3600)  # an upstream that never answers
                writer.write(self.answers.pop(0))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def answer(body: bytes, *fields: str) -> bytes:
    head = "".join(f"{field}\r\n" for field in (*fields, f"Content-Length: {len(body)}"))
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{head}\r\n".encode() + body


def call(url: str) -> UpstreamRequest:
    return UpstreamRequest("POST", url, {"authorization": "Bearer sk-up", "content-type": "application/json"}, b"{}")


async def test_a_providers_request_goes_out_with_its_url_headers_and_body():
    async with Upstream(answer(b'{"ok": true}')) as upstream:
        request = UpstreamRequest(
            "POST", upstream.url + "?api-version=1", {"authorization": "Bearer sk-up"}, b'{"m":1}'
        )
        response = await send_upstream(request, httpx.Timeout(30.0))

    assert response.status_code == 200 and response.json() == {"ok": True} and response.is_closed
    [(line, fields, body)] = upstream.requests
    assert (line, body) == ("POST /v1/chat/completions?api-version=1 HTTP/1.1", b'{"m":1}')
    assert fields["authorization"] == "Bearer sk-up"
    assert fields["content-length"] == "7"
    assert (fields["accept-encoding"], fields["user-agent"]) == ("gzip, deflate", "tollgate")


async def test_a_compressed_answer_is_read_decoded():
    compressed = gzip.compress(b'{"ok": true}')
    async with Upstream(answer(compressed, "Content-Encoding: gzip")) as upstream:
        response = await send_upstream(call(upstream.url), httpx.Timeout(30.0))

    assert response.json() == {"ok": True}


async def test_a_streamed_answer_is_left_unread_for_the_relay():
    async with Upstream(answer(b'{"ok": true}')) as upstream:
        response = await send_upstream(call(upstream.url), httpx.Timeout(30.0), stream=True)
        assert not response.is_closed
        assert await response.aread() == b'{"ok": true}'
        await response.aclose()


async def test_an_upstream_that_does_not_answer_in_the_read_timeout_is_an_httpx_timeout():
    async with Upstream() as upstream:
        with pytest.raises(httpx.TransportError) as raised:
            await send_upstream(call(upstream.url), httpx.Timeout(0.2))

    assert is_timeout(raised.value)


async def test_an_upstream_refusing_connections_is_an_httpx_error_caused_by_the_refusal():
    async with Upstream() as upstream:
        port = upstream.server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(httpx.TransportError) as raised:
            await send_upstream(call(f"http://127.0.0.1:{port}/v1"), httpx.Timeout(5.0))
    finally:
        await close_upstream_pool()

    assert isinstance(raised.value.__cause__, aiohttp.ClientConnectorError) and not is_timeout(raised.value)


async def test_a_cookie_one_upstream_answer_sets_never_rides_along_on_the_next_call():
    # To an upstream named by host name: aiohttp's default jar would keep its cookie.
    set_cookie = "Set-Cookie: __cf_bm=caller-one; Path=/"
    async with Upstream(answer(b"{}", set_cookie), answer(b"{}"), host="localhost") as upstream:
        first = await send_upstream(call(upstream.url), httpx.Timeout(30.0))
        await send_upstream(call(upstream.url), httpx.Timeout(30.0))

    assert first.headers["set-cookie"] == "__cf_bm=caller-one; Path=/"  # still there, for whoever reads it
    assert [fields.get("cookie") for _, fields, _ in upstream.requests] == [None, None]


async def test_each_event_loop_has_one_pool_made_again_once_closed():
    first = upstream_pool()
    assert upstream_pool() is first

    await close_upstream_pool()

    assert upstream_pool() is not first
    other_loop = await asyncio.to_thread(lambda: asyncio.run(_pool_of_a_new_loop()))
    assert other_loop is not upstream_pool()
    await close_upstream_pool()


async def _pool_of_a_new_loop():
    pool = upstream_pool()
    await close_upstream_pool()
    return pool
