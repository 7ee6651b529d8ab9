"""1,000 clients that leave mid-call against a live server: nothing leaks, and each call is charged exactly once.

The clients (the openai SDK's async client, 50 at a time) leave at each stage of a call: while the upstream has
not answered yet (a whole answer, and a stream), once the response's headers are there but before its first byte
(the gateway has dispatched and started relaying; the upstream is slow to send its first frame), and after the first
words of a stream. Afterwards the upstream has no request left open (the gateway closed each upstream call), the
server's event loop has the tasks it had before, its open file descriptors have not grown, and every call has one
spend log charging what the upstream used.

Where a client can leave that this cannot reach: after the view returned its streaming response but before Django
iterated it. Live, no await separates the two, so tests/gateway/test_proxy_requests.py provokes it in-process.
"""

import asyncio
import os
import uuid
from collections import Counter
from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from tests.e2e.server import GatewayServer
from tests.fakes.upstream import Behaviour, FakeUpstream
from tests.polling import wait_until
from tests.streams import leave_once

pytestmark = pytest.mark.live

INPUT, OUTPUT = Decimal("0.000001"), Decimal("0.000002")

CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-upstream-leaks-secret-3, timeout: 90}}
    model_info: {{id: openai-1, input_cost_per_token: {input}, output_cost_per_token: {output}}}
"""

REPLY = "Hello from the fake upstream!"
CALLS_PER_STAGE = 250
CONCURRENCY = 50
# Anything the client could wait for arrives long before these: the client always leaves first.
NEVER = 60.0

STAGES = {
    "waiting-whole": (False, Behaviour(first_byte_delay=NEVER)),
    "waiting-stream": (True, Behaviour(first_byte_delay=NEVER)),
    "headers": (True, Behaviour(chunk_delay=NEVER)),
    "first-words": (True, Behaviour(chunk_delay=0.02, stream_end="hang")),
}


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(reply=REPLY) as up:
        yield up


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    with GatewayServer(
        tmp_path_factory.mktemp("leaks"),
        CONFIG.format(up=upstream.url, input=INPUT, output=OUTPUT),
        env={"TOLLGATE_DEBUG_ENDPOINTS": "1"},  # the task counts these tests compare
    ) as live:
        yield live


def tasks_of(server: GatewayServer) -> dict:
    response = httpx.get(f"{server.url}/debug/asyncio-tasks", headers=server.admin_headers(), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def open_files(server: GatewayServer) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def quiet_open_files(server: GatewayServer) -> int:
    """The server's open files once the connections its clients closed are gone: the same count twice running."""
    counts = []

    def settled() -> bool:
        counts.append(open_files(server))
        return len(counts) > 1 and counts[-1] == counts[-2]  # two counts 0.2 s apart

    wait_until(settled, lambda: f"the server's open files to settle: {counts}", timeout=10, interval=0.2)
    return counts[-1]


def test_asyncio_tasks_are_for_the_master_key_only(server, key):
    # No key: 401; a virtual key, valid but not the master key: 403.
    for headers, status in (({}, 401), ({"Authorization": f"Bearer {key['key']}"}, 403)):
        response = httpx.get(f"{server.url}/debug/asyncio-tasks", headers=headers, timeout=10)

        assert response.status_code == status
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}

    counts = tasks_of(server)
    assert counts["total_active_tasks"] == sum(counts["by_name"].values()) > 0


class Clients:
    """The openai SDK's async client, its calls tagged so that each one's upstream request and spend log are found."""

    def __init__(self, server: GatewayServer, key: dict, upstream: FakeUpstream):
        self.sdk = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=key["key"], max_retries=0, timeout=30)
        self.upstream = upstream
        self.arrived: dict[str, asyncio.Event] = {}
        loop = asyncio.get_running_loop()

        def arrived(recorded) -> None:
            event = self.arrived.get(recorded.json["metadata"]["tag"])
            if event is not None:
                loop.call_soon_threadsafe(event.set)

        upstream.on_request = arrived

    async def __aenter__(self) -> "Clients":
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.upstream.on_request = None
        await self.sdk.close()

    def create(self, tag: str, stream: bool):
        return self.sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hello"}], stream=stream, metadata={"tag": tag}
        )

    async def answered(self, tag: str, stream: bool) -> None:
        if not stream:
            await self.create(tag, stream=False)
            return
        async for _chunk in await self.create(tag, stream=True):
            pass

    async def leave(self, tag: str, stage: str) -> None:
        stream, _behaviour = STAGES[stage]
        if stage.startswith("waiting"):
            self.arrived[tag] = asyncio.Event()
            call = asyncio.create_task(self.create(tag, stream))
            await asyncio.wait_for(self.arrived[tag].wait(), 30)  # the upstream has it: the gateway dispatched
            del self.arrived[tag]
            call.cancel()  # httpx closes the connection of a cancelled request
            with pytest.raises(asyncio.CancelledError):
                await call
            return
        answer = await self.create(tag, stream=True)  # returns with the headers
        if stage == "first-words":
            await leave_once(answer, lambda chunk: any(choice.delta.content for choice in chunk.choices))
        await answer.close()


async def at_most(concurrency: int, calls) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def one(call):
        async with slots:
            await call

    await asyncio.gather(*(one(call) for call in calls))


async def warm_up(server: GatewayServer, key: dict, upstream: FakeUpstream) -> list[str]:
    """Calls answered in full at the test's concurrency: the server's connection pools grow to their size."""
    tags = [f"warm-{uuid.uuid4().hex}" for _ in range(CONCURRENCY * 4)]
    async with Clients(server, key, upstream) as clients:
        await at_most(CONCURRENCY, (clients.answered(tag, stream=i % 2 == 1) for i, tag in enumerate(tags)))
    return tags


async def leave_at_every_stage(server: GatewayServer, key: dict, upstream: FakeUpstream) -> dict[str, str]:
    """Each call's tag and the stage its client left at."""
    stage_of: dict[str, str] = {}
    async with Clients(server, key, upstream) as clients:
        for stage, (_stream, behaviour) in STAGES.items():
            upstream.behaviour = behaviour
            tags = [f"{stage}-{uuid.uuid4().hex}" for _ in range(CALLS_PER_STAGE)]
            stage_of.update(dict.fromkeys(tags, stage))
            await at_most(CONCURRENCY, (clients.leave(tag, stage) for tag in tags))
    upstream.behaviour = Behaviour()
    return stage_of


def logs_of(server: GatewayServer, key: dict) -> list[dict]:
    columns = ("status", "prompt_tokens", "completion_tokens", "cost", "metadata")
    rows = server.query(f"SELECT {', '.join(columns)} FROM spend_spendlog WHERE key_hash = %s", key["token"])
    logs = [dict(zip(columns, row, strict=True)) for row in rows]
    for log in logs:
        log["cost"] = Decimal(str(log["cost"]))
        metadata = log.pop("metadata")
        log["tag"] = (orjson.loads(metadata) if isinstance(metadata, str) else metadata)["tag"]
    return logs


def test_a_thousand_clients_leaving_at_every_stage_leak_nothing_and_are_each_charged_once(server, key, upstream):
    warmed = asyncio.run(warm_up(server, key, upstream))
    wait_until(lambda: len(logs_of(server, key)) == len(warmed), "the warm-up's logs")
    baseline_tasks, baseline_files = tasks_of(server), quiet_open_files(server)

    stage_of = asyncio.run(leave_at_every_stage(server, key, upstream))

    upstream.wait_for_idle(timeout=20)  # the gateway closed every upstream call its client left
    assert upstream.cancelled == len(stage_of)
    wait_until(lambda: len(logs_of(server, key)) >= len(warmed) + len(stage_of), "every call's log")
    wait_until(lambda: tasks_of(server)["by_name"] == baseline_tasks["by_name"], "the server's tasks")
    after_tasks, after_files = tasks_of(server), open_files(server)
    # Idle pooled connections come and go with the traffic: compare with the pools at their size again.
    rewarmed = asyncio.run(warm_up(server, key, upstream))
    wait_until(lambda: len(logs_of(server, key)) == len(warmed) + len(stage_of) + len(rewarmed), "the warm-up's logs")
    rewarmed_files, logs = quiet_open_files(server), logs_of(server, key)
    print(
        f"\n{len(stage_of)} clients left: {dict(Counter(stage_of.values()))}; server tasks "
        f"{baseline_tasks['total_active_tasks']} -> {after_tasks['total_active_tasks']} {after_tasks['by_name']}; "
        f"open files {baseline_files} after warm-up -> {after_files} after the clients left -> {rewarmed_files} "
        f"after warming up again; upstream requests open: {upstream.open_requests}"
    )
    # The pools may grow to a connection per concurrent call (upstream and Redis: warm-ups that ran before never
    # needed that many at once), never with the number of calls: 1,000 leaked calls would be ~1,000 more files.
    assert rewarmed_files <= baseline_files + 2 * CONCURRENCY
    assert Counter(log["tag"] for log in logs) == Counter([*warmed, *stage_of, *rewarmed])  # one log a call
    for log in logs:
        assert log["cost"] == log["prompt_tokens"] * INPUT + log["completion_tokens"] * OUTPUT
        stage = stage_of.get(log["tag"])
        if stage is None:
            assert log["status"] == "success"
            continue
        assert log["status"] == "client_disconnected"
        if stage.startswith("waiting"):  # the upstream never answered: nothing it used is known
            assert (log["prompt_tokens"], log["completion_tokens"]) == (0, 0)
        elif stage == "headers":  # it accepted the prompt (estimated) and sent no word
            assert log["prompt_tokens"] > 0 and log["completion_tokens"] == 0
        else:  # the words relayed: at least the first, at most the whole reply
            assert log["prompt_tokens"] > 0 and 2 <= log["completion_tokens"] <= (len(REPLY) + 3) // 4
    [(spend,)] = server.query("SELECT spend FROM keys_virtualkey WHERE token_hash = %s", key["token"])
    assert Decimal(str(spend)) == sum(log["cost"] for log in logs)
