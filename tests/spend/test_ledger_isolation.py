"""One caller's bad row never takes other callers' rows with it: a batch is written again row by row, a refused row
is cleaned, and a row refused even cleaned is set aside in the spool, never dropped."""

import asyncio
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from spend.ledger import Ledger, LedgerUnavailable, cleaned_entry, write_batch
from spend.models import SpendLog
from tests.spend.conftest import charged_entry, make_key

pytestmark = pytest.mark.django_db(transaction=True)

# Each is refused by PostgreSQL, and the counts by SQLite too (a Python int past 64 bits).
POISONS = {
    "nul in metadata": {"metadata": {"note": "a\u0000b"}},
    "nul in a tag": {"request_tags": ["ok", "x\u0000"]},
    "nul in the model name": {"requested_model": "gpt\u00004o"},
    "tokens past the column": {"prompt_tokens": 2**70},
    "time past the column": {"duration_ms": 2**70},
}


def spends(*entities):
    return [type(entity).objects.get(pk=entity.pk).spend for entity in entities]


@pytest.fixture
def ledger(tmp_path):
    current = Ledger(spool_directory=tmp_path / "spool")
    yield current
    current.close()


async def charge_together(ledger, entries):
    """Every entry submitted before the writer runs: they share one batch."""
    return await asyncio.gather(*(ledger.charge(entry) for entry in entries), return_exceptions=True)


@pytest.mark.parametrize("poison", POISONS.values(), ids=POISONS.keys())
async def test_a_poisoned_row_is_charged_cleaned_and_its_batch_neighbours_commit(ledger, poison):
    victims = [await sync_to_async(make_key)() for _ in range(6)]
    poisoner = await sync_to_async(make_key)()
    entries = [charged_entry(key, cost=Decimal("0.001")) for key in victims]
    poisoned = charged_entry(poisoner, cost=Decimal("0.25"), **poison)
    entries.insert(3, poisoned)

    outcomes = await charge_together(ledger, entries)

    assert outcomes == [None] * len(entries)
    assert await SpendLog.objects.acount() == len(entries)
    assert await sync_to_async(spends)(*victims, poisoner) == [Decimal("0.001")] * 6 + [Decimal("0.25")]
    logged = await SpendLog.objects.aget(request_id=poisoned.request_id)
    assert logged.cost == Decimal("0.25")
    if connection.vendor == "postgresql":  # SQLite stores NUL characters as they are
        assert "\u0000" not in logged.requested_model + str(logged.metadata) + str(logged.request_tags)
    assert logged.prompt_tokens < 2**31 and logged.duration_ms < 2**31


async def test_a_row_refused_even_cleaned_is_set_aside_and_only_its_call_fails(tmp_path):
    victims = [await sync_to_async(make_key)() for _ in range(4)]
    poisoner = await sync_to_async(make_key)()

    def refuses_the_poisoner(entries):
        if any(entry.key_hash == poisoner.token_hash for entry in entries):
            raise ValueError("no database takes this row")
        write_batch(entries)

    ledger = Ledger(writer=refuses_the_poisoner, spool_directory=tmp_path / "spool")
    try:
        entries = [charged_entry(key, cost=Decimal("0.002")) for key in victims]
        poisoned = charged_entry(poisoner, cost=Decimal("0.5"))
        outcomes = await charge_together(ledger, [entries[0], poisoned, *entries[1:]])
    finally:
        ledger.close()

    assert outcomes[0] is None and outcomes[2:] == [None] * 3
    assert isinstance(outcomes[1], LedgerUnavailable)
    assert await sync_to_async(spends)(*victims, poisoner) == [Decimal("0.002")] * 4 + [Decimal(0)]
    set_aside = list((tmp_path / "spool").glob("*.rejected"))
    assert len(set_aside) == 1
    assert [entry.request_id for entry in ledger.spool.read(set_aside[0])] == [poisoned.request_id]
    assert ledger.spool.pending() == []  # never replayed as if it were a lost database's batch


def test_a_cleaned_entry_keeps_its_money_and_payers_and_drops_what_a_database_refuses():
    key_hash = "f" * 64
    poisoned = charged_entry(
        type("Key", (), {"token_hash": key_hash, "user_id": "u\u00001", "team_id": "t"})(),
        cost=Decimal("0.000000000000000001"),
        requested_model="m\ud800" + "x" * 400,
        metadata={"a": "\u0000"},
        request_tags=["\u0000"],
        completion_tokens=2**64,
        attempts=10**6,
    )

    cleaned = cleaned_entry(poisoned)

    assert (cleaned.cost, cleaned.key_hash, cleaned.team_id) == (Decimal("0.000000000000000001"), key_hash, "t")
    assert cleaned.user_id == "u1"
    assert len(cleaned.requested_model) == 300 and "\ud800" not in cleaned.requested_model
    assert cleaned.request_tags == [] and "\u0000" not in str(cleaned.metadata)
    assert (cleaned.completion_tokens, cleaned.attempts) == (2**31 - 1, 32767)
