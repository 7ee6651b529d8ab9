"""The group-commit writer: every call's spend log commits before its response completes.

Calls hand their entry to the ledger and wait. One writer takes whatever has queued up since its last commit and
writes it all in one transaction, so a burst of concurrent calls pays for one commit, not one each: on PostgreSQL
in a single round trip from the event loop, and through a writer thread for everything else (SQLite, a replayed
batch, a database that went away).
The same transaction adds the batch's cost to each key's, user's and team's spend: a log and its charge commit
together or not at all, and a batch written twice (a retry after a commit whose acknowledgement was lost)
charges nothing the second time, because a request_id already in the ledger is skipped.

If the database goes away mid-call, the upstream has still been paid: the batch goes to the spool (local disk,
fsynced) and the calls are answered; new calls are refused with 503 until the database answers again, and then
the spool is written before anything else is served.

One call's row never takes other callers' rows with it. A batch the database refuses for what it holds (a NUL
character in metadata, a token count past its column) is written again row by row; a row refused alone is written
once more cleaned (metadata and tags dropped, text stripped of what the database cannot hold, counts clamped to
their columns), so its charge still commits; a row refused even then is set aside in the spool as `.rejected`,
never dropped, and only its own call is answered 503.
"""

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Context, Decimal, localcontext
from pathlib import Path

import orjson
import psycopg
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)

from pricing.errors import TollgateError
from spend.entities import PAYERS, Payer
from spend.journal import Journal
from spend.log_rows import bounded_metadata, price_digest, prices_written, unwritten_prices
from spend.models import ChargedPrice, SpendLog
from spend.spool import Spool

logger = logging.getLogger(__name__)

_MAX_BATCH = 500
_PROBE_INTERVAL_SECONDS = 1.0
_ZERO = Decimal(0)
# A batch's sum per payer, exact: the default context keeps 28 digits, a money column holds 38.
_EXACT_SUMS = Context(prec=80)


@dataclass(slots=True)
class SpendEntry:
    """One call's charge, as the gateway hands it over."""

    request_id: str
    call_type: str
    requested_model: str
    start_time: datetime
    end_time: datetime
    cost: Decimal = Decimal(0)
    cost_breakdown: dict = field(default_factory=dict)
    prices: dict = field(default_factory=dict)
    pricing_source: str = ""
    price_version: str = ""
    model_group: str = ""
    deployment_id: str = ""
    provider: str = ""
    provider_model: str = ""
    api_base: str = ""
    key_hash: str = ""
    user_id: str = ""
    team_id: str = ""
    end_user: str = ""
    organization_id: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    duration_ms: int = 0
    time_to_first_token_ms: int | None = None
    status: str = SpendLog.Status.SUCCESS
    error_class: str = ""
    attempts: int = 1
    metadata: dict = field(default_factory=dict)
    request_tags: list = field(default_factory=list)


class LedgerUnavailable(TollgateError, status=503, code="ledger_unavailable"):
    """The ledger could not commit; the call cannot be charged (503: try again once the database is back)."""


_TRANSIENT = (OperationalError, InterfaceError)
# PositiveIntegerField's range on every database Django supports.
_COUNT_CEILING = 2**31 - 1
_COUNT_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "duration_ms",
    "time_to_first_token_ms",
)


def _storable_text(value: str, limit: int | None = None) -> str:
    """Text PostgreSQL can store: no NUL, no lone surrogates, within the column's length."""
    text = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return text[:limit] if limit else text


def cleaned_entry(entry: SpendEntry) -> SpendEntry:
    """The entry with everything dropped or clamped that a database could refuse, its money and payers kept."""
    fields = {}
    for name in SpendEntry.__slots__:
        value = getattr(entry, name)
        if isinstance(value, str):
            value = _storable_text(value, SpendLog._meta.get_field(name).max_length)
        elif name in _COUNT_FIELDS and isinstance(value, int):
            value = min(max(value, 0), _COUNT_CEILING)
        fields[name] = value
    fields["attempts"] = min(max(entry.attempts, 0), 32767)
    fields["metadata"] = {"ledger_note": "metadata and tags dropped: the database refused this row as sent"}
    fields["request_tags"] = []
    return SpendEntry(**fields)


def write_batch(entries: list[SpendEntry]) -> None:
    """Write one batch in one transaction (synchronous: runs on the writer thread).

    On PostgreSQL, outside a transaction, the batch goes in a single round trip: a call waits for its log to
    commit, and the round trips of the general path (begin, the request-id check, charges, insert, commit) were
    most of that wait. The unique request_id keeps it exact: a batch holding a call that is already logged (a
    replay) fails whole, and the general path then skips what is logged. (On the partitioned log the request id is
    unique per start_time, spend.partitions: a replay carries the start time its call was given when it arrived.)"""
    if connection.vendor == "postgresql" and connection.get_autocommit():
        try:
            prices_written(_charge_and_log(entries))
            return
        except IntegrityError:
            pass
    with transaction.atomic():
        fresh = _not_yet_logged(entries)
        written = _charge_and_log(fresh) if fresh else ()
    prices_written(written)


def _not_yet_logged(entries: list[SpendEntry]) -> list[SpendEntry]:
    """The entries whose call is not logged yet, each request id once (its first entry), in the batch's order.

    On PostgreSQL the log is partitioned by start_time and a request id is unique per start time (a replay carries
    its call's start time), so the check is bounded to the batch's start times: it reads only the partitions that
    could hold them, not every day kept. SQLite's one table has request_id unique alone: checked by id only."""
    if not entries:
        return []
    unique = {entry.request_id: entry for entry in reversed(entries)}
    logs = SpendLog.objects.filter(request_id__in=list(unique))
    if connection.vendor == "postgresql":
        starts = [entry.start_time for entry in unique.values()]
        logs = logs.filter(start_time__gte=min(starts), start_time__lte=max(starts))
    logged = set(logs.values_list("request_id", flat=True))
    return [entry for request_id, entry in reversed(unique.items()) if request_id not in logged]


def _charge_and_log(entries: list[SpendEntry]) -> list[str]:
    """Charge the entries' payers, then log them (with the price entries they name that this process has not
    written yet; their digests returned, to record once committed). Charges come first: they lock the payers'
    rows, which is what makes a budget reset's log watermark exact (see BudgetReset); and they lock them in one
    fixed order (kind, then id), so that concurrent writers cannot deadlock."""
    if connection.vendor == "postgresql":
        query, params, written = charge_and_log_query(entries)
        with connection.cursor() as cursor:
            cursor.execute(query, params)
        return written
    for payer, entity_id, amount in _payer_totals(entries):
        _add_spend_exactly(payer.model.objects.filter(**payer.lookup(entity_id)), amount)
    unwritten = unwritten_prices(entries)
    if unwritten:
        ChargedPrice.objects.bulk_create(
            [ChargedPrice(digest=digest, entry=entry) for digest, entry in unwritten.items()], ignore_conflicts=True
        )
    SpendLog.objects.bulk_create([SpendLog(**_fields(entry)) for entry in entries])
    return list(unwritten)


def charge_and_log_query(entries: list[SpendEntry]) -> tuple[str, list, list[str]]:
    """PostgreSQL: the charges, the unwritten price entries and the logs as one multi-statement query (sent with
    client-side binding, it goes in a single round trip, and runs as a single transaction of its own when none is
    open); and the digests of the price entries it writes."""
    statements, params = [], []
    for payer, entity_id, amount in _payer_totals(entries):
        statements.append(_charge_statement(payer))
        params += [amount, entity_id]
    unwritten = unwritten_prices(entries)
    if unwritten:
        statements.append(_INSERT_PRICES_FROM_JSON)
        params.append(orjson.dumps(unwritten).decode())
    statements.append(_INSERT_FROM_JSON)
    params.append(orjson.dumps([_row(entry) for entry in entries], default=str).decode())
    return ";\n".join(statements), params, list(unwritten)


@functools.cache
def _charge_statement(payer: Payer) -> str:
    meta = payer.model._meta
    table, spend, key = _quoted(meta.db_table), _quoted("spend"), _quoted(meta.get_field(payer.id_field).column)
    return f"UPDATE {table} SET {spend} = {spend} + %s WHERE {key} = %s"


def _payer_totals(entries: list[SpendEntry]) -> list[tuple[Payer, str, Decimal]]:
    """(payer, entity id, amount) for every payer the entries charge, in lock order."""
    charges = []
    with localcontext(_EXACT_SUMS):
        for payer in PAYERS:
            totals: dict[str, Decimal] = {}
            for entry in entries:
                if entry.cost:
                    for entity_id in payer.ids_in(entry):
                        totals[entity_id] = totals.get(entity_id, _ZERO) + entry.cost
            charges += [(payer, entity_id, totals[entity_id]) for entity_id in sorted(totals)]
    return charges


def _add_spend_exactly(queryset, amount: Decimal) -> None:
    # SQLite adds through doubles; its writers are serialized (BEGIN IMMEDIATE), so add in Python instead.
    for pk, spend in queryset.values_list("pk", "spend"):
        queryset.model.objects.filter(pk=pk).update(spend=spend + amount)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# The entry's fields that are the log's columns as they are: its prices are logged by digest, its metadata bounded.
_COPIED = [name for name in SpendEntry.__slots__ if name not in ("prices", "metadata")]
_LOG_COLUMNS = {name: SpendLog._meta.get_field(name).column for name in [*_COPIED, "charged_price_id", "metadata"]}


def _fields(entry: SpendEntry) -> dict:
    fields = {name: getattr(entry, name) for name in _COPIED}
    fields.update(charged_price_id=price_digest(entry.prices), metadata=bounded_metadata(entry.metadata))
    return fields


def _row(entry: SpendEntry) -> dict:
    return {_LOG_COLUMNS[name]: value for name, value in _fields(entry).items()}


# jsonb_populate_recordset reads each object into the table's row type, by column name, through each column's own
# input function: money arrives as exact decimal strings, times as RFC 3339. A 500-log batch goes in faster this
# way than by COPY (measured: 11,800 against 5,400 logs/s), and in the same round trip as the charges.
_LOG_TABLE = _quoted(SpendLog._meta.db_table)
_QUOTED_COLUMNS = ", ".join(_quoted(column) for column in _LOG_COLUMNS.values())
_INSERT_FROM_JSON = (
    f"INSERT INTO {_LOG_TABLE} ({_QUOTED_COLUMNS}) SELECT {_QUOTED_COLUMNS} "
    f"FROM jsonb_populate_recordset(NULL::{_LOG_TABLE}, %s::jsonb)"
)
# The price entries a batch names, as one object (digest -> entry): inserted unless another writer did first.
_INSERT_PRICES_FROM_JSON = (
    f"INSERT INTO {_quoted(ChargedPrice._meta.db_table)} (digest, entry, first_seen) "
    "SELECT key, value, now() FROM jsonb_each(%s::jsonb) ON CONFLICT DO NOTHING"
)


class _LoopConnection:
    """PostgreSQL: the one-round-trip write sent from the event loop itself, on a connection of its own.

    Through the writer thread a call's log took a thread to wake and the GIL handed over twice: at one call at a
    time, its wait went from 2.3 ms that way to 1.8 ms this way (measured in the benchmark). Anything that goes
    wrong here sends the batch to the writer thread instead, which handles every failure (a replayed call, a lost
    database, the spool)."""

    def __init__(self):
        self._connection: psycopg.AsyncConnection | None = None

    async def write(self, entries: list[SpendEntry]) -> bool:
        """Whether the batch committed."""
        try:
            if self._connection is None or self._connection.closed:
                self._connection = await psycopg.AsyncConnection.connect(**_loop_connection_params(), autocommit=True)
            query, params, written = charge_and_log_query(entries)
            async with self._connection.cursor() as cursor:
                await cursor.execute(query, params)
            prices_written(written)
            return True
        except Exception as exc:
            logger.debug("spend ledger: the writer thread takes a batch of %d (%s)", len(entries), type(exc).__name__)
            # A replayed call or a refused row: the connection itself is fine.
            if not isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
                self.close()
            return False

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.pgconn.finish()  # what AsyncConnection.close() does, callable from any thread


def _loop_connection_params() -> dict:
    """Django's parameters for its own connections, less its synchronous cursor and adapters."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    params.pop("context", None)
    return {**params, "cursor_factory": psycopg.AsyncClientCursor}


class Ledger:
    """Per-process group-commit queue in front of one writer thread (and, on PostgreSQL, a connection of the
    event loop's own for the common case)."""

    def __init__(self, writer=write_batch, spool_directory=None):
        self._writer = writer
        self._loop_connection = _LoopConnection() if connection.vendor == "postgresql" else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollgate-ledger")
        self._pending: list[tuple[SpendEntry, asyncio.Future]] = []
        self._unsettled: set[asyncio.Future] = set()  # queued or being written: what a shutdown waits for
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.failing_since: float | None = None  # a commit failed and none has succeeded since
        self._last_probe = 0.0
        self.spool = Spool(spool_directory or settings.TOLLGATE_SPOOL_DIR, SpendEntry)
        # Files an earlier process may have left: looked for after this ledger's first commit.
        self._spool_may_hold_entries = True

    async def ensure_available(self) -> None:
        """Refuse a call up front while the database cannot take its charge: never serve what cannot be charged.

        While failing, at most one probe a second asks the database whether it is back."""
        if self.failing_since is None:
            return
        now = time.monotonic()
        if now - self._last_probe >= _PROBE_INTERVAL_SECONDS:
            self._last_probe = now
            if await asyncio.get_running_loop().run_in_executor(self._executor, self._recover):
                self.failing_since = None
                logger.warning("spend ledger: the database is back, calls are served again")
                return
        raise LedgerUnavailable("The spend ledger cannot reach its database; calls are refused until it is back.")

    def submit(self, entry: SpendEntry) -> asyncio.Future:
        """Queue an entry; the future resolves once it is committed (or fails with LedgerUnavailable)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        future.add_done_callback(functools.partial(_close_in_journal, entry.request_id))
        self._unsettled.add(future)
        future.add_done_callback(self._unsettled.discard)
        self._pending.append((entry, future))
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run())
        self._wakeup.set()
        return future

    async def charge(self, entry: SpendEntry) -> None:
        # Shielded: a client that goes away while we wait must not cancel its own charge.
        await asyncio.shield(self.submit(entry))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
                entries = [entry for entry, _ in batch]
                refused: dict[str, Exception] = {}
                try:
                    if not await self._write_from_the_loop(entries):
                        refused = await loop.run_in_executor(self._executor, self._commit, entries)
                except _TRANSIENT as exc:
                    self.failing_since = self.failing_since or time.monotonic()
                    outcome = await self._spool_batch(loop, entries, exc)
                except Exception as exc:
                    logger.exception("spend ledger could not commit %d entries", len(batch))
                    outcome = LedgerUnavailable(exc.__class__.__name__)
                else:
                    outcome = None
                    if not self._spool_may_hold_entries:
                        self.failing_since = None  # a commit went through and nothing waits in the spool
                for entry, future in batch:
                    if future.done():
                        continue
                    failure = outcome or refused.get(entry.request_id)
                    if failure is None:
                        future.set_result(None)
                    else:
                        future.set_exception(failure)

    async def sweep_journals(self) -> int:
        """Charge the calls of processes that died with calls open (see spend.journal); the number charged.

        Written as any batch is, row by row where the database refuses one (a refused row is set aside in the spool,
        and its file is done with); a database that does not answer leaves the file for the next sweep."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, journal().sweep, self._commit)
        except _TRANSIENT:
            return 0  # the database is away: calls are refused meanwhile, and say so
        except Exception:
            logger.exception("spend journal: a dead process's calls could not be charged yet")
            return 0

    async def drain(self) -> None:
        """Wait until every entry submitted so far is committed, spooled or refused: closing before would lose the
        charges still queued (the writer thread would be gone when their batch came up)."""
        while self._unsettled:
            await asyncio.wait(list(self._unsettled))

    def close(self) -> None:
        """Close the writer thread's database connection, the thread, and the event loop's connection."""
        self._executor.submit(connections.close_all).result()  # resolved in that thread
        self._executor.shutdown()
        if self._loop_connection is not None:
            self._loop_connection.close()

    async def _write_from_the_loop(self, entries: list[SpendEntry]) -> bool:
        # Not while the spool may hold charges (the writer thread writes them first), nor for a ledger given a
        # writer of its own.
        if self._loop_connection is None or self._writer is not write_batch or self._spool_may_hold_entries:
            return False
        return await self._loop_connection.write(entries)

    async def _spool_batch(self, loop, entries: list[SpendEntry], cause: Exception) -> LedgerUnavailable | None:
        """Keep a batch the database could not take; None once it is on disk, the error to answer with if not."""
        try:
            path = await loop.run_in_executor(self._executor, self.spool.write, entries)
        except OSError as exc:
            logger.exception("spend ledger: the database and the spool both failed for %d entries", len(entries))
            return LedgerUnavailable(exc.__class__.__name__)
        self._spool_may_hold_entries = True
        logger.warning(
            "spend ledger: the database is unreachable (%s); %d charges spooled to %s until it is back",
            cause,
            len(entries),
            path,
            exc_info=cause,
        )
        return None

    def _commit(self, entries: list[SpendEntry]) -> dict[str, LedgerUnavailable]:
        """Write a batch; the calls whose rows could not be written at all (set aside in the spool), by request id."""
        try:
            self._write(entries)
            refused = {}
        except _TRANSIENT:
            raise
        except Exception:
            # Not a lost database: something in the rows. Each caller's row alone, so only a bad one fails.
            refused = self._write_one_by_one(entries)
        if self._spool_may_hold_entries:
            self._replay_spool()
        return refused

    def _write_one_by_one(self, entries: list[SpendEntry]) -> dict[str, LedgerUnavailable]:
        refused = {}
        for entry in entries:
            try:
                self._write([entry])
                continue
            except _TRANSIENT:
                raise  # the rows written so far are logged; the batch's spool replay skips them
            except Exception as exc:
                logger.warning(
                    "spend ledger: the database refused call %s's row (%s); cleaning it", entry.request_id, exc
                )
            try:
                self._write([cleaned_entry(entry)])
            except _TRANSIENT:
                raise
            except Exception:
                path = self.spool.write([entry], rejected=True)
                logger.exception("spend ledger: call %s's row set aside in %s for an operator", entry.request_id, path)
                refused[entry.request_id] = LedgerUnavailable("the call's spend log was set aside")
        return refused

    def _recover(self) -> bool:
        """Whether the database answers again and the spool has been written to it (on the writer thread)."""
        return database_answers() and self._replay_spool()

    def _replay_spool(self) -> bool:
        try:
            self.spool.replay(self._write, transient=_TRANSIENT)
        except Exception:
            logger.exception("spend ledger: spooled charges could not be written yet")
            return False
        self._spool_may_hold_entries = False
        return True

    def _write(self, entries: list[SpendEntry]) -> None:
        # The writer thread keeps its connection across batches (a reconnect costs ~11 ms on PostgreSQL); one
        # the database dropped fails below and is reopened.
        try:
            self._writer(entries)
        except _TRANSIENT:
            # A connection the database dropped (restart, failover): reconnect once before giving up. The batch may
            # have committed before the connection went; writing it again skips what did.
            connection.close()
            self._writer(entries)
        except IntegrityError:
            # Another process logged one of these request ids between our check and our insert: once more, and
            # this time the check sees it.
            self._writer(entries)


def _close_in_journal(request_id: str, future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is None:  # committed, or kept in the spool
        journal().done(request_id)


_journal: tuple[object, Journal] | None = None


def journal() -> Journal:
    """This process's spend journal, in TOLLGATE_SPOOL_DIR (a new one if the setting changed: tests)."""
    global _journal
    spool_directory = settings.TOLLGATE_SPOOL_DIR
    if _journal is None or _journal[0] is not spool_directory:
        directory = Path(spool_directory) / "journal"
        _journal = (spool_directory, Journal(directory, Spool(directory, SpendEntry)))
    return _journal[1]


def database_answers(close_after: bool = False) -> bool:
    """Whether this thread can reach the database now, on a fresh connection (kept open unless `close_after`)."""
    close_old_connections()
    try:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False
    finally:
        if close_after:
            connection.close()


_ledgers: dict[asyncio.AbstractEventLoop, Ledger] = {}


def ledger() -> Ledger:
    """This event loop's ledger (one per server process)."""
    loop = asyncio.get_running_loop()
    current = _ledgers.get(loop)
    if current is None:
        current = _ledgers[loop] = Ledger()
    return current


async def drain_ledger() -> None:
    """Wait for this event loop's ledger to settle every entry queued (shutdown, before close_ledgers)."""
    current = _ledgers.get(asyncio.get_running_loop())
    if current is not None:
        await current.drain()


def close_ledgers() -> None:
    """Close every event loop's ledger: its connections and its writer thread (call drain_ledger first)."""
    while _ledgers:
        _loop, closing = _ledgers.popitem()
        closing.close()
