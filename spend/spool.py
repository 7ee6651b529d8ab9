"""The ledger's spool: charges for completed calls that the database could not take, kept on local disk until it can.

A call whose upstream answered has been paid for upstream; if its spend log cannot commit (the database went away
mid-call), the batch is written here instead, one file per batch, fsynced before the call is answered. When the
database answers again, the ledger writes the files through the same idempotent batch writer (a request_id already
logged is skipped, so a file replayed twice, or a batch that did commit before its connection dropped, charges
nothing twice) and deletes them. A process that dies with files here leaves them to the next process that starts
on the same spool directory.
"""

import fcntl
import logging
import os
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson

logger = logging.getLogger(__name__)

_SUFFIX = ".jsonl"
_REJECTED = ".rejected"


def _encode(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot spool a {type(value).__name__}")


class Spool:
    def __init__(self, directory: Path, entry_type: type):
        self.directory = Path(directory)
        self._entry_type = entry_type
        self._decimal_fields = [name for name, kind in entry_type.__annotations__.items() if kind is Decimal]
        self._datetime_fields = [name for name, kind in entry_type.__annotations__.items() if kind is datetime]

    def write(self, entries: list, rejected: bool = False) -> Path:
        """Keep `entries` durably (written, fsynced, then renamed into place) and return the file: to be replayed,
        or, `rejected`, set aside for an operator (rows the database refused even cleaned)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = b"".join(self.encode(entry) + b"\n" for entry in entries)
        name = f"{datetime.now().strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        partial = self.directory / f"{name}.partial"
        final = self.directory / f"{name}{_REJECTED if rejected else _SUFFIX}"
        with open(partial, "wb") as file:
            file.write(lines)
            file.flush()
            os.fsync(file.fileno())
        os.rename(partial, final)
        _fsync_directory(self.directory)
        return final

    def pending(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(path for path in self.directory.iterdir() if path.name.endswith(_SUFFIX))

    def depth(self) -> int:
        """How many charges wait here to be written (a gauge of /metrics)."""
        waiting = 0
        for path in self.pending():
            try:
                waiting += path.read_bytes().count(b"\n")
            except FileNotFoundError:
                continue  # replayed meanwhile
        return waiting

    def replay(self, write_batch: Callable[[list], None], transient: tuple[type[Exception], ...] = ()) -> int:
        """Write every spooled file through `write_batch` and delete it; return the entries replayed.

        One process replays a directory at a time (an advisory lock the kernel drops if the process dies). A file
        whose write fails with a `transient` error stays for the next attempt, and the error propagates; one that
        fails otherwise can never be written as it is, so it is set aside as `.rejected` for an operator, logged,
        and the others go on."""
        if not self.pending():
            return 0
        with open(self.directory / ".replay.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another process is replaying this directory
            replayed = 0
            for path in self.pending():
                try:
                    entries = self.read(path)
                    write_batch(entries)
                except transient:
                    raise
                except Exception:
                    logger.exception("spend ledger: spooled charges in %s cannot be written; set aside", path.name)
                    path.rename(path.with_suffix(_REJECTED))
                    continue
                path.unlink()
                _fsync_directory(self.directory)
                replayed += len(entries)
                logger.warning("spend ledger: replayed %d spooled charges from %s", len(entries), path.name)
            return replayed

    def read(self, path: Path) -> list:
        return [self.decode(orjson.loads(line)) for line in path.read_bytes().splitlines() if line]

    def encode(self, entry) -> bytes:
        """One entry as a line of JSON (without its newline): exact decimal strings, ISO times."""
        return orjson.dumps({name: getattr(entry, name) for name in self._entry_type.__slots__}, default=_encode)

    def decode(self, data: dict):
        """An entry back from its JSON object."""
        for name in self._decimal_fields:
            data[name] = Decimal(data[name])
        for name in self._datetime_fields:
            data[name] = datetime.fromisoformat(data[name])
        return self._entry_type(**data)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
