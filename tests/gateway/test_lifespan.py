"""Start-up under uvicorn's lifespan protocol: the routing table loads before the first call, then the process
freezes what it has loaded out of the cyclic GC. Shutdown writes the charges still queued, then closes."""

import asyncio
import logging
import threading

import pytest

import gateway.asgi
import gateway.proxy.state
import spend.ledger
from gateway.asgi import application
from gateway.proxy.state import gateway_state
from gateway.proxy.upstream import upstream_pool
from spend.ledger import Ledger, write_batch
from spend.models import SpendLog
from tests.polling import wait_until_async
from tests.spend.conftest import make_entry

pytestmark = pytest.mark.django_db(transaction=True)  # the table loads on the state's own thread


async def serve_lifespan(while_serving=None) -> list[str]:
    """What the application answers to uvicorn's start-up then shutdown; `while_serving` runs between the two."""
    incoming: asyncio.Queue = asyncio.Queue()
    answered = []

    async def send(message):
        answered.append(message["type"])

    async with asyncio.timeout(60):
        serving = asyncio.create_task(application({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, send))
        incoming.put_nowait({"type": "lifespan.startup"})
        await wait_until_async(lambda: asyncio.sleep(0, answered), "an answer to lifespan.startup")
        if while_serving is not None:
            await while_serving()
        incoming.put_nowait({"type": "lifespan.shutdown"})
        await serving
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
    states = []
    answered = await serve_lifespan(lambda: _keep(states, gateway_state()))
    state = states[0]

    assert answered == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert freezes == [["loaded"]]
    assert state.table is not None and loads.done == ["loaded"]  # the first call found it loaded


async def test_a_table_that_cannot_load_at_start_up_loads_on_the_first_call(loads, freezes, caplog):
    loads.failures = 1
    states = []
    with caplog.at_level(logging.ERROR, logger="gateway.asgi"):
        answered = await serve_lifespan(lambda: _keep(states, gateway_state()))
    state = states[0]

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


async def test_shutdown_settles_queued_charges_then_closes_what_the_process_opened(loads, freezes, monkeypatch):
    opened = {}
    settled_at_close = []
    close_ledgers, drain_ledger = spend.ledger.close_ledgers, spend.ledger.drain_ledger
    shutting_down = threading.Event()

    async def drain_after_saying_so():
        shutting_down.set()
        await drain_ledger()

    def close_when_settled():
        settled_at_close.extend(charge.done() for charge in opened["charges"])
        close_ledgers()

    monkeypatch.setattr(spend.ledger, "close_ledgers", close_when_settled)
    monkeypatch.setattr(spend.ledger, "drain_ledger", drain_after_saying_so)

    async def charge_two_calls():
        opened["pool"] = upstream_pool()
        writing = threading.Event()

        def slow_write(entries):
            writing.set()
            # The first batch is still being written, and the second call's entry queued, when shutdown begins.
            assert shutting_down.wait(20), "shutdown never began draining the ledger"
            write_batch(entries)

        ledger = opened["ledger"] = spend.ledger._ledgers[asyncio.get_running_loop()] = Ledger(writer=slow_write)
        opened["charges"] = [ledger.submit(make_entry())]
        await asyncio.to_thread(writing.wait, 5)
        opened["charges"].append(ledger.submit(make_entry()))

    answered = await serve_lifespan(charge_two_calls)

    assert answered == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert settled_at_close == [True, True]  # the writer thread was closed only once nothing waited for it
    assert [charge.exception() for charge in opened["charges"]] == [None, None]
    assert await SpendLog.objects.acount() == 2
    assert opened["ledger"]._executor._shutdown and opened["pool"].closed
    assert gateway.proxy.state._states == {} and spend.ledger._ledgers == {}


async def _keep(kept: list, awaitable) -> None:
    kept.append(await awaitable)
