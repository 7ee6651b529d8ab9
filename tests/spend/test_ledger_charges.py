import random
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from spend.ledger import write_batch
from spend.models import SpendLog
from tests.spend.conftest import charged_entry, make_entry, make_key

pytestmark = pytest.mark.django_db
TINY = Decimal("1.3E-10")


def spends(*entities):
    return [type(entity).objects.get(pk=entity.pk).spend for entity in entities]


def test_a_batch_charges_its_key_user_and_team_once_each(payers, django_assert_num_queries):
    key, user, team = payers
    batch = [charged_entry(key, cost=Decimal("0.5")), charged_entry(key, cost=Decimal("0.25"))]
    # Savepoint and release (the test's transaction) and the request-id check; then on PostgreSQL one query for
    # the charges and the insert, on SQLite an INSERT and a read and a write per payer (it cannot add exactly in SQL),
    # and a read of the key's spend on the call's model group (no row: the key has no per-model budget).
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 4 + 3 * 2 + 1):
        write_batch(batch)
    assert spends(key, user, team) == [Decimal("0.75")] * 3


def test_a_retried_batch_charges_nothing_twice(payers):
    key, user, team = payers
    batch = [charged_entry(key, cost=Decimal("1"))]
    write_batch(batch)
    write_batch(batch)
    assert spends(key, user, team) == [Decimal("1")] * 3


def test_many_tiny_charges_sum_exactly_and_reconcile(payers):
    key, user, team = payers
    other = make_key(team=team)
    rng = random.Random(7)
    expected = {key: Decimal(0), other: Decimal(0)}
    for _ in range(20):
        batch = []
        for _ in range(50):
            payer = rng.choice([key, other])
            cost = TINY * rng.randint(1, 120_000)
            expected[payer] += cost
            batch.append(charged_entry(payer, cost=cost))
        write_batch(batch)

    assert spends(key, other) == [expected[key], expected[other]]
    assert spends(team) == [expected[key] + expected[other]]
    call_command("reconcile_spend")  # raises CommandError on any drift


def test_reconcile_reports_drift_and_fix_sets_spend_from_the_logs(payers, capsys):
    key, user, team = payers
    write_batch([charged_entry(key, cost=Decimal("0.00000000013"))])
    type(key).objects.filter(pk=key.pk).update(spend=Decimal("5"))

    with pytest.raises(CommandError, match="1 spend totals drifted"):
        call_command("reconcile_spend")
    assert f"key {key.token_hash}: stored 5, logs 0.00000000013" in capsys.readouterr().out

    call_command("reconcile_spend", "--fix")
    assert spends(key) == [Decimal("0.00000000013")]
    call_command("reconcile_spend")


def test_calls_of_the_master_key_charge_nobody_and_are_still_logged(payers, django_assert_num_queries):
    with django_assert_num_queries(4):
        write_batch([make_entry(cost=Decimal("2"))])
    assert SpendLog.objects.count() == 1
    assert spends(*payers) == [Decimal(0)] * 3
