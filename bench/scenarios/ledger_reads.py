"""Inside Tollgate, on one database: generate a ledger of N logs over 90 days, then time the reads issue 22 names.

    PYTHONPATH=<Tollgate's code> python -P bench/scenarios/ledger_reads.py LOGS [RUNS]

Run by the ledger-scale scenario (bench/scenarios/ledger_scale.py) in its own process, once per size, on a fresh
PostgreSQL database, against the code being measured; tests/bench/test_ledger_scale.py calls ``measure`` on the test
database at a tiny size. The logs come from ``generate_spend_data`` (one INSERT … SELECT over generate_series on
PostgreSQL, the secondary indexes rebuilt around it, payers' spend set to their logs' sums, days rolled up), so
``reconcile_spend`` must find no drift; then ANALYZE. Every read goes through the code a user reaches: the
management API through Django's test client with the master key, the admin's spend overview as a superuser, the
management commands, the ledger's ``write_batch``. A read is timed warm: one untimed run, then the median of up to
RUNS runs within a time budget (a read that takes seconds gets fewer runs; the count is kept). The writes come last:
reconcile, the write rate, then pruning (each prune drops one more day, so each timed run prunes one day).
"""

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO

import django

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command, get_commands, load_command_class  # noqa: E402
from django.core.management.base import CommandError  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.scenarios.ledger_scale import MS, PER_S, ROWS, S  # noqa: E402
from spend.models import SpendLog  # noqa: E402
from spend.periods import local_day  # noqa: E402

DAYS = 90
# A population the rollups are already full for at 200,000 logs (every key calls on most days), so the reports'
# answers are the same size at every size of the table and only the table's growth is measured.
POPULATION = {"teams": 20, "users": 50, "keys": 200}
RUNS = 5
BUDGET_S = 20.0  # runs of one read stop once this much time went into them (at least one timed run)
WRITE_SECONDS = 3.0
PRUNED_DAYS = 3
TAG = "bench-tag"  # the overview narrowed to it


def generate(logs: int, days: int = DAYS) -> dict:
    """``generate_spend_data`` for ``logs`` logs over ``days`` days, then ANALYZE; its time and rate."""
    started = time.perf_counter()
    _day_partitions(days)
    said = StringIO()
    call_command("generate_spend_data", logs=logs, days=days, stdout=said, **POPULATION)
    generated = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # VACUUM (outside a transaction: not in the tests) leaves autovacuum nothing to do on the rows just
            # written, and CHECKPOINT flushes them, before anything is timed: at 20 million logs the write rate
            # measured right after a plain ANALYZE fell to a sixth, with that work possibly still going on.
            cursor.execute("ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)")
            if not connection.in_atomic_block:
                cursor.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    return {
        "logs": logs,
        "days": days,
        "population": POPULATION,
        "generate_s": round(generated, 1),
        "with_analyze_s": round(seconds, 1),  # VACUUM and CHECKPOINT included
        "logs_per_s": round(logs / seconds),
        "generator_said": said.getvalue().strip().splitlines(),  # its insert's and its rollup's times
    }


def _day_partitions(days: int) -> None:
    """On a partitioned ledger, each day of the history its own partition, as the scheduler would have made them
    ahead while those days came (migrate makes only the days ahead: the history would all land in the default)."""
    from spend.partitions import ensure_partitions

    today = local_day(timezone.now())
    ensure_partitions(days=[today - timedelta(days=offset) for offset in range(days + 1)])


def measure(runs: int = RUNS, budget_s: float = BUDGET_S, write_seconds: float = WRITE_SECONDS) -> dict:
    """Every row of ROWS on the ledger as it is: {name: {value, unit, runs, samples}}, and the checks made."""
    api = Client(HTTP_AUTHORIZATION=f"Bearer {settings.TOLLGATE_MASTER_KEY}")
    admin = Client()
    admin.force_login(_superuser())
    today = local_day(timezone.now())
    keys = _keys_by_calls()
    rows: dict[str, dict] = {}
    problems: list[str] = []

    def get(client: Client, path: str, params: dict | None = None) -> Callable[[], None]:
        def read() -> None:
            response = client.get(path, params or {})
            if response.status_code != 200:
                raise RuntimeError(f"{path} {params}: {response.status_code} {response.content[:300]!r}")

        return read

    def put(name: str, action: Callable[[], None], warm: bool = True) -> None:
        rows[name] = _timed(action, runs, budget_s, warm=warm, unit=dict(ROWS)[name])

    for which, key in (("busiest", keys[0]), ("quietest", keys[-1])):
        logs = {"api_key": key, "start_date": today - timedelta(days=DAYS - 1), "end_date": today}
        put(
            f"/spend/logs one key, 90 days, first page ({which} key)",
            get(api, "/spend/logs", {**logs, "summarize": "false"}),
        )
        if which == "busiest":
            put("/spend/logs one key, 90 days, summarized by day (busiest key)", get(api, "/spend/logs", logs))
    for group_by in ("team", "api_key"):
        for days in (30, 90):
            window = {"start_date": today - timedelta(days=days - 1), "end_date": today, "group_by": group_by}
            put(f"/global/spend/report group_by={group_by}, {days} days", get(api, "/global/spend/report", window))
    put("spend overview (admin page, 30 days by team)", get(admin, reverse("admin:spend_overview")))
    # Narrowed to a tag, the overview reads the tagged rollup and the tail (spend.overview.TaggedSpend). The generated
    # logs carry no tag: the rollup's rows for the range are read and none is the tag's.
    put(
        "spend overview (admin page, 30 days by team, narrowed to a tag)",
        get(admin, reverse("admin:spend_overview"), {"tag": TAG}),
    )

    drifts = []
    rows["reconcile_spend, first run"] = _timed(_reconcile(drifts), 1, 0, warm=False, unit=S)
    rows["write_batch of 1 entry (one round trip)"] = _write_rate(runs, write_seconds)
    put("reconcile_spend, incremental", _reconcile(drifts), warm=False)
    if _has_full_reconcile():
        put("reconcile_spend --full", _reconcile(drifts, "--full"), warm=False)
    else:
        rows["reconcile_spend --full"] = {"value": None, "unit": S, "note": "n/a: reconcile_spend has no --full"}
    rows["prune one day (prune_spend_logs)"] = _prune_days(PRUNED_DAYS)
    if drifts:
        problems.append(f"reconcile_spend found drift: {drifts[0][:500]}")
    return {
        "rows": {name: rows[name] for name, _ in ROWS},
        "logs_after": SpendLog.objects.count(),
        "keys": {"busiest": keys[0], "quietest": keys[-1]},
        "spend_log_bytes": _table_bytes(),
        "load_average": os.getloadavg(),
        "problems": problems,
    }


def _timed(action: Callable[[], None], runs: int, budget_s: float, *, warm: bool, unit: str) -> dict:
    if warm:
        action()
    samples: list[float] = []
    stop_at = time.perf_counter() + budget_s
    while len(samples) < runs and (not samples or time.perf_counter() < stop_at):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    scale = 1000 if unit == MS else 1
    value = statistics.median(samples) * scale
    return {"value": round(value, 2 if unit == MS else 3), "unit": unit, "runs": len(samples),
            "samples": [round(sample * scale, 3) for sample in samples]}  # fmt: skip


def _keys_by_calls() -> list[str]:
    """The generated keys, the one with most logs first (its rows are the most a key's page can have to skip)."""
    counted = SpendLog.objects.filter(key_hash__gt="").values_list("key_hash").order_by()
    counts: dict[str, int] = {}
    # The generator's population is known: count a sample, not the whole table, to rank them.
    for (key_hash,) in counted[:20000]:
        counts[key_hash] = counts.get(key_hash, 0) + 1
    if not counts:
        raise RuntimeError("no spend log names a key: generate first")
    return sorted(counts, key=lambda key_hash: (-counts[key_hash], key_hash))


def _superuser():
    user, _ = get_user_model().objects.get_or_create(
        username="bench-ledger-scale", defaults={"is_staff": True, "is_superuser": True}
    )
    return user


def _reconcile(drifts: list[str], *options: str) -> Callable[[], None]:
    def reconcile() -> None:
        out = StringIO()
        try:
            call_command("reconcile_spend", *options, stdout=out)
        except CommandError as exc:
            drifts.append(f"{exc}: {out.getvalue()}")

    return reconcile


def _has_full_reconcile() -> bool:
    command = load_command_class(get_commands()["reconcile_spend"], "reconcile_spend")
    parser = command.create_parser("manage.py", "reconcile_spend")
    return any("--full" in action.option_strings for action in parser._actions)


def _write_rate(runs: int, seconds: float) -> dict:
    """spend.ledger.write_batch of one entry at a time (what one call's commit costs), as ledger_writer.py does."""
    from bench.scenarios.ledger_writer import direct, template

    base = template()
    samples = [direct(base, 1, seconds)["logs_per_s"] for _ in range(min(runs, 3))]
    return {"value": round(statistics.median(samples), 1), "unit": PER_S, "runs": len(samples), "samples": samples}


def _prune_days(days: int) -> dict:
    """Retention set one day further than the oldest log, then one more day, ``days`` times: each run prunes a day."""
    oldest = SpendLog.objects.order_by("start_time").values_list("start_time", flat=True).first()
    if oldest is None:
        return {"value": None, "unit": S, "note": "n/a: no logs"}
    keep = (local_day(timezone.now()) - local_day(oldest)).days
    logs_before = SpendLog.objects.count()
    samples, pruned = [], []
    for step in range(1, days + 1):
        with override_settings(SPEND_LOG_RETENTION_DAYS=keep - step):
            started = time.perf_counter()
            pruned.append(_prune())
            samples.append(time.perf_counter() - started)
    return {"value": round(statistics.median(samples), 3), "unit": S, "runs": len(samples),
            "samples": [round(sample, 3) for sample in samples], "answers": pruned,
            "logs_pruned": logs_before - SpendLog.objects.count()}  # fmt: skip


def _prune():
    if "prune_spend_logs" in get_commands():
        out = StringIO()
        call_command("prune_spend_logs", stdout=out)
        return out.getvalue().strip()[-300:]
    from spend.retention import prune_spend_logs

    return prune_spend_logs()


def _table_bytes() -> int | None:
    """The spend log's size on disk with its indexes (its partitions' too, where it is partitioned)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " WHERE c.oid = %s::regclass OR c.oid IN (SELECT relid FROM pg_partition_tree(%s::regclass))",
            [SpendLog._meta.db_table, SpendLog._meta.db_table],
        )
        return int(cursor.fetchone()[0])


def main() -> None:
    logs = int(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else RUNS
    print(f"  generating {logs:,} logs over {DAYS} days", file=sys.stderr, flush=True)
    generation = generate(logs)
    print(f"  generated in {generation['with_analyze_s']} s ({generation['logs_per_s']:,} logs/s); timing",
          file=sys.stderr, flush=True)  # fmt: skip
    result = {"generation": generation, **measure(runs)}
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
