"""generate_spend_data leaves the spend log's indexes as migrate made them, partitions included: a benchmark read
from a ledger whose payer-led indexes were lost would measure a scan of every log."""

import pytest
from django.db import connection

from spend.management.commands.generate_spend_data import _secondary_indexes_rebuilt
from tests.spend.conftest import needs_postgres

pytestmark = [pytest.mark.django_db, needs_postgres]  # the test's transaction takes the DDL back


def _indexes() -> list[tuple[str, str, bool]]:
    """(table, indexed columns, valid) of every index of the spend log and its partitions."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname LIKE 'spend_spendlog%%' ORDER BY 1, 2"
        )
        return [(table, definition.split(" USING ")[1], valid) for table, definition, valid in cursor.fetchall()]


def test_rebuilding_the_indexes_after_a_bulk_insert_makes_each_on_every_partition():
    before = _indexes()
    assert ("spend_spendlog_default", "btree (key_hash, start_time, id)", True) in before  # the partitioned log

    with connection.cursor() as cursor, _secondary_indexes_rebuilt(cursor, rebuild=True):
        pass

    assert _indexes() == before
