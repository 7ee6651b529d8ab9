"""The ledger-scale scenario (bench/scenarios/ledger_scale.py) at a tiny size: every row of its table is measured
through the code it names, on a generated ledger that reconciles exactly, and pruning drops logs."""

import pytest
from django.db import connection

from bench.scenarios import ledger_reads
from bench.scenarios.ledger_scale import ROWS, table

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the scenario measures the ledger on PostgreSQL"),
]
LOGS = 2000


def test_every_row_of_the_table_is_measured_on_a_ledger_that_reconciles():
    generation = ledger_reads.generate(LOGS)
    measured = ledger_reads.measure(runs=1, budget_s=0.0, write_seconds=0.2)

    rows = table({LOGS: measured})
    assert [row["read"] for row in rows] == [name for name, _ in ROWS]
    unmeasured = [row["read"] for row in rows if row["by_logs"][str(LOGS)] is None]
    assert set(unmeasured) <= {"reconcile_spend --full"}  # until reconcile_spend has a --full mode
    assert measured["problems"] == []  # reconcile_spend found no drift on the generated ledger
    assert measured["rows"]["prune one day (prune_spend_logs)"]["logs_pruned"] > 0
    assert measured["logs_after"] > 0
    assert generation["logs"] == LOGS
