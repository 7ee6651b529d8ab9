"""The pipelined connection the admission and settle scripts run on: against the local Redis, and against fake
servers for what a healthy local Redis will not do (stay silent, hang up, ask for a password)."""

import asyncio
import contextlib
import uuid

import hiredis
import pytest
import redis

from keys.redis_link import RedisLink, Script
from tests.polling import wait_until_async

REDIS_URL = "redis://127.0.0.1:6379/0"
ECHO = Script("return ARGV[1]")
HANG_UP = object()


@pytest.fixture
async def link():
    made = RedisLink(REDIS_URL)
    yield made
    await made.close()


@contextlib.asynccontextmanager
async def fake_redis(answer):
    """A server on loopback that parses each command it gets and answers with `answer(command)`: bytes, None for
    silence, or HANG_UP to close the connection unanswered."""
    connections, commands = [], []

    async def serve(reader, writer):
        connections.append(writer)
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                commands.append([part.decode() for part in command])
                reply = answer(commands[-1])
                if reply is HANG_UP:
                    writer.close()
                    return
                if reply is not None:
                    writer.write(reply)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", connections, commands
    finally:
        for writer in connections:
            writer.close()
        server.close()


async def test_a_script_redis_has_not_seen_is_sent_whole_once_then_by_its_sha(link):
    script = Script(f"return 'fresh {uuid.uuid4().hex}'")
    sync = redis.Redis.from_url(REDIS_URL)
    assert sync.script_exists(script.sha) == [False]

    first = await link.run(script, [], [])
    second = await link.run(script, [], [])

    assert first == second and first.startswith(b"fresh ")
    assert sync.script_exists(script.sha) == [True]
    sync.close()


async def test_concurrent_calls_each_get_their_own_reply_even_when_callers_stop_waiting(link):
    await link.run(ECHO, [], ["warm"])  # Redis knows the script: every call below is one EVALSHA on the wire
    calls = [asyncio.create_task(link.run(ECHO, [], [f"call-{index}"])) for index in range(300)]
    await asyncio.sleep(0)  # every command is written
    for index in range(0, 300, 3):
        calls[index].cancel()

    results = await asyncio.gather(*calls, return_exceptions=True)

    for index, result in enumerate(results):
        if index % 3 == 0:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result == f"call-{index}".encode()
    assert await link.run(ECHO, [], ["after"]) == b"after"


async def test_an_error_reply_is_a_redis_response_error(link):
    with pytest.raises(redis.ResponseError, match="over budget"):
        await link.run(Script("return redis.error_reply('over budget')"), [], [])
    assert await link.run(ECHO, [], ["still fine"]) == b"still fine"


async def test_the_urls_database_is_the_one_written():
    key = f"tollgate-test:{uuid.uuid4().hex}"
    link = RedisLink("redis://127.0.0.1:6379/9")
    try:
        await link.run(Script("return redis.call('SET', KEYS[1], 'here')"), [key], [])
    finally:
        await link.close()
    in_nine, in_zero = redis.Redis.from_url("redis://127.0.0.1:6379/9"), redis.Redis.from_url(REDIS_URL)
    assert (in_nine.get(key), in_zero.get(key)) == (b"here", None)
    in_nine.delete(key)
    in_nine.close(), in_zero.close()


async def test_credentials_and_database_are_sent_before_the_first_script():
    def answer(command):
        return b"+OK\r\n" if command[0] in ("AUTH", "SELECT") else b"$2\r\nok\r\n"

    async with fake_redis(answer) as (address, _, commands):
        link = RedisLink(f"redis://tollgate:s3cret@{address}/4")
        assert await link.run(ECHO, ["k"], ["a"]) == b"ok"
        await link.close()

    assert commands == [["AUTH", "tollgate", "s3cret"], ["SELECT", "4"], ["EVALSHA", ECHO.sha, "1", "k", "a"]]


async def test_a_refused_password_is_a_connection_error():
    async with fake_redis(lambda command: b"-WRONGPASS invalid username-password pair\r\n") as (address, _, _):
        link = RedisLink(f"redis://:wrong@{address}/0")
        with pytest.raises(redis.ConnectionError, match="WRONGPASS"):
            await link.run(ECHO, [], ["x"])
        await link.close()


async def test_a_redis_that_does_not_answer_times_out_and_the_next_call_connects_again():
    async with fake_redis(lambda command: None) as (address, connections, commands):
        link = RedisLink(f"redis://{address}/0", timeout=0.1)
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await link.run(ECHO, [], ["x"])
        await link.close()

    assert len(commands) == 2 and len(connections) == 2


async def test_a_redis_that_hangs_up_fails_the_calls_waiting_on_it():
    async with fake_redis(lambda command: HANG_UP) as (address, _, _):
        link = RedisLink(f"redis://{address}/0")
        with pytest.raises(ConnectionError):
            await link.run(ECHO, [], ["x"])
        await link.close()


async def test_nothing_listening_is_an_os_error_at_once():
    link = RedisLink("redis://127.0.0.1:9/0")
    with pytest.raises(OSError):
        await link.run(ECHO, [], ["x"])
    await link.close()


async def test_a_caller_that_gives_up_while_the_connection_opens_leaves_no_stale_connection_behind():
    def answer(command):
        return b"+OK\r\n" if command[0] == "SELECT" else b"$2\r\nok\r\n"

    async with fake_redis(answer) as (address, connections, commands):
        link = RedisLink(f"redis://{address}/1", timeout=0.3)
        giving_up = asyncio.create_task(link.run(ECHO, [], ["x"]))
        await asyncio.sleep(0)  # the connection is opening
        giving_up.cancel()

        async def opened():
            return commands == [["SELECT", "1"]] and link._protocol is not None

        async def seen_lost():
            return link._protocol.lost

        await wait_until_async(opened, "the connection to open all the same")
        connections[0].close()  # then Redis goes away
        await wait_until_async(seen_lost, "the link to see its connection closed")

        assert await link.run(ECHO, [], ["x"]) == b"ok"  # on a new connection, not the lost one
        await link.close()

    assert len(connections) == 2
