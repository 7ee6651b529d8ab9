"""The spend journal: every upstream request is on record before it leaves, so a process killed at any instant
leaves no call uncharged.

Each server process appends to a file of its own (`<TOLLGATE_SPOOL_DIR>/journal/<pid>-<id>.journal`) and holds an
exclusive lock on it while it lives. Two kinds of line:

- an entry (`{"k": price, "e": ...}`): the call's spend entry as far as it is known, status `interrupted`: written
  before each upstream attempt (its prompt), and again as a stream relays words (at most once a second); a call's
  last entry line is what it is charged if its process dies, priced then at the price entry it names;
- a price (`{"p": key, "v": ...}`): a deployment's price entry, exact, written once per file before the first entry
  that names it: the hot path writes a name, not a price, and prices nothing (that cost 18 us a call);
- done (`{"d": request_id}`): the call's own log is in the ledger (or, with the database away, in the spool).

A process that can lock another's file knows its writer died: it charges each call the file opened and did not
close, from its last entry, through the ledger's idempotent batch writer (a call whose log committed just before the
kill is skipped by its request_id), tells every process's budget counters to re-read those payers' spend, and
deletes the file. Each live process sweeps every TOLLGATE_SYNC_INTERVAL-ish second, so a killed worker's calls are
charged by its siblings within seconds, or by the next process to start.

A line is one `os.write`, not fsynced: it is in the kernel's page cache when the write returns, so it survives the
process being killed (SIGKILL, the OOM killer), not a power loss of the machine. The file is rewritten with only the
open calls once it passes 4 MB.
"""

import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path

import orjson
from django.db import transaction
from django.db.models import F

from keys.models import record_change
from pricing.calculator import Usage, compute_cost, format_money
from spend.entities import PAYERS
from spend.spool import Spool

logger = logging.getLogger(__name__)

_SUFFIX = ".journal"
_ROTATE_BYTES = 4 * 1024 * 1024


class Journal:
    """This process's journal file, and the sweep of the files of processes that died."""

    def __init__(self, directory: Path, codec: Spool):
        self.directory = Path(directory)
        self.codec = codec
        self._lock = threading.Lock()  # the event loop writes; a rotation may race a sweep's listing only
        self._open: dict[str, bytes] = {}  # request id -> its last entry line
        self._prices: dict[str, bytes] = {}  # price key -> its line, written into each file before its first use
        self._priced: set[str] = set()  # the price keys the current file holds
        self._descriptor: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._pid = 0

    # -- this process's calls ---------------------------------------------------------------------------------------

    def record(self, entry, price: Mapping, price_key: str) -> None:
        """The call, as it would be charged if this process died now: `entry`'s tokens at `price` (its deployment's
        price entry, which `price_key` names for as long as it does not change)."""
        line = b'{"k":' + orjson.dumps(price_key) + b',"e":' + self.codec.encode(entry) + b"}\n"
        with self._lock:
            price_line = self._prices.get(price_key)
            if price_line is None:
                price_line = b'{"p":' + orjson.dumps(price_key) + b',"v":' + _exact_json(price) + b"}\n"
                self._prices[price_key] = price_line
            self._make_room(len(price_line) + len(line))
            if price_key not in self._priced:
                self._write(price_line)
                self._priced.add(price_key)
            self._open[entry.request_id] = line
            self._write(line)

    def done(self, request_id: str) -> None:
        """The call's own log is durable: nothing to charge for it any more."""
        with self._lock:
            if self._open.pop(request_id, None) is not None:
                line = orjson.dumps({"d": request_id}) + b"\n"
                self._make_room(len(line))
                self._write(line)

    def _make_room(self, size: int) -> None:
        if self._descriptor is None or self._pid != os.getpid():
            self._start_file()
        elif self._size + size > _ROTATE_BYTES:
            self._rotate()

    def _write(self, line: bytes) -> None:
        os.write(self._descriptor, line)
        self._size += len(line)

    def _start_file(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:12]}{_SUFFIX}"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        self._descriptor, self._path, self._size, self._pid = descriptor, path, 0, os.getpid()
        self._priced = set()
        if self._open:  # the calls still open when this replaces a full file, after the prices they may name
            for line in [*self._prices.values(), *self._open.values()]:
                self._write(line)
            self._priced = set(self._prices)

    def _rotate(self) -> None:
        old_descriptor, old_path = self._descriptor, self._path
        self._start_file()
        old_path.unlink()  # unlinked while still locked: no sweep can take it for a dead process's
        os.close(old_descriptor)

    # -- processes that died ----------------------------------------------------------------------------------------

    def sweep(self, write_batch: Callable[[list], None]) -> int:
        """Charge the open calls of every journal whose process died (on a thread that may use the database); the
        number of calls charged."""
        if not self.directory.is_dir():
            return 0
        charged = 0
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            if path == self._path:
                continue
            try:
                descriptor = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # rotated or swept a moment ago
            try:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive
                if not path.exists():
                    continue  # swept by another process while this one waited to open it
                entries = self._open_calls(path)
                if entries:
                    write_batch(entries)
                    _tell_counters(entries)
                    logger.warning(
                        "spend journal: charged %d calls of a process that died (%s)", len(entries), path.name
                    )
                path.unlink()
                charged += len(entries)
            finally:
                os.close(descriptor)
        return charged

    def _open_calls(self, path: Path) -> list:
        """The calls a dead process's file opened and did not close, each priced at its price entry."""
        prices: dict[str, dict] = {}
        last: dict[str, tuple[str, dict]] = {}
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line, parse_float=Decimal)  # prices exact; rare, so the stdlib's parser
            except ValueError:
                continue  # a line cut by the kill: the call's earlier line stands
            if "d" in record:
                last.pop(record["d"], None)
            elif "p" in record:
                prices[record["p"]] = record["v"]
            else:
                last[record["e"]["request_id"]] = (record["k"], record["e"])
        return [_priced(self.codec.decode(data), prices[key]) for key, data in last.values()]


def _exact_json(value) -> bytes:
    """JSON with every Decimal written as a number of its own digits (read back with parse_float=Decimal)."""
    return orjson.dumps(value, default=lambda number: orjson.Fragment(str(number)))


def _priced(entry, price: Mapping):
    """The entry charged for its tokens and seconds at `price`, as the proxy prices a call."""
    cost = compute_cost(price, Usage.as_logged(entry), Decimal(entry.duration_ms) / 1000, billed_at=entry.end_time)
    entry.cost = cost.total
    entry.cost_breakdown = {part: format_money(amount) for part, amount in cost.as_dict().items()}
    return entry


def _tell_counters(entries) -> None:
    """The swept calls' payers were charged without their counters knowing: every process re-reads their spend."""
    with transaction.atomic():
        for payer in PAYERS:
            entity_ids = payer.holders_among(set().union(*(payer.ids_in(entry) for entry in entries if entry.cost)))
            for entity_id in sorted(entity_ids):
                payer.model.objects.filter(**payer.lookup(entity_id)).update(spend_epoch=F("spend_epoch") + 1)
                record_change(payer.kind, entity_id, action="journal_charged", actor="spend journal")
