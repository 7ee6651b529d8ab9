"""The ledger's invariant: each budget holder's stored spend (a key's, user's, team's, customer's, tag's, a key's on
one model) is the exact sum of its logs since its last budget reset (plus what retention pruned from that period).
The logs are the truth; a stored spend that drifted from them is what gets corrected.

Incremental: a run reads only the logs after each holder's checkpoint (spend.ReconcileCheckpoint: per holder and
period, the log id up to which its logs were summed, and that exact sum), compares the stored spend with the
checkpoint's sum plus the new logs, and advances the checkpoint, all in one snapshot. Its time tracks the logs added
since the last run, not the ledger's size. The price: a log row edited below a checkpoint is seen only by
``full=True`` (``reconcile_spend --full``), which ignores the checkpoints and writes them again from all the logs.

How far a checkpoint may advance. Log ids are drawn when a transaction inserts, and transactions commit in any order:
a snapshot may hold log 101 while log 100, drawn by a transaction still open, commits later. A checkpoint at 101
would never read log 100. So a run first settles a horizon (``settled_log_id``): it reads the highest log id, M,
then waits until every transaction that was running then has ended; after that, no log with an id up to M can still
commit, and the run's snapshot, taken next, holds all of them. On PostgreSQL "running then" is the snapshot's
in-progress list (``pg_snapshot_xip``) below the next transaction id read after M (``pg_snapshot_xmax``): a
transaction that drew an id up to M drew it before M was read, and had its transaction id before that (the ledger
charges the payers' rows, and a spend edit locks its holder's row, before inserting the logs, and either assigns the
transaction id; a log that charges no holder is in no holder's sum). Transactions of other databases are not
waited for. Ledger transactions last one round trip, so the wait is usually a few milliseconds; if a transaction
stays open past ``settle_seconds`` (a long rollup, an open psql session), the run still checks every holder, and
leaves the checkpoints where they were. This was chosen over a time margin (a transaction can stay open longer than
any margin) and over tracking the ledger's batches in flight (more work on the hot path, and not every log comes
from the ledger). SQLite has one writer at a time, which commits its ids in order: there M is settled as read.

Pruned logs: a checkpoint's sum counts the PrunedSpend rows of the logs up to its log id. A PrunedSpend row whose
``last_log_id`` is at or below the checkpoint therefore counts already (its logs were summed, or the row itself);
a holder with a row above its checkpoint (retention pruned logs the checkpoint had not reached) is summed again
from its period's start, so that no pruned log is counted twice. Retention needs no lock with reconcile for this.
"""

import logging
import time
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, localcontext

from django.db import connection, transaction
from django.db.models import Case, Count, Max, Q, QuerySet, Sum, Value, When
from django.db.models.expressions import RawSQL

from pricing import audit
from pricing.money import exact_sum
from spend.entities import LOG_FIELDS, PAYER_BY_KIND, PAYERS, KeyModelPayer, Payer, TagPayer
from spend.models import PrunedSpend, ReconcileCheckpoint, SpendLog
from spend.resets import period_watermarks

logger = logging.getLogger(__name__)

# How long a run waits for the transactions open when it began to end, before it leaves the checkpoints as they are.
SETTLE_SECONDS = 10.0
_POLL_SECONDS = 0.01
# Up to this many holders summed from their period's start, their pruned rows are asked for by name (more: all rows).
_NAMED_HOLDERS = 500
_ZERO = Decimal(0)

# The transactions still running that were running when `%s` was the next transaction id, less this one and those
# of other databases (xids are cluster-wide). pg_stat_clear_snapshot: a transaction reads pg_stat_activity once.
_UNSETTLED = """
SELECT count(*) FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)
WHERE running.xid < %s::xid8 AND running.xid IS DISTINCT FROM pg_current_xact_id_if_assigned()
AND xid(running.xid) NOT IN (
    SELECT backend_xid FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
)
"""


@dataclass(frozen=True, slots=True)
class Drift:
    kind: str
    entity_id: str
    stored: Decimal
    expected: Decimal

    @property
    def difference(self) -> Decimal:
        return self.stored - self.expected


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What one run found, and what it read to find it."""

    drifts: list[Drift]
    logs_read: int  # logs read by the run's pass over the ledger
    checkpoint: int | None  # the log id the checkpoints advanced to; None: transactions stayed open, they did not


@dataclass(slots=True)
class _Holder:
    """One budget holder in a run: where its unread logs start, and what comes before them."""

    kind: str
    entity_id: str
    stored: Decimal
    watermark: int  # its period's start
    start: int  # its logs after this id are read
    base: Decimal  # the cost of its period up to `start` (checkpoint), or of its pruned logs (from its period's start)
    settled: Decimal = _ZERO  # its logs read, up to the settled horizon
    unsettled: Decimal = _ZERO  # its logs read, after it
    may_advance: bool = True  # False: retention pruned logs after the horizon (a race): its checkpoint waits

    def add(self, group: dict) -> None:
        """A group of its logs (inside the run's 80-digit context)."""
        if group["unsettled"]:
            self.unsettled += group["total"]
        else:
            self.settled += group["total"]

    @property
    def expected(self) -> Decimal:
        with localcontext(prec=80):
            return self.base + self.settled + self.unsettled


def expected_spend(payer: Payer, entity_id: str, watermark: int) -> Decimal:
    """What the logs say this entity's current period cost, read in full."""
    logged = payer.logged_cost(SpendLog.objects.filter(id__gt=watermark), entity_id)
    pruned = exact_sum(
        PrunedSpend.objects.filter(kind=payer.kind, entity_id=entity_id, last_log_id__gt=watermark), "cost"
    )
    return logged + pruned


def find_drift(full: bool = False) -> list[Drift]:
    """Every entity whose stored spend differs from its logs, read from one consistent snapshot."""
    return reconcile(full=full).drifts


def reconcile(full: bool = False, settle_seconds: float = SETTLE_SECONDS) -> Reconciliation:
    """Compare every holder's stored spend with its logs, from its checkpoint (or from its period's start: `full`),
    and advance the checkpoints to the settled horizon."""
    horizon = settled_log_id(settle_seconds)
    if horizon is None:
        logger.warning("reconcile_spend: transactions still open after %ss; the checkpoints stay", settle_seconds)
    snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if snapshot:
                    # Calls keep landing while this runs: one snapshot sees each call's log and its charge, or neither.
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                # One run at a time writes checkpoints. LOCK takes no snapshot: the snapshot begins after the lock.
                table = connection.ops.quote_name(ReconcileCheckpoint._meta.db_table)
                cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        return _Run(full, horizon).result()


def settled_log_id(settle_seconds: float = SETTLE_SECONDS) -> int | None:
    """The highest log id below which no log can still commit (see the module docstring), or None if transactions
    open when it was read are still open after `settle_seconds`."""
    highest = SpendLog.objects.aggregate(last=Max("id"))["last"] or 0
    if connection.vendor != "postgresql":
        return highest
    deadline = time.monotonic() + settle_seconds
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())")
        (next_xid,) = cursor.fetchone()
        while True:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(_UNSETTLED, [next_xid])
            if cursor.fetchone()[0] == 0:
                return highest
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL_SECONDS)


class _Run:
    """One reconcile run, inside its transaction."""

    def __init__(self, full: bool, horizon: int | None):
        self.full, self.horizon = full, horizon
        self.checkpoints = {
            (checkpoint.kind, checkpoint.entity_id): checkpoint for checkpoint in ReconcileCheckpoint.objects.all()
        }
        self.holders = {payer.kind: self._holders(payer) for payer in PAYERS}
        self.logs_read = 0

    def result(self) -> Reconciliation:
        self._read_logs()
        drifts = [
            Drift(holder.kind, holder.entity_id, holder.stored, holder.expected)
            for kind in self.holders
            for holder in self.holders[kind].values()
            if holder.stored != holder.expected
        ]
        self._write_checkpoints()
        return Reconciliation(drifts, self.logs_read, self.horizon)

    def _holders(self, payer: Payer) -> dict[str, _Holder]:
        watermarks = period_watermarks(payer)
        holders = {}
        for entity_id, stored in payer.model.objects.order_by(payer.id_field).values_list(payer.id_field, "spend"):
            watermark = watermarks.get(entity_id, 0)
            checkpoint = self.checkpoints.get((payer.kind, entity_id))
            if self.full or checkpoint is None or checkpoint.period_watermark != watermark:
                holder = _Holder(payer.kind, entity_id, stored, watermark, watermark, _ZERO)
            else:
                holder = _Holder(payer.kind, entity_id, stored, watermark, checkpoint.log_id, checkpoint.spend)
            holders[entity_id] = holder
        self._count_pruned(payer.kind, holders)
        return holders

    def _count_pruned(self, kind: str, holders: dict[str, _Holder]) -> None:
        """Add the pruned logs each holder has not counted yet; a holder with pruned logs after its checkpoint is
        read again from its period's start."""
        if not holders:
            return
        floor = min(holder.start for holder in holders.values())
        pruned = PrunedSpend.objects.filter(kind=kind, last_log_id__gt=floor).values_list("entity_id", "last_log_id")
        for entity_id, last_log_id in pruned:
            holder = holders.get(entity_id)
            if holder is not None and last_log_id > holder.start and holder.start > holder.watermark:
                holder.start, holder.base = holder.watermark, _ZERO  # its checkpoint no longer says what it holds
        from_start = [holder for holder in holders.values() if holder.start == holder.watermark]
        if not from_start:
            return
        rows = PrunedSpend.objects.filter(kind=kind, last_log_id__gt=min(holder.watermark for holder in from_start))
        if len(from_start) <= _NAMED_HOLDERS:
            rows = rows.filter(entity_id__in=[holder.entity_id for holder in from_start])
        with localcontext(prec=80):
            for entity_id, last_log_id, cost in rows.values_list("entity_id", "last_log_id", "cost"):
                holder = holders.get(entity_id)
                if holder is not None and holder.start == holder.watermark and last_log_id > holder.watermark:
                    holder.base += cost
                    if self.horizon is None or last_log_id > self.horizon:
                        holder.may_advance = False

    def _read_logs(self) -> None:
        """One pass over the logs after the most common start (the last run's horizon, usually); the holders starting
        elsewhere (a new period, a first run, every reset holder of a full run) in one more pass, whatever their
        number."""
        everyone = [holder for holders in self.holders.values() for holder in holders.values()]
        if not everyone:
            return
        floor = Counter(holder.start for holder in everyone).most_common(1)[0][0]
        split = self.horizon if self.horizon is not None else floor
        with localcontext(prec=80):
            for group in _log_groups(SpendLog.objects.filter(id__gt=floor), split):
                self.logs_read += group["requests"]
                for payer in PAYERS:
                    holders = self.holders[payer.kind]
                    for entity_id in payer.ids_in(group):
                        holder = holders.get(entity_id)
                        if holder is not None and holder.start == floor:
                            holder.add(group)
            others = [holder for holder in everyone if holder.start != floor]
            if others:
                self._read_others(others, split)

    def _read_others(self, others: list[_Holder], split: int) -> None:
        """The logs after the earliest of these holders' starts (only those naming one of them, for up to
        _NAMED_HOLDERS), grouped as the common pass's are and by how many of their starts each log comes after: a
        holder sums the groups after its own start. (One query per holder made ``--full`` grow with the holders
        reset at least once: each has its own period start.)"""
        starts = sorted({holder.start for holder in others})
        after = {start: index for index, start in enumerate(starts)}
        logs = SpendLog.objects.filter(id__gt=starts[0])
        naming = _naming(others) if len(others) <= _NAMED_HOLDERS else None
        if naming is not None:
            logs = logs.filter(naming)
        by_kind: dict[str, dict[str, _Holder]] = {}
        for holder in others:
            by_kind.setdefault(holder.kind, {})[holder.entity_id] = holder
        for group in _log_groups(logs, split, [start + 1 for start in starts]):
            for payer in PAYERS:
                holders = by_kind.get(payer.kind, {})
                for entity_id in payer.ids_in(group):
                    holder = holders.get(entity_id)
                    if holder is not None and group["after"] > after[holder.start]:
                        holder.add(group)

    def _write_checkpoints(self) -> None:
        """Move each holder's checkpoint to the horizon; drop those of ended periods and of holders gone."""
        current, changed, new = set(), [], []
        for kind, holders in self.holders.items():
            for holder in holders.values():
                checkpoint = self.checkpoints.get((kind, holder.entity_id))
                if checkpoint is not None and checkpoint.period_watermark == holder.watermark:
                    current.add(checkpoint.pk)
                if self.horizon is None or not holder.may_advance or self.horizon < holder.start:
                    continue
                with localcontext(prec=80):
                    spend = holder.base + holder.settled
                if checkpoint is None or checkpoint.period_watermark != holder.watermark:
                    new.append(
                        ReconcileCheckpoint(
                            kind=kind,
                            entity_id=holder.entity_id,
                            period_watermark=holder.watermark,
                            log_id=self.horizon,
                            spend=spend,
                        )
                    )
                elif (checkpoint.log_id, checkpoint.spend) != (self.horizon, spend):
                    checkpoint.log_id, checkpoint.spend = self.horizon, spend
                    changed.append(checkpoint)  # fmt: skip
        stale = [checkpoint.pk for checkpoint in self.checkpoints.values() if checkpoint.pk not in current]
        ReconcileCheckpoint.objects.filter(pk__in=stale).delete()
        ReconcileCheckpoint.objects.bulk_update(changed, ["log_id", "spend", "updated_at"], batch_size=1000)
        ReconcileCheckpoint.objects.bulk_create(new, batch_size=1000)


def _log_groups(logs: QuerySet, split: int, thresholds: list[int] | None = None):
    """`logs` in groups naming the same payers: their cost, their number, whether they come after `split`, and (given
    ascending `thresholds`) how many thresholds each is at or above (PostgreSQL groups and sums them exactly;
    SQLite's sums are not exact, so each log is a group)."""
    logs = logs.order_by()
    if connection.vendor == "postgresql":
        unsettled = Case(When(id__gt=split, then=Value(True)), default=Value(False))
        logs = logs.annotate(unsettled=unsettled)
        fields = [*LOG_FIELDS, "unsettled"]
        if thresholds is not None:
            table = connection.ops.quote_name(SpendLog._meta.db_table)
            logs = logs.annotate(after=RawSQL(f"width_bucket({table}.id, %s::bigint[])", [thresholds]))
            fields.append("after")
        return logs.values(*fields).annotate(total=Sum("cost"), requests=Count("id")).iterator()
    return (
        {**log, "unsettled": log["id"] > split, "total": log["cost"], "requests": 1,
         "after": bisect_right(thresholds or [], log["id"])}
        for log in logs.values("id", "cost", *LOG_FIELDS).iterator()
    )  # fmt: skip


def _naming(holders: list[_Holder]) -> Q | None:
    """The logs that may be charged to one of `holders`; None where a lookup cannot say (tags on SQLite)."""
    columns: dict[str, set[str]] = {}
    tags = set()
    for holder in holders:
        payer = PAYER_BY_KIND[holder.kind]
        if isinstance(payer, TagPayer):
            tags.add(holder.entity_id)
        elif isinstance(payer, KeyModelPayer):
            columns.setdefault("key_hash", set()).add(holder.entity_id.partition(":")[0])
        else:
            columns.setdefault(payer.log_field, set()).add(holder.entity_id)
    if tags and connection.vendor != "postgresql":
        return None
    named = Q(pk__in=[])
    for column, values in columns.items():
        named |= Q(**{f"{column}__in": sorted(values)})
    for tag in sorted(tags):
        named |= Q(request_tags__contains=[tag])
    return named


def fix_drift(drift: Drift) -> Drift | None:
    """Set the entity's spend to what its logs say, re-read in full under its row lock (calls may have landed since).
    Its checkpoints go too: the next run sums its period again from the logs."""
    payer = PAYER_BY_KIND[drift.kind]
    with transaction.atomic():
        entity = payer.model.objects.select_for_update().filter(**payer.lookup(drift.entity_id)).first()
        ReconcileCheckpoint.objects.filter(kind=drift.kind, entity_id=drift.entity_id).delete()
        if entity is None:
            return None
        watermark = period_watermarks(payer, [drift.entity_id]).get(drift.entity_id, 0)
        expected = expected_spend(payer, drift.entity_id, watermark)
        if entity.spend == expected:
            return None
        payer.model.objects.filter(pk=entity.pk).update(spend=expected)
        audit.record_update(payer.model, entity.pk, {"spend": entity.spend}, {"spend": expected})
        return Drift(payer.kind, drift.entity_id, entity.spend, expected)
