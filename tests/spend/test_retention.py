from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from spend.ledger import write_batch
from spend.models import DailySpend, PrunedSpend, SpendLog
from spend.retention import prune_spend_logs
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, charged_entry, make_entry

pytestmark = pytest.mark.django_db
NOW = DAY + timedelta(days=10)


def test_retention_deletes_old_rolled_up_logs_and_keeps_the_rollups(retention, payers):
    key, _, _ = payers
    retention(7)
    old = [charged_entry(key, start_time=DAY - timedelta(days=day), cost=Decimal("0.1")) for day in range(3)]
    recent = charged_entry(key, start_time=NOW, cost=Decimal("0.00000000013"))
    write_batch([*old, recent])
    rollup_spend(NOW)

    assert prune_spend_logs(NOW, batch_size=2).rows == 3

    assert list(SpendLog.objects.values_list("request_id", flat=True)) == [recent.request_id]
    assert sum(row.requests for row in DailySpend.objects.all()) == 4
    assert sum(carry.cost for carry in PrunedSpend.objects.filter(kind="key")) == Decimal("0.3")
    call_command("reconcile_spend")  # the pruned logs still count toward the period's spend


def test_logs_not_yet_rolled_up_are_kept(retention):
    retention(7)
    write_batch([make_entry(start_time=DAY - timedelta(days=30))])
    assert prune_spend_logs(NOW).rows == 0


def test_without_a_retention_setting_nothing_is_deleted(retention):
    retention(None)
    write_batch([make_entry(start_time=DAY - timedelta(days=30))])
    rollup_spend(NOW)
    assert prune_spend_logs(NOW + timedelta(days=1000)).rows == 0
