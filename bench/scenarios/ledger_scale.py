"""Ledger scale (issue 22): the reads and writes of the spend ledger at 200,000 logs and at 20 million.

    .venv/bin/python -m bench.run --scenario ledger-scale --logs 200000,20000000

For each size, one after the other: a fresh PostgreSQL database, migrated by the code being measured (the last
commit, or the working tree with --source tree), N logs generated over 90 days, then bench/scenarios/ledger_reads.py
times every row there (the reads warm, the median of several runs). Nothing else runs: no main rows, no upstream.
The table puts the sizes side by side with the largest over the smallest, and says for each row whether it meets
issue 22's "Done when": a read within 2x of its time at the smallest size and under 500 ms, incremental
reconcile_spend under 60 s, pruning a day under 5 s, the write rate not dropping (kept to 90 % for noise).
Generation is timed at each size; a later size it would take longer than --max-generate-minutes to generate (at the
rate of the largest size so far) is skipped and said so. The JSON goes to bench/results/ledger-scale.json unless --out
says otherwise.
"""

import json
import os
import subprocess
from pathlib import Path

from bench import services
from bench.scenarios.kit import Kit
from bench.targets import ROOT, tollgate_database

NAME = "ledger-scale"
DEFAULT_LOGS = "200000,20000000"
DEFAULT_OUT = ROOT / "bench" / "results" / "ledger-scale.json"
WRITE_RATE_KEPT = 0.9
MS, PER_S, S = "ms", "entries/s", "s"
# Every row of the table, in its order (ledger_reads.py measures them): what is timed, and its unit.
ROWS = (
    ("/spend/logs one key, 90 days, first page (busiest key)", MS),
    ("/spend/logs one key, 90 days, first page (quietest key)", MS),
    ("/spend/logs one key, 90 days, summarized by day (busiest key)", MS),
    ("/global/spend/report group_by=team, 30 days", MS),
    ("/global/spend/report group_by=team, 90 days", MS),
    ("/global/spend/report group_by=api_key, 30 days", MS),
    ("/global/spend/report group_by=api_key, 90 days", MS),
    ("spend overview (admin page, 30 days by team)", MS),
    ("spend overview (admin page, 30 days by team, narrowed to a tag)", MS),
    ("reconcile_spend, first run", S),
    ("reconcile_spend, incremental", S),
    ("reconcile_spend --full", S),
    ("prune one day (prune_spend_logs)", S),
    ("write_batch of 1 entry (one round trip)", PER_S),
)
# A size's generation at the rate measured at the first, plus the reads, indexes and rollup it takes longer.
SCRIPT_TIMEOUT_S = 4 * 3600


def sizes(text: str) -> list[int]:
    """--logs: comma-separated counts, underscores allowed (200_000), smallest first."""
    counts = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise SystemExit(f"--logs: positive counts, comma-separated (got {text!r})")
    return counts


def run(args, workdir: Path, machine: dict) -> dict:
    """Every size of --logs measured; the result (also written to --out and printed as a table)."""
    kit = Kit(args=args, workdir=workdir, seconds=0.0, quick=args.quick)
    measured: dict[int, dict] = {}
    skipped: dict[int, str] = {}
    failures: list[dict] = []
    rate = None
    for logs in sizes(args.logs):
        if rate and logs / rate > args.max_generate_minutes * 60:
            skipped[logs] = (
                f"not run: generating it would take ~{logs / rate / 60:.0f} min at the {rate:,} logs/s measured "
                f"at {max(measured):,} (limit --max-generate-minutes {args.max_generate_minutes})"
            )
            print(f"\n== ledger-scale: {logs:,} logs {skipped[logs]}", flush=True)
            continue
        load_before = os.getloadavg()
        print(f"\n== ledger-scale: {logs:,} logs (load average {load_before[0]:.2f})", flush=True)
        try:
            with tollgate_database(args, workdir, f"ledger_scale_{logs}") as database:
                argv = (str(logs), str(args.ledger_runs))
                result = kit.tollgate_script(
                    database, "ledger_reads.py", *argv, timeout=SCRIPT_TIMEOUT_S, show_progress=True
                )
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"!!! ledger-scale at {logs:,} logs failed: {exc}", flush=True)
            failures.append({"logs": logs, "error": str(exc)[-3000:]})
            continue
        result["load_average_before"] = load_before
        measured[logs] = result
        rate = result["generation"]["logs_per_s"]  # the largest size so far: the closest to the next
        # Hours go into the largest size: what the smaller ones measured is kept if it never ends.
        write(_result(args, machine, measured, skipped, failures), args.out)
    result = _result(args, machine, measured, skipped, failures)
    print_table(result)
    return result


def _result(args, machine: dict, measured: dict, skipped: dict, failures: list) -> dict:
    return {
        "command": f"bench/run.py --scenarios {NAME} --logs {args.logs}",
        "machine": {**machine, "load_average_after": os.getloadavg()},
        "sizes": {str(logs): result for logs, result in measured.items()},
        "skipped": {str(logs): why for logs, why in skipped.items()},
        "table": table(measured),
        "failures": failures,
        "ok": not failures and all(not result["problems"] for result in measured.values()),
    }


def table(measured: dict[int, dict]) -> list[dict]:
    """One row per entry of ledger_reads.ROWS: its value at every size, largest over smallest, issue 22's verdict."""
    counts = sorted(measured)
    rows = []
    for name, unit in ROWS:
        values = {str(logs): measured[logs]["rows"][name]["value"] for logs in counts}
        first, last = (values[str(counts[0])], values[str(counts[-1])]) if counts else (None, None)
        ratio = round(last / first, 2) if len(counts) > 1 and first and last is not None else None
        rows.append({"read": name, "unit": unit, "by_logs": values, "ratio": ratio,
                     "meets_issue_22": _verdict(name, unit, last, ratio)})  # fmt: skip
    return rows


def _verdict(name: str, unit: str, last, ratio) -> str:
    if last is None or ratio is None:
        return ""
    if unit == MS:
        return _yes(ratio <= 2 and last < 500, "within 2x and under 500 ms")
    if unit == PER_S:
        return _yes(ratio >= WRITE_RATE_KEPT, f"not below {WRITE_RATE_KEPT:.0%} of the smallest size's")
    if unit == S and name.startswith("prune"):
        return _yes(last < 5, "under 5 s")
    if unit == S and name.endswith("incremental"):
        return _yes(last < 60, "under 60 s")
    return "(no target)"


def _yes(met: bool, target: str) -> str:
    return f"{'yes' if met else 'NO'} ({target})"


def _cell(value, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == MS:
        return f"{value:,.1f} ms"
    if unit == S:
        return f"{value:,.2f} s"
    return f"{value:,.0f}/s"


def print_table(result: dict) -> None:
    """The table as Markdown (the README's "Ledger at scale" takes it as printed)."""
    counts = list(result["sizes"])
    machine = result["machine"]
    print(f"\n{result['command']}")
    print(f"{machine['date']}, commit {machine['tollgate_commit']}, {machine['nproc']} CPUs ({machine['cpu_model']}), "
          f"load average before {machine['load_average'][0]:.2f}, after {machine['load_average_after'][0]:.2f}\n")  # fmt: skip
    header = ["read", *(f"{int(logs):,} logs" for logs in counts)]
    if len(counts) > 1:
        header += [f"{int(counts[-1]):,} / {int(counts[0]):,}", "issue 22"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in result["table"]:
        cells = [row["read"], *(_cell(row["by_logs"][logs], row["unit"]) for logs in counts)]
        if len(counts) > 1:
            cells += ["" if row["ratio"] is None else f"x{row['ratio']}", row["meets_issue_22"]]
        print("| " + " | ".join(cells) + " |")
    print()
    for logs, size in result["sizes"].items():
        generation = size["generation"]
        print(f"{int(logs):,} logs: generated in {generation['with_analyze_s']} s ({generation['logs_per_s']:,} logs/s, "
              f"VACUUM included), spend log {size['spend_log_bytes'] / 2**20:,.0f} MiB with its indexes, "
              f"load average {size['load_average_before'][0]:.2f} before, {size['load_average'][0]:.2f} at the end")  # fmt: skip
        for problem in size["problems"]:
            print(f"!!! {int(logs):,} logs: {problem}")
    for logs, why in result["skipped"].items():
        print(f"{int(logs):,} logs: {why}")
    for failure in result["failures"]:
        print(f"!!! {failure['logs']:,} logs failed: {failure['error'].strip().splitlines()[-1]}")


def write(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwritten to {out}")


def private_redis(args, workdir: Path) -> None:
    """The scripts' settings want a Redis: the bench's own, as the main rows use."""
    if args.redis_url is None:
        redis = services.PrivateRedis(workdir).start()
        args.redis_url, args.redis_pid = redis.url, redis.pid
