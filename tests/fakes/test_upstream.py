"""The fake upstream does what tests script it to do."""

import asyncio

import httpx
import pytest

from tests.fakes.upstream import Behaviour, FakeUpstream
from tests.streams import leave_once

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def http():
    with httpx.Client() as client:
        yield client


def test_records_each_request(http, upstream):
    response = http.post(f"{upstream.url}/v1/chat/completions?x=1", json=CHAT, headers={"Authorization": "Bearer k"})

    assert response.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream!"
    [seen] = upstream.wait_for_requests(1)
    assert (seen.path, seen.query, seen.headers["authorization"], seen.json) == (
        "/v1/chat/completions",
        {"x": "1"},
        "Bearer k",
        CHAT,
    )


def test_scripted_statuses_apply_to_the_next_calls_only(http, upstream):
    upstream.script(Behaviour(status=429, retry_after="2", message="slow down"), Behaviour(status=500))

    statuses = [http.post(f"{upstream.url}/v1/chat/completions", json=CHAT) for _ in range(3)]

    assert [r.status_code for r in statuses] == [429, 500, 200]
    assert statuses[0].headers["retry-after"] == "2"
    assert statuses[0].json()["error"]["message"] == "slow down"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/v1/messages", {"type": "error", "error": {"type": "overloaded_error", "message": "scripted failure 529"}}),
        ("/api/chat", {"error": "scripted failure 529"}),
        ("/endpoints/e/invocations", {"message": "scripted failure 529"}),
    ],
)
def test_errors_come_in_each_protocols_shape(http, upstream, path, error):
    upstream.fail(529)

    assert http.post(upstream.url + path, json=CHAT).json() == error


def test_dropped_before_answering(http, upstream):
    upstream.script(Behaviour(drop="before"))

    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"{upstream.url}/v1/chat/completions", json=CHAT)


@pytest.mark.parametrize("stream", [False, True])
def test_dropped_mid_answer(http, upstream, stream):
    upstream.script(Behaviour(drop="mid_stream"))

    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"{upstream.url}/v1/chat/completions", json={**CHAT, "stream": stream})


def test_stream_without_its_end_marker(http, upstream):
    upstream.script(Behaviour(stream_end="missing"))

    body = http.post(f"{upstream.url}/v1/chat/completions", json={**CHAT, "stream": True}).text

    assert body.count("data: {") == 7  # role, five words, finish
    assert "[DONE]" not in body
    assert "[DONE]" in http.post(f"{upstream.url}/v1/chat/completions", json={**CHAT, "stream": True}).text


def test_malformed_body(http, upstream):
    upstream.script(Behaviour(malformed=True))

    response = http.post(f"{upstream.url}/v1/chat/completions", json=CHAT)

    with pytest.raises(ValueError):
        response.json()


def test_first_byte_delay(http, upstream):
    upstream.script(Behaviour(first_byte_delay=1.0))

    with pytest.raises(httpx.ReadTimeout):
        http.post(f"{upstream.url}/v1/chat/completions", json=CHAT, timeout=0.2)
    upstream.wait_for_requests(1)


async def test_counts_streams_the_client_abandons(upstream):
    upstream.script(Behaviour(stream_end="hang"))

    async with httpx.AsyncClient() as client:
        request = {**CHAT, "stream": True}
        async with client.stream("POST", f"{upstream.url}/v1/chat/completions", json=request) as response:
            await leave_once(response.aiter_bytes(), lambda _part: True)

    await upstream.wait_for_cancelled_streams_async(1)
    assert upstream.cancelled == 1


async def test_slow_stream_in_an_async_test():
    async with FakeUpstream(reply="one two three") as upstream:
        upstream.behaviour = Behaviour(chunk_delay=0.05)
        async with httpx.AsyncClient() as client:
            started = asyncio.get_running_loop().time()
            response = await client.post(f"{upstream.url}/v1/chat/completions", json={**CHAT, "stream": True})
            elapsed = asyncio.get_running_loop().time() - started

    assert response.text.count("data: {") == 5
    assert elapsed >= 0.25


def test_reset_forgets_what_a_previous_test_did(http, upstream):
    upstream.script(Behaviour(status=500))
    upstream.behaviour = Behaviour(status=503)
    http.post(f"{upstream.url}/v1/chat/completions", json=CHAT)

    upstream.reset()

    assert (upstream.requests, upstream.cancelled) == ([], 0)
    assert http.post(f"{upstream.url}/v1/chat/completions", json=CHAT).status_code == 200


async def test_counts_the_requests_being_answered_and_announces_each_one(upstream):
    upstream.script(Behaviour(stream_end="hang"))
    announced = []
    upstream.on_request = announced.append

    def held(_part: bytes) -> bool:
        assert upstream.open_requests == 1  # the hanging stream holds its handler
        return True

    async with httpx.AsyncClient() as client:
        request = {**CHAT, "stream": True}
        async with client.stream("POST", f"{upstream.url}/v1/chat/completions", json=request) as response:
            await leave_once(response.aiter_bytes(), held)
        await upstream.wait_for_idle_async()  # leaving freed it

    assert [seen.json for seen in announced] == [request]
    assert upstream.open_requests == 0


def test_a_json_answer_with_more_headers_and_gzip_encoded(http, upstream):
    upstream.script(Behaviour(headers=(("Set-Cookie", "a=b; Path=/"),), gzip=True))

    response = http.post(f"{upstream.url}/v1/chat/completions", json=CHAT)

    assert (response.headers["set-cookie"], response.headers["content-encoding"]) == ("a=b; Path=/", "gzip")
    assert response.json()["object"] == "chat.completion"  # httpx decoded it
