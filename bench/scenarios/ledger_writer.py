"""Measure the spend ledger's writer alone against the database in DATABASE_URL: logs committed a second.

    PYTHONPATH=<Tollgate's code> python -P bench/scenarios/ledger_writer.py SECONDS

Run by the ledger scenario in its own process, against the code being measured (spend/ledger.py). Entries are
copies of a real spend log of that database (a call the scenario server charged), each with a new request id, so
they cost what a real call's log costs, charge to the payers it names included. Two ways:

  write_batch       one transaction of N logs after another, on this thread (N = 1, 100, 500)
  Ledger            K concurrent calls each awaiting `Ledger.charge` (the group commit the server uses): the
                    writer thread commits whatever queued up meanwhile in one transaction
  COPY              for reference, the same rows as 500-row batches through PostgreSQL's COPY (psycopg), no charge
"""

import asyncio
import dataclasses
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
django.setup()

from django.db import connection, connections, transaction  # noqa: E402

from spend.ledger import Ledger, SpendEntry, write_batch  # noqa: E402
from spend.models import SpendLog  # noqa: E402

BATCH_SIZES = (1, 100, 500)
CONCURRENCY = (64, 512)


def template() -> SpendEntry:
    fields = {field.name for field in dataclasses.fields(SpendEntry)}
    log = SpendLog.objects.filter(status=SpendLog.Status.SUCCESS, key_hash__gt="").order_by("-id").first()
    if log is None:
        now = datetime.now(UTC)
        return SpendEntry(
            request_id="", call_type="chat", requested_model="bench-model", start_time=now, end_time=now,
            cost=Decimal("0.000435"), model_group="bench-model", prompt_tokens=1000, completion_tokens=500,
        )  # fmt: skip
    return SpendEntry(**{name: getattr(log, name) for name in fields})


def fresh(base: SpendEntry) -> SpendEntry:
    now = datetime.now(UTC)
    return dataclasses.replace(base, request_id=uuid.uuid4().hex, start_time=now, end_time=now)


def direct(base: SpendEntry, size: int, seconds: float) -> dict:
    logs, commits = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        write_batch([fresh(base) for _ in range(size)])
        logs += size
        commits += 1
    elapsed = time.perf_counter() - started
    return {"logs": logs, "commits": commits, "seconds": round(elapsed, 3), "logs_per_s": round(logs / elapsed, 1)}


def copied(base: SpendEntry, size: int, seconds: float) -> dict:
    fields = [field for field in SpendLog._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    statement = f"COPY {SpendLog._meta.db_table} ({columns}) FROM STDIN"
    names = [field.name for field in dataclasses.fields(SpendEntry)]
    logs = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        rows = [
            SpendLog(**{name: getattr(entry, name) for name in names}) for entry in (fresh(base) for _ in range(size))
        ]
        with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([field.get_db_prep_save(field.pre_save(row, True), connection) for field in fields])
        logs += size
    elapsed = time.perf_counter() - started
    return {"logs": logs, "seconds": round(elapsed, 3), "logs_per_s": round(logs / elapsed, 1)}


async def grouped(base: SpendEntry, concurrency: int, seconds: float) -> dict:
    batches: list[int] = []

    def counting_writer(entries):
        write_batch(entries)
        batches.append(len(entries))

    ledger = Ledger(writer=counting_writer)
    logged = 0
    stop_at = time.perf_counter() + seconds

    async def call():
        nonlocal logged
        while time.perf_counter() < stop_at:
            await ledger.charge(fresh(base))
            logged += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(call() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        # The writer thread's connection closes in that thread, then the thread stops.
        ledger._executor.submit(connections.close_all).result()
        ledger._executor.shutdown()
    return {
        "logs": logged,
        "commits": len(batches),
        "mean_batch": round(sum(batches) / len(batches), 1) if batches else 0,
        "seconds": round(elapsed, 3),
        "logs_per_s": round(logged / elapsed, 1),
    }


def main() -> None:
    seconds = float(sys.argv[1])
    base = template()
    result = {"template": "a real spend log" if base.request_id else "made up", "direct": {}, "ledger": {}}
    for size in BATCH_SIZES:
        result["direct"][str(size)] = direct(base, size, seconds)
    for concurrency in CONCURRENCY:
        result["ledger"][str(concurrency)] = asyncio.run(grouped(base, concurrency, seconds))
    result["copy"] = {str(BATCH_SIZES[-1]): copied(base, BATCH_SIZES[-1], seconds)}
    connections.close_all()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
