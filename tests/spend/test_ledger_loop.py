"""PostgreSQL: the ledger's common case goes from the event loop itself; everything else still goes to its thread."""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from spend import ledger as ledger_module
from spend.ledger import Ledger
from spend.models import SpendLog
from tests.spend.conftest import charged_entry, make_entry, needs_postgres

pytestmark = [needs_postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
async def ledger(tmp_path):
    current = Ledger(spool_directory=tmp_path / "spool")
    await current.charge(make_entry(cost=Decimal(0)))  # the first batch looks for an earlier process's spool files
    yield current
    current.close()


def the_writer_thread_must_not_be_used(ledger, monkeypatch):
    def woken(entries):
        raise AssertionError("the writer thread was woken for a batch the event loop could send")

    monkeypatch.setattr(ledger, "_commit", woken)


def spends(*entities):
    return [type(entity).objects.get(pk=entity.pk).spend for entity in entities]


async def test_a_batch_commits_from_the_event_loop_without_the_writer_thread(ledger, payers, monkeypatch):
    key, user, team = payers
    the_writer_thread_must_not_be_used(ledger, monkeypatch)

    await ledger.charge(charged_entry(key, cost=Decimal("0.000000000000000123")))
    await ledger.charge(charged_entry(key, cost=Decimal("0.5")))

    assert await SpendLog.objects.acount() == 3  # with the fixture's
    assert await sync_to_async(spends)(key, user, team) == [Decimal("0.500000000000000123")] * 3


async def test_a_replayed_call_goes_to_the_writer_thread_and_is_charged_once(ledger, payers):
    key, user, team = payers
    entry = charged_entry(key, cost=Decimal("0.25"))

    await ledger.charge(entry)
    await ledger.charge(entry)  # a retry after an acknowledgement that never came

    assert await SpendLog.objects.filter(request_id=entry.request_id).acount() == 1
    assert await sync_to_async(spends)(key, user, team) == [Decimal("0.25")] * 3


async def test_when_the_loop_connection_cannot_connect_the_writer_thread_takes_the_batch(ledger, payers, monkeypatch):
    key, _user, _team = payers
    ledger._loop_connection.close()
    nowhere = {**ledger_module._loop_connection_params(), "host": "127.0.0.1", "port": 1, "connect_timeout": 2}
    monkeypatch.setattr(ledger_module, "_loop_connection_params", lambda: nowhere)

    await ledger.charge(charged_entry(key, cost=Decimal("0.125")))

    assert await sync_to_async(spends)(key) == [Decimal("0.125")]
    assert ledger._loop_connection._connection is None  # tried, failed, dropped: the next batch tries again
