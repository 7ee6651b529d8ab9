"""Incremental reconcile: a run reads the logs after each holder's checkpoint, and still finds every drift it can."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from keys.models import Customer, Tag
from spend.entities import PAYER_BY_KIND
from spend.ledger import write_batch
from spend.models import PrunedSpend, ReconcileCheckpoint, SpendLog
from spend.reconcile import Drift, reconcile
from spend.resets import reset_budget
from spend.retention import prune_spend_logs
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, charged_entry, make_key, make_log, needs_postgres

pytestmark = pytest.mark.django_db
CENT = Decimal("0.01")


@pytest.fixture
def holders(payers):
    """A key (with its user and team), a customer and a tag, each charged by two calls."""
    key, _, team = payers
    customer = Customer.objects.create(end_user_id="acme")
    tag = Tag.objects.create(name="nightly")
    write_batch([charged_entry(key, end_user="acme", request_tags=["nightly"], cost=Decimal("0.5")) for _ in "ab"])
    return {"key": key.token_hash, "team": team.team_id, "customer": customer.end_user_id, "tag": tag.name}


def uncharged_log(**names):
    """A log whose charge never reached its holders' stored spend: a drift."""
    return make_log(cost=CENT, **names)


@pytest.mark.parametrize(
    ("kind", "log_fields"),
    [
        ("key", lambda ids: {"key_hash": ids["key"]}),
        ("team", lambda ids: {"team_id": ids["team"]}),
        ("customer", lambda ids: {"end_user": ids["customer"]}),
        ("tag", lambda ids: {"request_tags": [ids["tag"]]}),
    ],
)
def test_a_drift_planted_after_the_checkpoint_is_found(holders, kind, log_fields):
    assert reconcile().drifts == []
    uncharged_log(**log_fields(holders))

    run = reconcile()

    assert run.drifts == [Drift(kind, holders[kind], Decimal(1), Decimal("1.01"))]
    assert run.logs_read == 1


def test_an_edited_log_below_the_checkpoint_is_found_only_by_a_full_run(holders):
    reconcile()
    SpendLog.objects.filter(pk=SpendLog.objects.order_by("id").first().pk).update(cost=Decimal("0.4"))

    assert reconcile().drifts == []
    drifts = reconcile(full=True).drifts
    assert {(drift.kind, drift.expected) for drift in drifts} == {
        (kind, Decimal("0.9")) for kind in ("key", "user", "team", "customer", "tag", "organization")
    } - {("organization", Decimal("0.9"))}
    assert len(reconcile().drifts) == 5  # the full run wrote the checkpoints again, from the logs as they are


def test_a_second_run_reads_only_the_logs_added_since_the_first(payers):
    key, _, _ = payers
    write_batch([charged_entry(key) for _ in range(5)])
    first = reconcile()
    write_batch([charged_entry(key) for _ in range(2)])

    with CaptureQueriesContext(connection) as queries:
        second = reconcile()

    assert (first.logs_read, second.logs_read) == (5, 2)
    log_reads = [query["sql"] for query in queries if '"spend_spendlog"' in query["sql"] and "MAX(" not in query["sql"]]
    assert len(log_reads) == 1
    assert f'"spend_spendlog"."id" > {first.checkpoint}' in log_reads[0]
    assert (first.drifts, second.drifts) == ([], [])
    assert set(ReconcileCheckpoint.objects.values_list("log_id", flat=True)) == {second.checkpoint}
    assert second.checkpoint == SpendLog.objects.order_by("-id").values_list("id", flat=True).first()


def test_fix_corrects_a_drift_found_from_a_checkpoint_and_the_next_run_is_clean(holders, capsys):
    call_command("reconcile_spend")
    uncharged_log(key_hash=holders["key"])
    with pytest.raises(CommandError):
        call_command("reconcile_spend")

    call_command("reconcile_spend", "--fix")

    call_command("reconcile_spend")
    assert "Read 0 logs (incremental" in capsys.readouterr().out


def test_fix_after_a_full_run_corrects_an_edited_log_below_the_checkpoint(holders):
    reconcile()
    SpendLog.objects.filter(pk=SpendLog.objects.order_by("id").first().pk).update(cost=Decimal("0.4"))

    call_command("reconcile_spend", "--full", "--fix")

    assert reconcile().drifts == []
    assert reconcile(full=True).drifts == []


def test_fix_mends_a_checkpoint_the_logs_below_it_no_longer_agree_with(holders, capsys):
    key = holders["key"]
    reconcile()
    SpendLog.objects.filter(pk=SpendLog.objects.order_by("id").first().pk).update(cost=Decimal("0.4"))
    PAYER_BY_KIND["key"].model.objects.filter(token_hash=key).update(spend=Decimal("0.9"))  # set to the logs' sum
    with pytest.raises(CommandError):
        call_command("reconcile_spend")  # the checkpoint still holds the old cost

    call_command("reconcile_spend", "--fix")

    assert "Corrected 0 of 1" in capsys.readouterr().out  # the stored spend was right
    assert reconcile().drifts == []


def test_a_budget_reset_starts_a_new_checkpoint(payers):
    key, _, team = payers
    type(team).objects.filter(pk=team.pk).update(budget_duration="1d", budget_reset_at=DAY)
    write_batch([charged_entry(key, cost=Decimal(1))])
    reconcile()
    assert reset_budget(PAYER_BY_KIND["team"], team.pk, DAY)
    write_batch([charged_entry(key, cost=Decimal("0.25"))])

    assert reconcile().drifts == []
    team.refresh_from_db()
    checkpoint = ReconcileCheckpoint.objects.get(kind="team")
    assert (team.spend, checkpoint.spend) == (Decimal("0.25"), Decimal("0.25"))
    assert checkpoint.period_watermark > 0
    assert reconcile(full=True).drifts == []


@pytest.mark.parametrize(
    ("before_checkpoint", "after_checkpoint"),
    [
        ([Decimal("0.5"), Decimal("0.25")], []),  # pruned below the checkpoint: counted once, by the checkpoint
        ([Decimal("0.5")], [Decimal("0.25")]),  # one pruned row across the checkpoint
        ([], [Decimal("0.5"), Decimal("0.25")]),  # pruned past the checkpoint
    ],
)
def test_pruning_keeps_incremental_and_full_runs_exact(payers, retention, before_checkpoint, after_checkpoint):
    key, _, _ = payers
    retention(7)
    now = DAY + timedelta(days=30)
    write_batch([charged_entry(key, start_time=now)])
    write_batch([charged_entry(key, start_time=DAY, cost=cost) for cost in before_checkpoint])
    reconcile()
    write_batch([charged_entry(key, start_time=DAY, cost=cost) for cost in after_checkpoint])
    rollup_spend(now)

    assert prune_spend_logs(now).rows == 2

    assert sum(PrunedSpend.objects.filter(kind="key").values_list("cost", flat=True)) == Decimal("0.75")
    assert reconcile().drifts == []
    assert reconcile().drifts == []
    assert reconcile(full=True).drifts == []


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_log_committed_late_with_a_lower_id_is_not_skipped(payers):
    key, _, _ = payers
    drawn, release = threading.Event(), threading.Event()

    def late_writer():
        # Another writer charges the key and draws a log id, and does not commit yet.
        try:
            with transaction.atomic():
                write_batch([charged_entry(key, cost=Decimal("0.75"))])
                drawn.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    writer = threading.Thread(target=late_writer)
    writer.start()
    try:
        assert drawn.wait(timeout=30)
        write_batch([charged_entry(make_key(), cost=Decimal("0.5"))])  # a later call commits a higher id
        committed_id = SpendLog.objects.get().id

        while_open = reconcile(settle_seconds=0.2)

        assert (while_open.drifts, while_open.checkpoint) == ([], None)
        assert not ReconcileCheckpoint.objects.filter(log_id__gte=committed_id).exists()
    finally:
        release.set()
        writer.join(timeout=30)

    assert SpendLog.objects.filter(id__lt=committed_id).exists()  # the late log's id is the lower one
    assert reconcile().drifts == []
    assert reconcile().drifts == []
    assert ReconcileCheckpoint.objects.get(kind="key", entity_id=key.token_hash).spend == Decimal("0.75")
