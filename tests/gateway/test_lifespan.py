"""Start-up under uvicorn's lifespan protocol: the routing table loads before the first call, then the process
freezes what it has loaded out of the cyclic GC."""

import asyncio
import logging

import pytest

import gateway.asgi
import gateway.proxy.state
from gateway.asgi import application
from gateway.proxy.state import gateway_state

pytestmark = pytest.mark.django_db(transaction=True)  # the table loads on the state's own thread


async def serve_lifespan() -> list[str]:
    """What the application answers to uvicorn's start-up then shutdown."""
    incoming: asyncio.Queue = asyncio.Queue()
    for message in ("lifespan.startup", "lifespan.shutdown"):
        incoming.put_nowait({"type": message})
    answered = []

    async def send(message):
        answered.append(message["type"])

    await asyncio.wait_for(application({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, send), 60)
    return answered


class TableLoads:
    """Each routing-table load, as "loaded" or "failed": the first `failures` of them raise."""

    def __init__(self, real_load):
        self.real_load = real_load
        self.done: list[str] = []
        self.failures = 0

    def __call__(self, current):
        if self.done.count("failed") < self.failures:
            self.done.append("failed")
            raise ConnectionError("database not there yet")
        self.done.append("loaded")
        return self.real_load(current)


@pytest.fixture
def loads(monkeypatch) -> TableLoads:
    counted = TableLoads(gateway.proxy.state._load)
    monkeypatch.setattr(gateway.proxy.state, "_load", counted)
    return counted


@pytest.fixture
def freezes(monkeypatch, loads) -> list[list[str]]:
    """The table loads done by each freeze."""
    made: list[list[str]] = []
    monkeypatch.setattr(gateway.asgi, "freeze_long_lived_objects", lambda: made.append(list(loads.done)))
    return made


async def test_start_up_loads_the_routing_table_then_freezes_what_the_process_loaded(loads, freezes):
    answered = await serve_lifespan()
    state = await gateway_state()

    assert answered == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert freezes == [["loaded"]]
    assert state.table is not None and loads.done == ["loaded"]  # the first call found it loaded


async def test_a_table_that_cannot_load_at_start_up_loads_on_the_first_call(loads, freezes, caplog):
    loads.failures = 1
    with caplog.at_level(logging.ERROR, logger="gateway.asgi"):
        answered = await serve_lifespan()
    state = await gateway_state()

    assert answered == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert "did not load at start-up" in caplog.text and freezes == [["failed"]]
    assert state.table is not None and loads.done == ["failed", "loaded"]


async def test_a_failed_first_load_is_tried_again_by_the_next_call_not_repeated_to_every_call(loads):
    loads.failures = 2
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await gateway_state()

    assert (await gateway_state()).table is not None
    assert loads.done == ["failed", "failed", "loaded"]
