"""PostgreSQL: the spend log becomes a table partitioned by range of start_time, one partition per day (spend.partitions).

The rows move into a new partitioned table under the old name: each existing day gets its partition first, so the
copy lands in place, then the old table goes and its sequence, keys and indexes are made again on the new parent
(an index made on the parent is made on every partition, present and future). The primary key must hold the
partition key, so it is (id, start_time); the request id is unique per start time, which keeps a replayed call
from being logged twice, since a replay (spool, journal, a retried batch) carries the start time the call was
given once, when it arrived (gateway.proxy.service.Call). Ids stay unique: one sequence gives them all.

SQLite keeps its plain table, and the model state is the same on both (Django sees the same fields and
constraints), so this migration has no state operation. Reversing it leaves the table partitioned (nothing the
models say differs), and applying it again finds it partitioned and does nothing.
"""

from django.conf import settings
from django.db import migrations

from spend.partitions import DEFAULT_PARTITION, TABLE, ensure_partitions, is_partitioned

_OLD = f"{TABLE}_unpartitioned"


def partition_spend_log(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or is_partitioned(connection.alias):
        return
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s AND indexname "
            "NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
            [TABLE, TABLE],
        )
        indexes = [definition for (definition,) in cursor.fetchall()]
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        (sequence,) = cursor.fetchone()
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
        last_value, is_called = cursor.fetchone()
        cursor.execute(f"SELECT DISTINCT (start_time AT TIME ZONE %s)::date FROM {TABLE}", [settings.TIME_ZONE])
        days = [day for (day,) in cursor.fetchall()]

        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {_OLD}")
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {_OLD} INCLUDING CONSTRAINTS) PARTITION BY RANGE (start_time)")
        cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")
        ensure_partitions(days, using=connection.alias)
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {_OLD}")
        cursor.execute(f"DROP TABLE {_OLD}")  # and the id sequence it owns

        cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        cursor.execute(f"SELECT setval('{TABLE}_id_seq', %s, %s)", [last_value, is_called])
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, start_time)")
        cursor.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT spend_log_request_id_unique UNIQUE (request_id, start_time)"
        )
        for definition in indexes:
            cursor.execute(definition)


class Migration(migrations.Migration):
    dependencies = [
        ("spend", "0010_reconcile_checkpoints"),
    ]

    operations = [
        migrations.RunPython(partition_spend_log, migrations.RunPython.noop, elidable=False),
    ]
