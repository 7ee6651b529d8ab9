"""The budget counters are caches of the ledger: they start from the database's spend, never from a process's cached
copy of a key; they start again when they lose their state or the spend is set by hand; and the reservations of a
process that died lapse within seconds."""

import asyncio
import time
from decimal import Decimal

import pytest
import redis
from asgiref.sync import sync_to_async
from django.db import OperationalError

from keys.cache import key_limits
from keys.errors import BudgetExceeded, BudgetsUnavailable, RateLimited
from keys.limits import admit
from keys.limits_database import DatabaseBudgets
from keys.models import VirtualKey
from tests.keys.conftest import REDIS_URL
from tests.keys.factories import caller, make_key
from tests.polling import wait_until_async

pytestmark = pytest.mark.django_db(transaction=True)


async def try_admit(call_caller, cost="0.1"):
    try:
        return await admit(call_caller, model_group="gpt-4", worst_case_cost=Decimal(cost), estimated_tokens=1)
    except (BudgetExceeded, RateLimited) as exc:
        return exc


def wipe(prefix: str) -> None:
    """What a Redis restarted without persistence, or FLUSHDB, leaves of the counters: nothing."""
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(match=f"{prefix}*"):
        client.delete(name)
    client.close()


async def stale_caller(spend_in_the_cache: str, **fields):
    """A key whose stored spend moved on after this process cached it (charges do not reload the cache)."""
    _, key = await sync_to_async(make_key)(**fields)
    stale = caller(key_limits(key))
    await VirtualKey.objects.filter(pk=key.pk).aupdate(spend=Decimal(spend_in_the_cache))
    return key, stale


async def test_counters_start_from_the_databases_spend_not_the_processs_copy(redis_limits):
    _, stale = await stale_caller("1", max_budget=Decimal("1"))

    assert isinstance(await try_admit(stale), BudgetExceeded)


async def test_an_exhausted_key_stays_exhausted_after_redis_loses_its_counters(redis_limits):
    key, stale = await stale_caller("0.95", max_budget=Decimal("1"))
    assert not isinstance(await try_admit(stale, "0.05"), Exception)
    assert isinstance(await try_admit(stale, "0.05"), BudgetExceeded)  # 0.95 spent, 0.05 in flight

    wipe(redis_limits.prefix)

    refused = await try_admit(stale, "0.06")
    assert isinstance(refused, BudgetExceeded)
    assert "0.95" in str(refused)


async def test_a_spend_set_by_hand_takes_effect_at_the_next_call(redis_limits):
    key, _ = await stale_caller("0", max_budget=Decimal("1"))
    exhausted = caller(key_limits(await VirtualKey.objects.aget(pk=key.pk)))
    admission = await try_admit(exhausted, "0.5")
    await admission.settle(Decimal("1"), 1)
    assert isinstance(await try_admit(exhausted), BudgetExceeded)

    # What /key/update {"spend": 0} does: the spend and a newer epoch, which every process's cache then loads.
    await VirtualKey.objects.filter(pk=key.pk).aupdate(spend=Decimal(0), spend_epoch=1)
    edited = caller(key_limits(await VirtualKey.objects.aget(pk=key.pk)))

    assert not isinstance(await try_admit(edited), Exception)
    # A process whose cache still holds the old epoch sees the edited spend too, not its stale copy.
    assert not isinstance(await try_admit(exhausted), Exception)


async def admitted(limited) -> bool:
    return not isinstance(await try_admit(limited, "0.1"), Exception)


async def test_the_reservations_of_a_process_that_died_lapse_within_its_lease(redis_limits, settings):
    settings.TOLLGATE_LEASE_SECONDS = 1.0
    _, key = await sync_to_async(make_key)(max_parallel_requests=2, max_budget=Decimal("1"))
    limited = caller(key_limits(key))
    assert not isinstance(await try_admit(limited, "0.4"), Exception)
    assert not isinstance(await try_admit(limited, "0.4"), Exception)

    # The process is killed: nothing renews its lease, and another process admits again once it lapses.
    redis_limits.owner = "another-process"
    assert isinstance(await try_admit(limited), RateLimited)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await wait_until_async(lambda: admitted(limited), "another process to admit once the lease lapsed", timeout=3.0)

    assert loop.time() - start > 0.5  # not at once: the dead process's reservations held until their lease lapsed


async def test_a_live_process_keeps_its_reservations_past_the_lease_by_renewing_it(redis_limits, settings):
    settings.TOLLGATE_LEASE_SECONDS = 1.0
    _, key = await sync_to_async(make_key)(max_parallel_requests=1)
    limited = caller(key_limits(key))
    assert not isinstance(await try_admit(limited), Exception)

    for _ in range(8):  # 2.4 s, past the 1 s lease: time passing is what this test is about, not a wait for work
        await asyncio.sleep(0.3)
        await redis_limits.renew_leases()

    assert isinstance(await try_admit(limited), RateLimited)


async def test_views_of_what_was_charged_while_redis_was_unreachable_are_made_again_when_it_is_back(redis_limits):
    _, key = await sync_to_async(make_key)(max_budget=Decimal("1"))
    limited = caller(key_limits(key))
    await (await try_admit(limited, "0.1")).release()  # Redis has a view of the key: spend 0

    redis_limits._down_until = time.monotonic() + 60  # unreachable: the database admits
    during = await try_admit(limited, "0.5")
    assert isinstance(during.backend, DatabaseBudgets)
    await VirtualKey.objects.filter(pk=key.pk).aupdate(spend=Decimal("0.6"))  # the ledger commits its log
    await during.settle(Decimal("0.6"), 1)

    redis_limits._down_until = 0.0  # back
    refused = await try_admit(limited, "0.5")

    assert isinstance(refused, BudgetExceeded) and "0.6" in str(refused)


async def test_counters_that_must_be_seeded_while_the_database_is_away_refuse_with_503(redis_limits, monkeypatch):
    _, key = await sync_to_async(make_key)(max_budget=Decimal("1"))
    limited = caller(key_limits(key))

    def database_away(limits):
        raise OperationalError("connection refused")

    monkeypatch.setattr("keys.seeds.read_seeds", database_away)

    with pytest.raises(BudgetsUnavailable):
        await try_admit(limited)
