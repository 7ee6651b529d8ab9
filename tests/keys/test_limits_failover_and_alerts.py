"""Redis going away mid-load, and the soft-budget alert's webhook and admin flag."""

import logging
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from keys import alerts
from keys.cache import key_limits
from keys.limits import admit, database_budgets
from keys.limits_redis import redis_counters
from keys.models import Reservation, VirtualKey
from tests import secrets_audit
from tests.keys.factories import caller, make_key


async def _admit(key_caller, cost="0.1"):
    return await admit(key_caller, model_group="gpt-4", worst_case_cost=Decimal(cost), estimated_tokens=1)


@pytest.mark.django_db(transaction=True)
async def test_without_redis_budgets_fall_back_to_the_database_and_redis_is_tried_again(settings, caplog, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.TOLLGATE_LIMITS_PREFIX = "tollgate-test-down:"
    _, key = await sync_to_async(make_key)(max_budget=Decimal("0.2"))
    key_caller = caller(key_limits(key))
    with caplog.at_level(logging.WARNING, logger="keys.limits_redis"):
        first = await _admit(key_caller)
        second = await _admit(key_caller)
    assert first.backend is database_budgets() and second.backend is database_budgets()
    assert "budgets by the database" in caplog.text
    assert caplog.text.count("Redis limits unavailable") == 1  # one warning per outage, not one per call
    assert await Reservation.objects.filter(entity_id=key.token_hash).acount() == 2
    with pytest.raises(Exception, match="Budget has been exceeded"):
        await _admit(key_caller)  # the database holds the budget: 0.2 reserved by the calls in flight
    await first.release()
    assert await Reservation.objects.filter(entity_id=key.token_hash).acount() == 1

    counters = redis_counters()
    assert not await counters.available()
    monkeypatch.setattr(counters, "_down_until", 0.0)
    assert await counters.available()  # a second later it tries Redis again
    await counters.close()


@pytest.mark.django_db(transaction=True)
async def test_soft_budget_alert_posts_the_webhook_once_and_flags_the_key(settings, monkeypatch, backend):
    settings.TOLLGATE_ALERT_WEBHOOK_URL = "https://alerts.example.test/hook"
    posted = []

    def fake_post(url, json, timeout):
        posted.append((url, json))
        return httpx.Response(204, request=httpx.Request("POST", url))

    monkeypatch.setattr(alerts.httpx, "post", fake_post)
    _, key = make_key(soft_budget=Decimal("0.15"), max_budget=Decimal("1"))
    key_caller = caller(key_limits(key))
    for _ in range(3):
        admission = await _admit(key_caller)
        await admission.settle(Decimal("0.1"), 1)
    for pending in list(alerts._pending):
        await pending
    assert [body["spend"] for _, body in posted] == ["0.2"]
    assert posted[0][0] == "https://alerts.example.test/hook"
    assert posted[0][1]["soft_budget"] == "0.15"
    assert await VirtualKey.objects.filter(pk=key.pk, soft_budget_alerted_at__isnull=False).aexists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("redis_up", [True, False], ids=["redis", "redis-down"])
async def test_two_server_processes_share_one_budget(redis_limits, redis_up):
    """25 calls from each of two processes at once against a budget that covers 10: 10 admitted in all, through
    Redis, or through the database while Redis is unreachable."""
    import asyncio
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "LOG_LEVEL": "DEBUG"}  # every record, for the secrets audit
    url = redis_limits.url if redis_up else "redis://127.0.0.1:1/0"
    # The key the workers admit for: the database locks its row to admit one call at a time.
    await VirtualKey.objects.acreate(token_hash="shared-key", secret_hash="shared-key", max_budget=Decimal("1"))
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.keys.admit_worker",
            url,
            redis_limits.prefix,
            "25",
            str(connection.settings_dict["NAME"]),
            cwd=root,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await worker.communicate() for worker in workers]
    for _, stderr in outputs:
        secrets_audit.register_output("tests.keys.admit_worker", stderr)
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert sum(int(stdout.decode().strip().splitlines()[-1]) for stdout, _ in outputs) == 10
    assert await Reservation.objects.acount() == (0 if redis_up else 10)
