"""Celery beat's schedule, run inside the server process when there is no beat: the embedded default (no REDIS_URL).

Without a broker no beat runs, and nothing would roll up spend, reset budgets, refresh the cost map or prune old
logs: `make run` alone would not be a complete system. So the ASGI lifespan (gateway/asgi.py) starts one loop per
entry of settings.CELERY_BEAT_SCHEDULE, at the same interval, and stops them at shutdown. Each run happens on a
thread of its own (the tasks use the ORM, which must stay off the event loop) and goes through the task's eager
`apply()`, as the admin's buttons run them. The tasks are idempotent and serialize on the database (the rollup
holds its state row's lock), so several server processes each running the schedule count nothing twice. A run
that fails is logged and tried again at the next interval.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


def _run(task_path: str) -> None:
    try:
        import_string(task_path).apply()
    except Exception:
        logger.exception("periodic task %s failed: it runs again at its next interval", task_path)
    finally:
        connections.close_all()  # this thread's own connections: the next run may be on another thread


class PeriodicTasks:
    """The beat schedule's tasks, each run every `schedule` seconds (the first run one interval after start)."""

    def __init__(self, schedule: dict[str, dict]):
        self.intervals = {entry["task"]: float(entry["schedule"]) for entry in schedule.values()}
        self._loops: list[asyncio.Task] = []
        # One thread per task: a long run (a cost-map download) never delays another task's turn.
        self._threads = ThreadPoolExecutor(max_workers=max(len(self.intervals), 1), thread_name_prefix="periodic")
        self._running: set[asyncio.Future] = set()

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._every(path, seconds)) for path, seconds in self.intervals.items()]

    async def _every(self, task_path: str, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(seconds)
            run = loop.run_in_executor(self._threads, _run, task_path)
            self._running.add(run)
            run.add_done_callback(self._running.discard)
            await asyncio.shield(run)  # stopping cancels the wait, not the run: stop() waits for it

    async def stop(self) -> None:
        """No new runs; a run under way finishes (its transaction commits or rolls back whole) before this returns."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await asyncio.gather(*self._running, return_exceptions=True)
        self._threads.shutdown(wait=True)


def start_periodic_tasks() -> PeriodicTasks | None:
    """Run the beat schedule in this process when no Celery beat can (no REDIS_URL: no broker); else None."""
    if settings.REDIS_URL:
        return None
    tasks = PeriodicTasks(settings.CELERY_BEAT_SCHEDULE)
    tasks.start()
    return tasks
