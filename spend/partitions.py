"""The spend log's daily partitions on PostgreSQL: made ahead of time, dropped whole by retention.

On PostgreSQL spend_spendlog is partitioned by range of start_time (migration 0011), one partition per local day
(settings.TIME_ZONE, the day the rollups and retention count in), plus a DEFAULT partition: a log whose time no
day partition covers (a clock far off, a replay from long ago) lands there and is never refused. `migrate` (the
post_migrate signal) and the periodic scheduler (`spend.tasks.create_spend_partitions`, on Celery beat or in the
server's own loop) keep yesterday to AHEAD_DAYS days from today made, so calls never land in the default. A day
made after the default took some of its logs gets them moved into its own partition. SQLite has one plain table:
every function here does nothing there.

Each new partition is made as a table of its own and then attached: ATTACH takes a SHARE UPDATE EXCLUSIVE lock on
the parent, which the ledger's inserts do not wait for (CREATE TABLE ... PARTITION OF would take an ACCESS
EXCLUSIVE one). Dropping is DETACH then DROP: not DETACH CONCURRENTLY, which PostgreSQL refuses on a table with a
default partition. The plain DETACH holds the parent's ACCESS EXCLUSIVE lock only for a catalog change, but while it
waits for that lock the ledger's inserts queue behind it: it waits at most LOCK_TIMEOUT, so a long report ahead of it
makes the run fail (the task retries, the next run tries again) rather than stall calls for longer.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from spend.models import SpendLog
from spend.periods import day_bounds, local_day

AHEAD_DAYS = 7
LOCK_TIMEOUT = "1s"
TABLE = SpendLog._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
# Serializes the makers (Celery beat, every server process's loop, migrate): two must not make one day twice.
_ADVISORY_LOCK = 0x7370656E64  # "spend"
_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """One range partition of the spend log: logs with start <= start_time < end."""

    name: str
    start: datetime
    end: datetime

    @property
    def day(self) -> date:
        return local_day(self.start)


def is_partitioned(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the spend log is a partitioned table (PostgreSQL after migration 0011)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE])
        return cursor.fetchone() is not None


def day_partitions(using: str = DEFAULT_DB_ALIAS) -> list[Partition]:
    """The range partitions, oldest first (the default partition is not one)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT child.relname, pg_get_expr(child.relpartbound, child.oid) FROM pg_inherits "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid WHERE pg_inherits.inhparent = to_regclass(%s)",
            [TABLE],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, bound in rows:
        found = _BOUNDS.search(bound)
        if found:  # not the DEFAULT
            start, end = (datetime.fromisoformat(value) for value in found.groups())
            partitions.append(Partition(name, start, end))
    return sorted(partitions, key=lambda partition: partition.start)


def ensure_partitions(
    days: Iterable[date] = (), now: datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> list[Partition]:
    """Make the day partitions missing among `days` and yesterday to AHEAD_DAYS days ahead; those made."""
    if not is_partitioned(using):
        return []
    today = local_day(now or timezone.now())
    wanted = sorted({*days, *(today + timedelta(days=offset) for offset in range(-1, AHEAD_DAYS + 1))})
    made = []
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK])
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        existing = day_partitions(using)
        for day in wanted:
            pieces = _uncovered(*day_bounds(day), existing)
            for number, (start, end) in enumerate(pieces):
                suffix = f"_{number}" if len(pieces) > 1 else ""
                partition = Partition(f"{TABLE}_p{day:%Y%m%d}{suffix}", start, end)
                _attach(cursor, partition)
                existing.append(partition)
                made.append(partition)
    return made


def partitions_after_migrate(sender, using: str = DEFAULT_DB_ALIAS, **_) -> None:
    """`migrate` leaves the days ahead made (a receiver of post_migrate, for the spend app)."""
    ensure_partitions(using=using)


def _uncovered(start: datetime, end: datetime, existing: list[Partition]) -> list[tuple[datetime, datetime]]:
    """The parts of [start, end) no existing partition covers (all of it, unless TIME_ZONE changed since)."""
    pieces = [(start, end)]
    for partition in existing:
        pieces = [
            piece
            for low, high in pieces
            for piece in ((low, min(high, partition.start)), (max(low, partition.end), high))
            if piece[0] < piece[1]
        ]
    return pieces


def _attach(cursor, partition: Partition) -> None:
    """Make one partition, moving in the logs the default partition holds for its range."""
    name = _quoted(partition.name)
    cursor.execute(f"CREATE TABLE {name} (LIKE {_quoted(TABLE)} INCLUDING CONSTRAINTS)")
    # No log of the range may reach the default between the move and the attach (which would then fail).
    cursor.execute(f"LOCK TABLE {_quoted(DEFAULT_PARTITION)} IN EXCLUSIVE MODE")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {_quoted(DEFAULT_PARTITION)} WHERE start_time >= %s AND start_time < %s "
        f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
        [partition.start, partition.end],
    )
    cursor.execute(
        f"ALTER TABLE {_quoted(TABLE)} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
        [partition.start, partition.end],
    )


def drop_partition(partition: Partition, using: str = DEFAULT_DB_ALIAS) -> None:
    """Detach one partition and drop it (inside the caller's transaction: with what it recorded, or not at all)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute(f"ALTER TABLE {_quoted(TABLE)} DETACH PARTITION {_quoted(partition.name)}")
        cursor.execute(f"DROP TABLE {_quoted(partition.name)}")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
