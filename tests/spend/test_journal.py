"""The spend journal: a call on record before its request leaves is charged if its process dies, exactly once."""

import os
from decimal import Decimal

import pytest

from keys.models import KeyChange, VirtualKey
from spend import journal as journal_module
from spend.journal import Journal
from spend.ledger import SpendEntry, write_batch
from spend.models import SpendLog
from spend.spool import Spool
from tests.spend.conftest import charged_entry

pytestmark = pytest.mark.django_db(transaction=True)


def new_journal(directory) -> Journal:
    return Journal(directory, Spool(directory, SpendEntry))


def die(journal: Journal) -> None:
    """What SIGKILL does to a process's journal: its descriptor, and so its lock, are gone; its lines stay."""
    os.close(journal._descriptor)


def interrupted(key, **fields):
    return charged_entry(key, status=SpendLog.Status.INTERRUPTED, error_class="ProcessDied", **fields)


def test_the_open_calls_of_a_process_that_died_are_charged_once_from_their_last_line(tmp_path, payers):
    key, user, team = payers
    dead = new_journal(tmp_path)
    finished = interrupted(key, cost=Decimal("0.5"))
    streaming = interrupted(key, cost=Decimal("0.001"))
    dead.record(finished)
    dead.record(streaming)
    dead.record(interrupted(key, request_id=streaming.request_id, cost=Decimal("0.003"), completion_tokens=40))
    dead.done(finished.request_id)
    die(dead)

    assert new_journal(tmp_path).sweep(write_batch) == 1

    log = SpendLog.objects.get()
    assert (log.request_id, log.status, log.cost, log.completion_tokens) == (
        streaming.request_id,
        "interrupted",
        Decimal("0.003"),
        40,
    )
    assert [type(entity).objects.get(pk=entity.pk).spend for entity in payers] == [Decimal("0.003")] * 3
    assert list(tmp_path.glob("*.journal")) == []
    assert new_journal(tmp_path).sweep(write_batch) == 0  # gone: charged nothing twice
    # Every process's counters re-read the payers' spend, which moved without them.
    assert VirtualKey.objects.get(pk=key.pk).spend_epoch == 1
    assert KeyChange.objects.filter(entity_id=key.token_hash, action="journal_charged").count() == 1


def test_a_call_whose_log_committed_just_before_the_kill_is_not_charged_again(tmp_path, payers):
    key, _, _ = payers
    dead = new_journal(tmp_path)
    entry = interrupted(key, cost=Decimal("0.25"))
    dead.record(entry)
    write_batch([charged_entry(key, request_id=entry.request_id, cost=Decimal("0.3"))])  # its own log
    die(dead)  # before the done line

    new_journal(tmp_path).sweep(write_batch)

    assert list(SpendLog.objects.values_list("status", "cost")) == [("success", Decimal("0.3"))]
    assert VirtualKey.objects.get(pk=key.pk).spend == Decimal("0.3")


def test_a_live_processs_journal_is_left_alone_and_a_line_cut_by_the_kill_is_skipped(tmp_path, payers):
    key, _, _ = payers
    alive = new_journal(tmp_path)
    alive.record(interrupted(key))
    assert new_journal(tmp_path).sweep(write_batch) == 0

    entry = interrupted(key, cost=Decimal("0.01"))
    alive.record(entry)
    os.write(alive._descriptor, b'{"e":{"request_id":"cut-of')  # the kill came mid-write
    die(alive)

    assert new_journal(tmp_path).sweep(write_batch) == 2
    assert SpendLog.objects.filter(request_id=entry.request_id).exists()


def test_a_full_journal_is_rewritten_with_only_its_open_calls(tmp_path, payers, monkeypatch):
    key, _, _ = payers
    monkeypatch.setattr(journal_module, "_ROTATE_BYTES", 4096)
    journal = new_journal(tmp_path)
    entries = [interrupted(key, cost=Decimal("0.01")) for _ in range(30)]
    for entry in entries:
        journal.record(entry)
        if entry is not entries[7]:
            journal.done(entry.request_id)
    files = list(tmp_path.glob("*.journal"))
    die(journal)

    assert len(files) == 1 and files[0].stat().st_size < 4096
    assert new_journal(tmp_path).sweep(write_batch) == 1
    assert list(SpendLog.objects.values_list("request_id", flat=True)) == [entries[7].request_id]
