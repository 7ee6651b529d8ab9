"""Redis going away mid-load, and the soft-budget alert's webhook and admin flag."""

import logging
from decimal import Decimal

import httpx
import pytest

from keys import alerts
from keys.cache import key_limits
from keys.limits import admit, local_counters
from keys.limits_redis import redis_counters
from keys.models import VirtualKey
from tests import secrets_audit
from tests.keys.factories import caller, limits, make_key


async def _admit(key_caller, cost="0.1"):
    return await admit(key_caller, model_group="gpt-4", worst_case_cost=Decimal(cost), estimated_tokens=1)


async def test_without_redis_limits_fall_back_to_this_process_and_resume(settings, caplog, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.TOLLGATE_LIMITS_PREFIX = "tollgate-test-down:"
    key = caller(limits("key", max_budget=Decimal("0.2")))
    with caplog.at_level(logging.WARNING, logger="keys.limits_redis"):
        first = await _admit(key)
        second = await _admit(key)
    assert first.backend is local_counters() and second.backend is local_counters()
    assert "using per-process limits" in caplog.text
    assert caplog.text.count("Redis limits unavailable") == 1  # one warning per outage, not one per call
    with pytest.raises(Exception, match="Budget has been exceeded"):
        await _admit(key)  # the per-process counters still hold the budget

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


async def test_two_server_processes_share_one_budget(redis_limits):
    """25 calls from each of two processes at once against a budget that covers 10: 10 admitted in all."""
    import asyncio
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "LOG_LEVEL": "DEBUG"}  # every record, for the secrets audit
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.keys.admit_worker",
            redis_limits.url,
            redis_limits.prefix,
            "25",
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
    assert [worker.returncode for worker in workers] == [0, 0]
    assert sum(int(stdout.decode().strip().splitlines()[-1]) for stdout, _ in outputs) == 10
