"""The periodic tasks in the server process on the embedded default: run at their intervals from the ASGI lifespan
without REDIS_URL, not at all with it (Celery beat's job), and stopped at shutdown after the run under way."""

import asyncio
import threading
import time
from decimal import Decimal

import pytest
from celery import shared_task

from gateway.asgi import application
from gateway.periodic import start_periodic_tasks
from spend.ledger import write_batch
from spend.models import RollupState, SpendLog
from tests.polling import wait_until_async
from tests.spend.conftest import make_entry

pytestmark = pytest.mark.django_db(transaction=True)  # the tasks run on threads of their own

RUNS: list[str] = []
SLOW_RUN_SECONDS = 0.3
DEADLINE_SECONDS = 10


@shared_task
def count_run() -> None:
    RUNS.append(threading.current_thread().name)


@shared_task
def slow_run() -> None:
    RUNS.append("started")
    time.sleep(SLOW_RUN_SECONDS)
    RUNS.append("finished")


@pytest.fixture(autouse=True)
def embedded(settings):
    RUNS.clear()
    settings.REDIS_URL = ""


def every(seconds: float, *task_paths: str) -> dict:
    return {path: {"task": path, "schedule": seconds} for path in task_paths}


async def until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_SECONDS} s: {what}"
        await asyncio.sleep(0.01)


class Lifespan:
    """uvicorn's side of the lifespan protocol: start-up on entry, shutdown on exit."""

    def __init__(self):
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.answered: list[str] = []

    async def __aenter__(self):
        self.serving = asyncio.create_task(
            application({"type": "lifespan", "asgi": {"version": "3.0"}}, self.incoming.get, self._send)
        )
        self.incoming.put_nowait({"type": "lifespan.startup"})
        await until(lambda: self.answered, "start-up")
        return self

    async def _send(self, message):
        self.answered.append(message["type"])

    async def __aexit__(self, *exc):
        self.incoming.put_nowait({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self.serving, DEADLINE_SECONDS)


async def test_the_lifespan_runs_each_task_at_its_interval_and_stops_at_shutdown(settings):
    settings.CELERY_BEAT_SCHEDULE = every(0.05, f"{__name__}.count_run")
    async with Lifespan() as lifespan:
        assert lifespan.answered == ["lifespan.startup.complete"]
        started = time.monotonic()
        await until(lambda: len(RUNS) >= 3, "three runs")
        assert time.monotonic() - started >= 3 * 0.05 * 0.9  # at its interval, not in a tight loop
    runs_at_shutdown = len(RUNS)
    assert lifespan.answered == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert all(name.startswith("periodic") for name in RUNS)  # off the event loop
    await asyncio.sleep(0.2)  # four intervals: a loop left running would have run again
    assert len(RUNS) == runs_at_shutdown


async def test_shutdown_waits_for_the_run_under_way(settings):
    settings.CELERY_BEAT_SCHEDULE = every(0.01, f"{__name__}.slow_run")
    tasks = start_periodic_tasks()
    await until(lambda: "started" in RUNS, "a run started")
    await tasks.stop()
    assert RUNS == ["started", "finished"]


async def test_with_redis_url_celery_beat_runs_them_not_the_server(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    settings.CELERY_BEAT_SCHEDULE = every(0.01, f"{__name__}.count_run")
    assert start_periodic_tasks() is None


async def test_the_real_schedule_rolls_spend_up_in_process(settings):
    settings.CELERY_BEAT_SCHEDULE = {
        name: {**entry, "schedule": 0.05 if name == "rollup-spend" else 3600}
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
    }
    await asyncio.to_thread(write_batch, [make_entry(cost=Decimal("0.00000000013")) for _ in range(3)])
    last_log_id = await SpendLog.objects.order_by("-id").values_list("id", flat=True).afirst()
    tasks = start_periodic_tasks()
    try:

        async def rolled_up() -> bool:
            state = await RollupState.objects.filter(pk=1).afirst()
            return state is not None and state.last_log_id >= last_log_id

        await wait_until_async(rolled_up, "the rollup to run in process", timeout=DEADLINE_SECONDS)
    finally:
        await tasks.stop()
