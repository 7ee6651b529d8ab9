"""Tollgate's benchmark: one command, run by hand (never by the test suite).

    .venv/bin/python bench/run.py [--peers] [--quick] [--duration S] [--workers 1,2] [--scenarios all|none|a,b]
                                  [--no-main] [--out bench/results/latest.json]
    .venv/bin/python -m bench.run --scenario ledger-scale --logs 200000,20000000   (alone: the ledger at scale)

In turn, each alone on the machine: the fake upstream called directly, the floor (Tollgate's own server, handler,
process tuning and upstream client forwarding to the same upstream with none of Tollgate's work: the ceiling of
our stack, bench/floor), Tollgate on PostgreSQL + Redis with the full hot path (a virtual key with budget, rpm/tpm
limits and aliases, pricing with cache tokens, spend logging) and, with --peers, Portkey's gateway (as npm
installs it, and with the node-server release its streams work on) and the LiteLLM proxy (bench/peers.py). wrk
drives 1, 16 and 64 keep-alive connections, non-streaming and streaming. CPU per request counts every process a
call makes work for: the server's, its PostgreSQL backends and the bench's own redis-server. Afterwards the spend
ledger must hold exactly one log per request Tollgate answered. Then the scenarios of bench/scenarios (prompt sizes, streams, head-of-line, a flood of wrong
keys, failover, memory, scale, the ledger's writer, 2 workers over 1), on servers of their own. Everything it
starts it stops, on errors and Ctrl-C too; only 127.0.0.1 is contacted.
"""

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load, peers, report, scenarios, services, targets  # noqa: E402
from bench.scenarios import ledger_scale  # noqa: E402
from bench.targets import Target  # noqa: E402

WARMUP_CALLS = 20


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    if args.scenarios == [ledger_scale.NAME]:
        return _ledger_scale(args, workdir)
    upstream_started = False
    rows: list[dict] = []
    measured: list[Target] = []
    failures: list[dict] = []
    scenario_result = None
    try:
        upstream_started = _ensure_upstream()
        if args.redis_url is None:
            redis = services.PrivateRedis(workdir).start()  # stopped with every other service on the way out
            args.redis_url, args.redis_pid = redis.url, redis.pid
        for name, factory in _plan(args) if args.main else ():
            print(f"\n== {name}", flush=True)
            try:
                with factory(args, workdir) as target:
                    measured.append(target)
                    rows.extend(_measure(target, args, workdir))
            except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
                # One target failing (a broken commit, a peer that will not start) does not void the others.
                print(f"!!! {name} failed: {exc}", flush=True)
                failures.append({"target": name, "error": str(exc)[-3000:]})
        if args.scenarios:
            scenario_result = scenarios.run(args, workdir, rows)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything this run started", flush=True)
        return 130
    finally:
        services.stop_all()
        if upstream_started:
            _stop_upstream()
    command = " ".join(["bench/run.py", *sys.argv[1:]])
    result = report.build(args, rows, measured, failures, _machine(args), command, scenario_result)
    report.print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.dumps(result))
    print(f"\nwritten to {args.out}")
    if result["ok"]:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"servers' logs kept in {workdir}")
    return 0 if result["ok"] else 1


def _ledger_scale(args, workdir: Path) -> int:
    """The ledger-scale scenario, alone: no main rows, no upstream; its own table and JSON."""
    try:
        ledger_scale.private_redis(args, workdir)
        result = ledger_scale.run(args, workdir, _machine(args))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything this run started", flush=True)
        return 130
    finally:
        services.stop_all()
    ledger_scale.write(result, args.out)
    if result["ok"]:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result["ok"] else 1


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--peers",
        "--peer",
        dest="peers",
        action="store_true",
        help="also measure Portkey's gateway and the LiteLLM proxy (installs each once)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 s per row, 1 and 16 connections only; scenarios with fewer calls"
    )
    parser.add_argument(
        "--scenarios",
        default="all",
        help=f"after the main rows: all (default), none, or some of {','.join(scenarios.NAMES)}",
    )
    parser.add_argument(
        "--main", action=argparse.BooleanOptionalAction, default=True, help="the main rows (--no-main: scenarios only)"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds of load per row (default 10)")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds allowed for in-flight requests to finish")
    parser.add_argument("--connections", default=None, help="comma-separated (default 1,16,64)")
    parser.add_argument("--modes", default="json,stream", help="json (non-streaming), stream")
    parser.add_argument("--workers", default="1", help="Tollgate server processes; a list (1,2) measures each")
    parser.add_argument("--targets", default=",".join(TARGETS), help="subset to measure")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--source",
        choices=("head", "tree"),
        default="head",
        help="Tollgate's code: the last commit or the working tree",
    )
    parser.add_argument(
        "--patch", type=Path, action="append", default=[], help="apply to Tollgate's code (experiments)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the first Tollgate's json row (--profile-at)")
    parser.add_argument("--profile-at", type=int, default=16, metavar="CONNECTIONS", help="the row --profile samples")
    parser.add_argument("--profile-idle", action="store_true", help="sample idle threads too (where latency waits)")
    parser.add_argument("--tollgate-env", action="append", default=[], metavar="NAME=VALUE", help="for experiments")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument(
        "--redis-url", default=None, help="a Redis to use (its CPU is then not counted); default: a private one"
    )
    parser.add_argument("--redis-db", type=int, default=13, help="flushed before each Tollgate server: the bench's own")
    parser.add_argument(
        "--out", type=Path, default=None, help="default bench/results/latest.json (ledger-scale: ledger-scale.json)"
    )
    parser.add_argument(
        "--logs", default=ledger_scale.DEFAULT_LOGS, help="ledger-scale: the sizes, comma-separated logs"
    )
    parser.add_argument("--ledger-runs", type=int, default=5, help="ledger-scale: timed runs of each read (median)")
    parser.add_argument(
        "--max-generate-minutes",
        type=float,
        default=25.0,
        help="ledger-scale: skip a size whose generation would take longer, at the first size's rate",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.connections = [int(c) for c in (args.connections or ("1,16" if args.quick else "1,16,64")).split(",")]
    args.modes = args.modes.split(",")
    args.workers = [int(w) for w in args.workers.split(",")]
    args.targets = [name for name in args.targets.split(",") if args.peers or name not in PEERS]
    args.redis_pid = None
    args.scenarios = scenarios.parse(args.scenarios)
    alone = args.scenarios == [ledger_scale.NAME]
    args.out = args.out or (ledger_scale.DEFAULT_OUT if alone else ROOT / "bench" / "results" / "latest.json")
    if alone:
        return args
    if "workers" in args.scenarios and args.main and "tollgate" in args.targets and 2 not in args.workers:
        args.workers.append(2)  # the workers scenario compares the main rows of 1 and 2 workers
    if args.loadgen == "auto":
        args.loadgen = "wrk" if load.have_wrk() or _install_wrk() else "python"
    return args


def _install_wrk() -> bool:
    print("wrk is missing: installing Debian's package", flush=True)
    try:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"! could not install wrk ({exc}): using the Python load generator")
        return False
    return load.have_wrk()


PEERS = {
    "portkey": peers.portkey_factory("portkey", peers.PORTKEY_DIR),
    f"portkey-hono{peers.PORTKEY_WORKING_HONO}": peers.portkey_factory(
        f"portkey-hono{peers.PORTKEY_WORKING_HONO}",
        Path(f"/tmp/portkey-peer-hono{peers.PORTKEY_WORKING_HONO}"),
        peers.PORTKEY_WORKING_HONO,
    ),
    "litellm": peers.litellm,
}
TARGETS = ("upstream", "floor", "tollgate", *PEERS)


def _plan(args):
    plan = []
    if "upstream" in args.targets:
        plan.append(("upstream (direct)", targets.upstream_target))
    if "floor" in args.targets:
        plan.append(("floor (Tollgate's server and upstream client, no accounting)", targets.floor))
    if "tollgate" in args.targets:
        for workers in args.workers:
            plan.append((f"tollgate ({workers} worker{'s' if workers > 1 else ''})", targets.tollgate_factory(workers)))
    plan.extend((f"{name} (peer)", factory) for name, factory in PEERS.items() if name in args.targets)
    return plan


# -- the fake upstream -------------------------------------------------------------------------------------------


def _upstream_up() -> bool:
    try:
        return httpx.get("http://127.0.0.1:9100/v1/models", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _ensure_upstream() -> bool:
    """Start the shared fake upstream unless it runs already; True if this run started it (and so stops it)."""
    if _upstream_up():
        print("fake upstream already up on 127.0.0.1:9100-9102")
        return False
    subprocess.run(["bash", str(targets.PEERS / "upstream" / "start.sh")], check=True, timeout=600)
    return True


def _stop_upstream() -> None:
    pid_file = Path("/tmp/fake_upstream.pid")
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGQUIT)  # nginx: graceful shutdown


# -- measuring ---------------------------------------------------------------------------------------------------


def _warm_up(target: Target, args) -> None:
    """WARMUP_CALLS of each mode. A mode that fails is noted and still measured, its failures counted in its
    rows (Portkey's streams on Node 20); a target that fails in every mode is not started right."""
    failed = {}
    for mode in args.modes:
        for _ in range(WARMUP_CALLS):
            response = target.call(mode)
            if response.status_code != 200:
                failed[mode] = f"{response.status_code} {response.text[:300]}"
                print(f"  ! {mode} warm-up: {failed[mode]}", flush=True)
                break
            target.expected_logs += 1
    if len(failed) == len(args.modes):
        raise RuntimeError(f"{target.name} failed every warm-up call: {failed}")
    if failed:
        target.info["warm_up_failed"] = failed


def _measure(target: Target, args, workdir: Path) -> list[dict]:
    _warm_up(target, args)
    if target.service:
        time.sleep(1)
        target.info["pid"] = target.service.pid
        target.info["rss_idle_mb"] = round(services.rss_mb(target.service.pid), 1)
        target.info["processes"] = len(services.process_tree(target.service.pid))
    rows, peak = [], 0.0
    for mode in args.modes:
        for connections in args.connections:
            profiling = args.profile and target.database and mode == "json" and connections == args.profile_at
            profiled_once = target.info.get("profile")
            with contextlib.ExitStack() as stack:
                sampler = stack.enter_context(services.PeakSampler(target.service.pid)) if target.service else None
                spy = _start_profiler(target, args, workdir) if profiling and not profiled_once else None
                logs_before = target.spend_logs() if target.database else None
                load_average = os.getloadavg()[0]
                meter = target.cpu_meter().start() if target.service else None
                machine_before = services.machine_busy_seconds()
                result = _load(target, mode, connections, args, workdir)
                machine_after = services.machine_busy_seconds()
                cpu_used = meter.stop() if meter else {}
                if spy:
                    _finish_profiler(target, spy)
            if sampler:
                peak = max(peak, sampler.peak)
            row = _row(target, mode, connections, result, args)
            row["profiled"] = bool(spy)
            _cpu_columns(row, cpu_used, result)
            # Over the load's window, as the server's own share: wrk runs on through the drain, when little is left
            # to do, and dividing by that whole time made the machine look half as busy as the server alone.
            capacity = result.window_s * (os.cpu_count() or 1)
            row["machine_busy_pct"] = round(100 * (machine_after - machine_before) / capacity, 1)
            row["load_average_1m"] = round(load_average, 2)
            if target.database:
                target.expected_logs += result.ok
                row["spend_logs"] = targets.settled_count(target, logs_before + result.ok) - logs_before
                if row["spend_logs"] != result.ok:
                    row["valid"] = False
                    row["invalid_because"].append(f"{row['spend_logs']} spend logs for {result.ok} answers")
            rows.append(row)
            _print_row(row)
            time.sleep(0.5)
    if target.service:
        target.info["rss_peak_mb"] = round(max(peak, target.info.get("rss_idle_mb", 0)), 1)
        target.info["rss_hwm_sum_mb"] = round(services.hwm_mb(target.service.pid), 1)
    if target.database:
        target.info["ledger"] = targets.ledger_check(target)
    return rows


def _cpu_columns(row: dict, used: dict[str, float], result: load.LoadResult) -> None:
    """CPU per answered request, whole (the server, its PostgreSQL backends, Redis) and by part. CPU per request
    is what other load on the machine disturbs least; req/s moves with it."""
    per_request = {part: round(1000 * seconds / result.ok, 3) if result.ok else None for part, seconds in used.items()}
    for part in ("server", "postgres", "redis"):
        row[f"{part}_cpu_ms_per_req"] = per_request.get(part)
    row["cpu_ms_per_req"] = round(sum(per_request.values()), 3) if used and result.ok else None
    row["cpu_parts"] = sorted(used)
    row["server_cpu_pct"] = round(100 * used["server"] / result.window_s, 1) if used else None


def _load(target: Target, mode: str, connections: int, args, workdir: Path) -> load.LoadResult:
    headers = target.headers_for(mode)
    body = target.body(mode)
    if args.loadgen == "wrk":
        run = load.start_wrk(target.urls[mode], body, headers, connections, args.duration, args.drain, workdir)
        return run.result()
    return load.run_python(target.urls[mode], body, headers, connections, args.duration, args.drain)


def _row(target: Target, mode: str, connections: int, result: load.LoadResult, args) -> dict:
    reasons = result.problems()
    if result.completed and not result.ok:
        reasons.append("no successful request")
    return {
        "target": target.name,
        "mode": mode,
        "connections": connections,
        "rps": round(result.rps, 1),
        "p50_ms": round(result.p50_ms, 3),
        "p90_ms": round(result.p90_ms, 3),
        "p99_ms": round(result.p99_ms, 3),
        "max_ms": round(result.max_ms, 3),
        "requests": result.completed,
        "ok": result.ok,
        "non_2xx": result.non_2xx,
        "statuses": result.statuses,
        "socket_errors": result.socket_errors + result.timeouts,
        "unanswered": result.abandoned,
        "window_s": result.window_s,
        "loadgen": result.tool,
        "valid": not reasons,
        "invalid_because": reasons,
    }


def _print_row(row: dict) -> None:
    flag = "" if row["valid"] else "  INVALID: " + "; ".join(row["invalid_because"])
    print(
        f"  {row['mode']:6} c={row['connections']:<3} {row['rps']:>9.1f} req/s  p50 {row['p50_ms']:8.2f} ms"
        f"  p99 {row['p99_ms']:8.2f} ms  non-2xx {row['non_2xx']}{flag}",
        flush=True,
    )


# -- profiling ---------------------------------------------------------------------------------------------------


def _start_profiler(target: Target, args, workdir: Path):
    pyspy = Path(sys.executable).with_name("py-spy")
    if not pyspy.exists():
        print("  ! --profile needs py-spy in the venv (.venv/bin/pip install py-spy)")
        return None
    out = args.out.parent / f"profile-{target.name}-json-c{args.profile_at}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(pyspy), "record", "--format", "raw", "-o", str(out), "-d", str(int(args.duration))]
    argv += ["--pid", str(target.service.pid), "--rate", "200"]
    if args.profile_idle:
        argv.append("--idle")
    if target.info.get("workers", 1) > 1:
        argv.append("--subprocesses")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, out


def _finish_profiler(target: Target, spy) -> None:
    process, out = spy
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    if not out.exists():
        target.info["profile"] = f"py-spy failed: {output[-500:]}"
        return
    from bench import profile_top

    summary = profile_top.summarize(out, top=15)
    target.info["profile"] = {"file": str(out), **summary}
    profile_top.print_summary(summary)


# -- the machine -------------------------------------------------------------------------------------------------


def _machine(args) -> dict:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": load.wrk_version(),
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        if shutil.which("node")
        else "",
        "load_average": os.getloadavg(),
        "git_head": git("rev-parse", "--short", "HEAD"),
        "tollgate_commit": git("rev-parse", "--short", "HEAD") if args.source != "tree" else "working tree",
        "git_uncommitted_files": len(git("status", "--short").splitlines()),
    }


if __name__ == "__main__":
    sys.exit(main())
