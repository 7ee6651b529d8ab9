"""The ledger's spool: a call completed while the database is away is still charged, exactly once."""

import fcntl
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError

from spend import ledger as ledger_module
from spend.ledger import Ledger, LedgerUnavailable, SpendEntry, write_batch
from spend.models import SpendLog
from spend.spool import Spool
from tests.spend.conftest import charged_entry, make_entry

pytestmark = pytest.mark.django_db(transaction=True)


def database_down(entries):
    raise OperationalError("connection refused")


class Outage:
    """Switches a ledger's database off and on again."""

    def __init__(self, ledger: Ledger, monkeypatch):
        self.ledger = ledger
        self.monkeypatch = monkeypatch

    def start(self):
        self.monkeypatch.setattr(self.ledger, "_writer", database_down)
        self.monkeypatch.setattr(ledger_module, "database_answers", lambda: False)

    def end(self):
        self.monkeypatch.setattr(self.ledger, "_writer", write_batch)
        self.monkeypatch.setattr(ledger_module, "database_answers", lambda: True)
        self.ledger._last_probe = 0.0  # the next call probes at once


@pytest.fixture
def ledger(tmp_path):
    current = Ledger(spool_directory=tmp_path / "spool")
    yield current
    current.close()


def spends(*entities):
    return [type(entity).objects.get(pk=entity.pk).spend for entity in entities]


def test_an_entry_comes_back_from_the_spool_exactly_as_it_went_in(tmp_path):
    spool = Spool(tmp_path, SpendEntry)
    entry = make_entry(
        cost=Decimal("0.000000000000000001234567890123"),
        start_time=datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC),
        cost_breakdown={"input": "0.0000012", "output": "0"},
        prices={"input_cost_per_token": "1.2E-7"},
        metadata={"user_api_key_alias": "ci", "nested": {"list": [1, 2]}},
        request_tags=["batch", "nightly"],
        time_to_first_token_ms=None,
    )

    path = spool.write([entry, make_entry()])

    assert spool.pending() == [path]
    restored = spool.read(path)
    assert restored[0] == entry
    assert type(restored[0].cost) is Decimal and restored[0].start_time.tzinfo is not None


async def test_a_call_completed_while_the_database_is_away_is_spooled_then_charged_once(ledger, payers, monkeypatch):
    key, user, team = payers
    outage = Outage(ledger, monkeypatch)
    entry = charged_entry(key, cost=Decimal("0.000123456789"))

    outage.start()
    await ledger.charge(entry)  # answered: the charge is on disk
    with pytest.raises(LedgerUnavailable):
        await ledger.ensure_available()  # no new call is served meanwhile

    assert len(ledger.spool.pending()) == 1
    assert await SpendLog.objects.acount() == 0

    outage.end()
    await ledger.ensure_available()

    assert ledger.spool.pending() == []
    assert await SpendLog.objects.acount() == 1
    assert await sync_to_async(spends)(key, user, team) == [Decimal("0.000123456789")] * 3


async def test_a_commit_that_goes_through_and_empties_the_spool_serves_calls_again(ledger, payers, monkeypatch):
    key, _user, _team = payers
    outage = Outage(ledger, monkeypatch)
    outage.start()
    await ledger.charge(charged_entry(key, cost=Decimal("0.25")))
    outage.end()
    ledger._last_probe = float("inf")  # no probe: only the next commit can tell the database is back

    await ledger.charge(charged_entry(key, cost=Decimal("0.5")))
    await ledger.ensure_available()

    assert ledger.spool.pending() == []
    assert (await sync_to_async(spends)(key)) == [Decimal("0.75")]


async def test_a_batch_that_committed_before_its_connection_dropped_is_not_charged_twice(ledger, payers, monkeypatch):
    key, _user, _team = payers
    entry = charged_entry(key, cost=Decimal("0.5"))

    def commits_then_drops(entries):
        write_batch(entries)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ledger, "_writer", commits_then_drops)
    await ledger.charge(entry)
    Outage(ledger, monkeypatch).end()
    await ledger.ensure_available()

    assert ledger.spool.pending() == []
    assert await SpendLog.objects.acount() == 1
    assert (await sync_to_async(spends)(key)) == [Decimal("0.5")]


async def test_a_new_process_writes_what_an_earlier_one_left_in_the_spool(ledger, payers):
    key, _user, _team = payers
    ledger.spool.write([charged_entry(key, cost=Decimal("0.25")), charged_entry(key, cost=Decimal("0.5"))])

    await ledger.charge(charged_entry(key, cost=Decimal("1")))

    assert ledger.spool.pending() == []
    assert await SpendLog.objects.acount() == 3
    assert (await sync_to_async(spends)(key)) == [Decimal("1.75")]


async def test_a_spool_file_that_can_never_be_written_is_set_aside_and_the_rest_still_goes_in(ledger, payers):
    key, _user, _team = payers
    broken = ledger.spool.write([make_entry()])
    broken.write_bytes(b'{"request_id": "no-such-field-set"}\n')
    ledger.spool.write([charged_entry(key, cost=Decimal("0.25"))])

    await ledger.charge(charged_entry(key, cost=Decimal("1")))

    assert ledger.spool.pending() == []
    assert broken.with_suffix(".rejected").exists()
    assert await SpendLog.objects.acount() == 2


async def test_when_the_spool_cannot_be_written_either_the_call_is_refused(tmp_path, payers, monkeypatch):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    ledger = Ledger(spool_directory=blocked)
    monkeypatch.setattr(ledger, "_writer", database_down)

    with pytest.raises(LedgerUnavailable):
        await ledger.charge(charged_entry(payers[0]))
    ledger._executor.shutdown()


def test_only_one_process_replays_a_spool_at_a_time(tmp_path):
    spool = Spool(tmp_path, SpendEntry)
    spool.write([make_entry()])
    written = []

    with open(tmp_path / ".replay.lock", "a") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert spool.replay(written.extend) == 0

    assert spool.replay(written.extend) == 1
    assert len(written) == 1 and spool.pending() == []
