"""The spend tasks in a real Celery worker process, over the Redis broker, against the test database."""

import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from spend.ledger import write_batch
from spend.models import BudgetReset, DailySpend
from spend.tasks import reset_budgets, rollup_spend
from tests import secrets_audit
from tests.polling import wait_until
from tests.spend.conftest import charged_entry, make_key, make_team

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a Redis broker)"),
    pytest.mark.django_db(transaction=True),
]
ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path):
    """A worker listening on a queue of its own, so no other worker on this Redis takes the test's tasks; yields
    (queue, its log file)."""
    queue = f"spend-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": settings.SECRET_KEY or "test",
        "LOG_LEVEL": "DEBUG",  # every record, for the secrets audit
    }
    log_path = tmp_path / "worker.log"
    secrets_audit.register_log_file(log_path, "Celery worker log")
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "gateway", "worker", "-Q", queue, "--pool", "solo", "-l", "debug"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    yield queue, log_path
    process.terminate()
    process.wait(30)
    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output, output


def _results(log_path: Path, *tasks) -> list[str] | None:
    """What each task returned, as the worker logged it on success; None while any has not finished."""
    log = log_path.read_text(errors="replace")
    found = [re.search(rf"\[{task.id}\] succeeded in [\d.]+s: (.*)", log) for task in tasks]
    return None if None in found else [match.group(1) for match in found]


def test_a_real_worker_resets_budgets_and_rolls_up_spend(worker):
    queue, log_path = worker
    team = make_team(budget_duration="1d", budget_reset_at=timezone.now() - timedelta(minutes=1))
    key = make_key(team=team)
    # Calls of today: every rollup run recomputes today, so the second run goes over the same logs again.
    now = timezone.now()
    write_batch([charged_entry(key, cost=cost, start_time=now) for cost in (Decimal("0.00000000013"), Decimal("2"))])

    tasks = [reset_budgets.apply_async(queue=queue)]
    tasks += [rollup_spend.apply_async(queue=queue) for _ in range(2)]  # a second run counts nothing twice

    results = wait_until(lambda: _results(log_path, *tasks), "the worker runs the reset and both rollups")
    team.refresh_from_db()
    assert results[0] == "1"
    assert team.spend == 0
    assert BudgetReset.objects.get().period_spend == Decimal("2.00000000013")
    assert [(row.requests, row.cost) for row in DailySpend.objects.all()] == [(2, Decimal("2.00000000013"))]
