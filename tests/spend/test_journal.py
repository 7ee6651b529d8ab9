"""The spend journal: a call on record before its request leaves is charged if its process dies, exactly once."""

import os
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from keys.models import KeyChange, VirtualKey
from spend import journal as journal_module
from spend import ledger as ledger_module
from spend.journal import Journal
from spend.ledger import Ledger, SpendEntry, write_batch
from spend.models import SpendLog
from spend.spool import Spool
from tests.spend.conftest import charged_entry, make_key

pytestmark = pytest.mark.django_db(transaction=True)


def new_journal(directory) -> Journal:
    return Journal(directory, Spool(directory, SpendEntry))


def die(journal: Journal) -> None:
    """What SIGKILL does to a process's journal: its descriptor, and so its lock, are gone; its lines stay."""
    os.close(journal._descriptor)


# A deployment's price entry as the routing table holds it: a threshold rate, so the sweep must price as the proxy does.
PRICE = {
    "input_cost_per_token": Decimal("0.001"),
    "output_cost_per_token": Decimal("0.002"),
    "input_cost_per_token_above_1000_tokens": Decimal("0.003"),
    "litellm_provider": "openai",
    "mode": "chat",
}


def interrupted(key, prompt=10, completion=0, **fields):
    """A call as the gateway records it: tokens, not yet priced."""
    return charged_entry(
        key,
        status=SpendLog.Status.INTERRUPTED,
        error_class="ProcessDied",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=Decimal(0),
        **fields,
    )


def record(journal: Journal, entry) -> None:
    journal.record(entry, PRICE, "deployment-1@v1")


def test_the_open_calls_of_a_process_that_died_are_charged_once_from_their_last_line(tmp_path, payers):
    key, user, team = payers
    dead = new_journal(tmp_path)
    finished = interrupted(key)
    streaming = interrupted(key)
    record(dead, finished)
    record(dead, streaming)
    record(dead, interrupted(key, prompt=1500, completion=40, request_id=streaming.request_id))
    dead.done(finished.request_id)
    die(dead)

    assert new_journal(tmp_path).sweep(write_batch) == 1

    log = SpendLog.objects.get()
    cost = 1500 * Decimal("0.003") + 40 * Decimal("0.002")  # past the threshold: the higher rate for every token
    assert (log.request_id, log.status, log.cost, log.completion_tokens) == (
        streaming.request_id,
        "interrupted",
        cost,
        40,
    )
    assert log.cost_breakdown["input"] == "4.5"
    assert [type(entity).objects.get(pk=entity.pk).spend for entity in payers] == [cost] * 3
    assert list(tmp_path.glob("*.journal")) == []
    assert new_journal(tmp_path).sweep(write_batch) == 0  # gone: charged nothing twice
    # Every process's counters re-read the payers' spend, which moved without them.
    assert VirtualKey.objects.get(pk=key.pk).spend_epoch == 1
    assert KeyChange.objects.filter(entity_id=key.token_hash, action="journal_charged").count() == 1


def test_a_call_whose_log_committed_just_before_the_kill_is_not_charged_again(tmp_path, payers):
    key, _, _ = payers
    dead = new_journal(tmp_path)
    entry = interrupted(key)
    record(dead, entry)
    write_batch([charged_entry(key, request_id=entry.request_id, cost=Decimal("0.3"))])  # its own log
    die(dead)  # before the done line

    new_journal(tmp_path).sweep(write_batch)

    assert list(SpendLog.objects.values_list("status", "cost")) == [("success", Decimal("0.3"))]
    assert VirtualKey.objects.get(pk=key.pk).spend == Decimal("0.3")


def test_a_live_processs_journal_is_left_alone_and_a_line_cut_by_the_kill_is_skipped(tmp_path, payers):
    key, _, _ = payers
    alive = new_journal(tmp_path)
    record(alive, interrupted(key))
    assert new_journal(tmp_path).sweep(write_batch) == 0

    entry = interrupted(key)
    record(alive, entry)
    os.write(alive._descriptor, b'{"e":{"request_id":"cut-of')  # the kill came mid-write
    die(alive)

    assert new_journal(tmp_path).sweep(write_batch) == 2
    assert SpendLog.objects.filter(request_id=entry.request_id).exists()


def test_a_full_journal_is_rewritten_with_only_its_open_calls(tmp_path, payers, monkeypatch):
    key, _, _ = payers
    monkeypatch.setattr(journal_module, "_ROTATE_BYTES", 4096)
    journal = new_journal(tmp_path)
    entries = [interrupted(key) for _ in range(30)]
    for entry in entries:
        record(journal, entry)
        if entry is not entries[7]:
            journal.done(entry.request_id)
    files = list(tmp_path.glob("*.journal"))
    die(journal)

    assert len(files) == 1 and files[0].stat().st_size < 4096
    assert new_journal(tmp_path).sweep(write_batch) == 1  # its price came along into the new file
    assert list(SpendLog.objects.values_list("request_id", "cost")) == [(entries[7].request_id, Decimal("0.01"))]


async def test_a_dead_processs_row_the_database_refuses_takes_no_neighbour_with_it(tmp_path, settings, monkeypatch):
    settings.TOLLGATE_SPOOL_DIR = tmp_path
    key = await sync_to_async(make_key)()
    dead = ledger_module.journal()
    good, poisoned = interrupted(key), interrupted(key, prompt=2**40)  # past PostgreSQL's integer column
    record(dead, good)
    record(dead, poisoned)
    die(dead)
    monkeypatch.setattr(ledger_module, "_journal", None)  # the sweeper is another process, on the same disk
    ledger = Ledger(spool_directory=tmp_path / "spool")
    try:
        assert await ledger.sweep_journals() == 2
    finally:
        ledger.close()

    assert await SpendLog.objects.filter(request_id=good.request_id).aexists()
    kept = await SpendLog.objects.filter(request_id=poisoned.request_id).aexists()
    set_aside = [
        entry.request_id for path in (tmp_path / "spool").glob("*.rejected") for entry in ledger.spool.read(path)
    ]
    assert kept or set_aside == [poisoned.request_id]  # cleaned and charged, or kept for an operator: never lost
    assert list((tmp_path / "journal").glob("*.journal")) == []
