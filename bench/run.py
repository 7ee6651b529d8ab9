"""Tollgate's benchmark: one command, run by hand (never by the test suite).

    .venv/bin/python bench/run.py [--peer] [--quick] [--duration S] [--workers 1,2] [--out bench/results/latest.json]

In turn, each alone on the machine: the fake upstream called directly, the floor (a bare Django ASGI view that
forwards to the same upstream with the same HTTP client: the ceiling of our stack), Tollgate on PostgreSQL + Redis
with the full hot path (a virtual key with budget, rpm/tpm limits and aliases when /key/generate exists, pricing
with cache tokens, spend logging) and, with --peer, the LiteLLM proxy. wrk drives 1, 16 and 64 keep-alive
connections, non-streaming and streaming. Afterwards the spend ledger must hold exactly one log per request
Tollgate answered. Everything it starts it stops, on errors and Ctrl-C too; only 127.0.0.1 is contacted.
"""

import argparse
import contextlib
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load, report, services  # noqa: E402

PEERS = ROOT.parent / "shared" / "peers"
UPSTREAM = {"json": "http://127.0.0.1:9100/v1/chat/completions", "stream": "http://127.0.0.1:9101/v1/chat/completions"}
MASTER_KEY = "sk-bench-master-" + secrets.token_hex(12)
LITELLM_KEY = "sk-peer-6f1c2a9e4b7d8c0f3a5e1b2c4d6f8a0b"  # the peer's start.sh default
ALIASES = {"bench-alias": "bench-model", "bench-stream-alias": "bench-stream"}
MESSAGES = [{"role": "user", "content": "Hello! Say hello back, briefly."}]
WARMUP_CALLS = 20

TOLLGATE_CONFIG = """\
# Written by bench/run.py: the same deployments as ../shared/peers/litellm/config.yaml.
model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:9100/v1
      api_key: fake-key
  - model_name: bench-stream
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:9101/v1
      api_key: fake-key
general_settings:
  master_key: os.environ/TOLLGATE_MASTER_KEY
"""


@dataclass
class Target:
    """One thing under load: where to send each mode's requests, as whom, and what it costs to run."""

    name: str
    urls: dict[str, str]
    models: dict[str, str]
    headers: dict[str, str]
    service: services.Service | None = None
    database: services.BenchDatabase | None = None
    info: dict = field(default_factory=dict)
    expected_logs: int = 0  # 2xx answers from Tollgate, each of which must have its spend log

    def body(self, mode: str) -> bytes:
        import json

        payload = {"model": self.models[mode], "messages": MESSAGES}
        if mode == "stream":
            payload["stream"] = True
        return json.dumps(payload, separators=(",", ":")).encode()

    def call(self, mode: str, timeout: float = 120) -> httpx.Response:
        return httpx.post(self.urls[mode], content=self.body(mode), headers=self.headers, timeout=timeout)

    def spend_logs(self) -> int:
        return self.database.scalar("SELECT count(*) FROM spend_spendlog")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    upstream_started = False
    rows: list[dict] = []
    targets: list[Target] = []
    failures: list[dict] = []
    try:
        upstream_started = _ensure_upstream()
        for name, factory in _plan(args):
            print(f"\n== {name}", flush=True)
            try:
                with factory(args, workdir) as target:
                    targets.append(target)
                    rows.extend(_measure(target, args, workdir))
            except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
                # One target failing (a broken commit, a peer that will not start) does not void the others.
                print(f"!!! {name} failed: {exc}", flush=True)
                failures.append({"target": name, "error": str(exc)[-3000:]})
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything this run started", flush=True)
        return 130
    finally:
        services.stop_all()
        if upstream_started:
            _stop_upstream()
    result = report.build(args, rows, targets, failures, _machine(args), " ".join(["bench/run.py", *sys.argv[1:]]))
    report.print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.dumps(result))
    print(f"\nwritten to {args.out}")
    if result["ok"]:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"servers' logs kept in {workdir}")
    return 0 if result["ok"] else 1


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", action="store_true", help="also measure the LiteLLM proxy (installs it once)")
    parser.add_argument("--quick", action="store_true", help="3 s per row, 1 and 16 connections only")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load per row (default 10)")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds allowed for in-flight requests to finish")
    parser.add_argument("--connections", default=None, help="comma-separated (default 1,16,64)")
    parser.add_argument("--modes", default="json,stream", help="json (non-streaming), stream")
    parser.add_argument("--workers", default="1", help="Tollgate server processes; a list (1,2) measures each")
    parser.add_argument("--targets", default="upstream,floor,tollgate,litellm", help="subset to measure")
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
    parser.add_argument("--profile", action="store_true", help="py-spy the first Tollgate's 16-connection json row")
    parser.add_argument("--tollgate-env", action="append", default=[], metavar="NAME=VALUE", help="for experiments")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=13, help="flushed before each Tollgate server: the bench's own")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.connections = [int(c) for c in (args.connections or ("1,16" if args.quick else "1,16,64")).split(",")]
    args.modes = args.modes.split(",")
    args.workers = [int(w) for w in args.workers.split(",")]
    args.targets = args.targets.split(",")
    if not args.peer and "litellm" in args.targets:
        args.targets.remove("litellm")
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


def _plan(args):
    plan = []
    if "upstream" in args.targets:
        plan.append(("upstream (direct)", _upstream_target))
    if "floor" in args.targets:
        plan.append(("floor (bare Django view)", _floor))
    if "tollgate" in args.targets:
        for workers in args.workers:
            plan.append((f"tollgate ({workers} worker{'s' if workers > 1 else ''})", _tollgate_factory(workers)))
    if "litellm" in args.targets:
        plan.append(("litellm (peer)", _litellm))
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
    subprocess.run(["bash", str(PEERS / "upstream" / "start.sh")], check=True, timeout=600)
    return True


def _stop_upstream() -> None:
    pid_file = Path("/tmp/fake_upstream.pid")
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGQUIT)  # nginx: graceful shutdown


@contextlib.contextmanager
def _upstream_target(args, workdir):
    yield Target(
        "upstream",
        urls=dict(UPSTREAM),
        models={"json": "gpt-4o-mini", "stream": "gpt-4o-mini"},
        headers={"Authorization": "Bearer fake-key"},
    )


# -- the floor ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _floor(args, workdir):
    port = services.free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    argv = [sys.executable, "-m", "uvicorn", "bench.floor.asgi:application", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "httptools"]
    argv += ["--no-access-log", "--log-level", "warning", "--lifespan", "off"]
    base = f"http://127.0.0.1:{port}"
    service = services.Service(
        "floor", argv, env=env, cwd=ROOT, log_path=workdir / "floor.log", health_url=f"{base}/health/liveliness"
    ).start()
    try:
        target = Target(
            "floor",
            urls={"json": f"{base}/v1/chat/completions", "stream": f"{base}/stream/v1/chat/completions"},
            models={"json": "bench-model", "stream": "bench-stream"},
            headers={"Authorization": "Bearer fake-key"},
            service=service,
        )
        target.info["startup_s"] = service.wait_healthy(60)
        target.info["ready_s"] = _first_answer(target)
        yield target
    finally:
        service.stop()


# -- Tollgate ----------------------------------------------------------------------------------------------------


def _tollgate_factory(workers: int):
    @contextlib.contextmanager
    def factory(args, workdir):
        yield from _tollgate(args, workdir, workers)

    return factory


def _snapshot(args, workdir: Path) -> Path:
    """The code every Tollgate server of this run runs, copied once so that edits made while the benchmark runs
    change nothing: the last commit (default, reproducible: the JSON names it) or the working tree as it is."""
    source = workdir / "src"
    if source.exists():
        return source
    source.mkdir()
    if args.source != "tree":
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    else:
        _copy_working_tree(source)
    for patch in args.patch:
        # An experiment on the hot path, measured without touching anyone's files.
        subprocess.run(["git", "apply", str(patch.resolve())], cwd=source, check=True)
    return source


def _copy_working_tree(source: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        path = ROOT / relative
        if path.is_file():
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / relative)


def _tollgate(args, workdir, workers):
    name = "tollgate" if workers == 1 else f"tollgate-w{workers}"
    source = _snapshot(args, workdir)
    home = workdir / name
    home.mkdir()
    config = home / "config.yaml"
    config.write_text(TOLLGATE_CONFIG)
    database = services.BenchDatabase(args.database_url, f"w{workers}")
    redis_url = f"{args.redis_url}/{args.redis_db}"
    env = {
        **os.environ,
        "DATABASE_URL": database.url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-" + secrets.token_hex(24),
        "TOLLGATE_MASTER_KEY": MASTER_KEY,
        "TOLLGATE_VAR_DIR": str(home),
        "PYTHONUNBUFFERED": "1",
    }
    for item in args.tollgate_env:
        key, _, value = item.partition("=")
        env[key] = value
    for unset in ("DJANGO_SETTINGS_MODULE", "TOLLGATE_CONFIG"):
        env.pop(unset, None)
    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "manage.py", "serve", "--config", str(config), "--port", str(port)]
    argv += ["--workers", str(workers)]
    service = services.Service(
        name, argv, env=env, cwd=source, log_path=home / "server.log", health_url=f"{base}/health/liveliness"
    )
    try:
        database.create()
        services.flush_redis(redis_url)
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if migrated.returncode:
            raise RuntimeError(f"migrate failed:\n{migrated.stdout}\n{migrated.stderr}")
        service.start()
        target = Target(
            name,
            urls={"json": f"{base}/v1/chat/completions", "stream": f"{base}/v1/chat/completions"},
            models={"json": "bench-model", "stream": "bench-stream"},
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            service=service,
            database=database,
            info={"workers": workers, "env": args.tollgate_env},
        )
        target.info["startup_s"] = service.wait_healthy(120)
        target.info["ready_s"] = _first_answer(target)
        target.expected_logs += 1
        _use_virtual_key(target, base)
        yield target
    finally:
        service.stop()
        database.drop()
        with contextlib.suppress(Exception):
            services.flush_redis(redis_url)


def _use_virtual_key(target: Target, base: str) -> None:
    """Switch the target to a virtual key with a budget, limits and aliases, if this Tollgate can make one."""
    payload = {
        "key_alias": "bench",
        "models": sorted(set(ALIASES.values())),
        "aliases": ALIASES,
        "max_budget": 1_000_000,  # far above what a run spends (about $0.0004 a call)
        "rpm_limit": 1_000_000_000,
        "tpm_limit": 1_000_000_000_000,
        "metadata": {"purpose": "bench/run.py"},
    }
    master = {"Authorization": f"Bearer {MASTER_KEY}"}
    try:
        response = httpx.post(f"{base}/key/generate", json=payload, headers=master, timeout=30)
    except httpx.HTTPError as exc:
        target.info["auth"] = f"master key (/key/generate failed: {type(exc).__name__})"
        return
    if response.status_code == 404:
        target.info["auth"] = "master key (/key/generate: 404, virtual keys not built yet)"
        return
    if response.status_code >= 300 or "key" not in response.json():
        target.info["auth"] = f"master key (/key/generate answered {response.status_code}: {response.text[:200]})"
        return
    virtual = response.json()["key"]
    trial = Target(
        target.name,
        target.urls,
        {"json": "bench-alias", "stream": "bench-stream-alias"},
        {"Authorization": f"Bearer {virtual}"},
    )
    deadline = time.monotonic() + 5  # a new key may take a sync interval to reach the server's cache
    while True:
        answer = trial.call("json")
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if answer.status_code != 200:
        target.info["auth"] = f"master key (the virtual key was refused: {answer.status_code} {answer.text[:200]})"
        return
    target.expected_logs += 1
    target.models, target.headers = trial.models, trial.headers
    target.info["auth"] = "virtual key (max_budget, rpm/tpm limits, model aliases)"


# -- the LiteLLM peer --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _litellm(args, workdir):
    port = services.free_port(preferred=4000)
    installed = Path(os.environ.get("PEER_VENV", "/tmp/litellm-peer"), "bin", "litellm").exists()
    env = {**os.environ, "PORT": str(port), "LITELLM_MASTER_KEY": LITELLM_KEY, "WORKERS": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DATABASE_URL", None)  # the peer runs as measured in the issue: master key only, no database
    base = f"http://127.0.0.1:{port}"
    service = services.Service(
        "litellm",
        ["bash", str(PEERS / "litellm" / "start.sh")],
        env=env,
        cwd=workdir,
        log_path=workdir / "litellm.log",
        health_url=f"{base}/health/liveliness",
    ).start()
    if not installed:
        print("installing the LiteLLM peer into /tmp/litellm-peer (first run: minutes)", flush=True)
    try:
        target = Target(
            "litellm",
            urls={"json": f"{base}/v1/chat/completions", "stream": f"{base}/v1/chat/completions"},
            models={"json": "bench-model", "stream": "bench-stream"},
            headers={"Authorization": f"Bearer {LITELLM_KEY}"},
            service=service,
            info={"installed_this_run": not installed},
        )
        startup = service.wait_healthy(180 if installed else 1800)
        target.info["startup_s"] = startup if installed else None
        target.info["ready_s"] = _first_answer(target) if installed else None
        yield target
    finally:
        service.stop()


# -- measuring ---------------------------------------------------------------------------------------------------


def _first_answer(target: Target) -> float:
    """Seconds from the server's start to its first 200 on a real chat completion."""
    deadline = time.monotonic() + 60
    while True:
        response = target.call("json")
        if response.status_code == 200:
            return time.perf_counter() - target.service.started_at
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target.name} never answered a completion: {response.status_code} {response.text}")
        time.sleep(0.05)


def _warm_up(target: Target, args) -> None:
    for mode in args.modes:
        for _ in range(WARMUP_CALLS):
            response = target.call(mode)
            if response.status_code != 200:
                raise RuntimeError(f"{target.name} {mode} warm-up: {response.status_code} {response.text[:300]}")
            target.expected_logs += 1


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
            profiling = args.profile and target.database and mode == "json" and connections == 16
            profiled_once = target.info.get("profile")
            with contextlib.ExitStack() as stack:
                sampler = stack.enter_context(services.PeakSampler(target.service.pid)) if target.service else None
                spy = _start_profiler(target, args, workdir) if profiling and not profiled_once else None
                logs_before = target.spend_logs() if target.database else None
                load_average = os.getloadavg()[0]
                cpu_before = services.cpu_seconds(target.service.pid) if target.service else 0.0
                machine_before = services.machine_cpu()
                result = _load(target, mode, connections, args, workdir)
                machine_after = services.machine_cpu()
                cpu_used = services.cpu_seconds(target.service.pid) - cpu_before if target.service else 0.0
                if spy:
                    _finish_profiler(target, spy)
            if sampler:
                peak = max(peak, sampler.peak)
            row = _row(target, mode, connections, result, args)
            row["profiled"] = bool(spy)
            # CPU per request is what other load on the machine disturbs least; req/s moves with it.
            row["server_cpu_ms_per_req"] = (
                round(1000 * cpu_used / result.ok, 3) if target.service and result.ok else None
            )
            row["server_cpu_pct"] = round(100 * cpu_used / result.window_s, 1) if target.service else None
            busy = machine_after[0] - machine_before[0]
            row["machine_busy_pct"] = round(100 * busy / max(machine_after[1] - machine_before[1], 1e-9), 1)
            row["load_average_1m"] = round(load_average, 2)
            if target.database:
                target.expected_logs += result.ok
                row["spend_logs"] = _settled_count(target, logs_before + result.ok) - logs_before
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
        target.info["ledger"] = _ledger_check(target)
    return rows


def _load(target: Target, mode: str, connections: int, args, workdir: Path) -> load.LoadResult:
    headers = dict(target.headers)
    body = target.body(mode)
    if args.loadgen == "wrk":
        return load.run_wrk(target.urls[mode], body, headers, connections, args.duration, args.drain, workdir)
    return load.run_python(target.urls[mode], body, headers, connections, args.duration, args.drain)


def _row(target: Target, mode: str, connections: int, result: load.LoadResult, args) -> dict:
    reasons = []
    if result.non_2xx:
        reasons.append(f"{result.non_2xx} non-2xx answers")
    if result.socket_errors or result.timeouts:
        reasons.append(f"{result.socket_errors} socket errors, {result.timeouts} timeouts")
    if result.abandoned:
        reasons.append(f"{result.abandoned} requests unanswered after the {args.drain:.0f} s drain")
    if not result.ok:
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


def _settled_count(target: Target, expected: int) -> int:
    """The ledger's count once it stops moving (logs commit before responses end, so this is at once)."""
    deadline = time.monotonic() + 5
    count = target.spend_logs()
    while count != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        count = target.spend_logs()
    return count


def _ledger_check(target: Target) -> dict:
    logs = _settled_count(target, target.expected_logs)
    by_status = dict(target.database.rows("SELECT status, count(*) FROM spend_spendlog GROUP BY status"))
    ok = logs == target.expected_logs
    line = f"ledger: {logs} logs for {target.expected_logs} requests: " + ("OK" if ok else "MISMATCH")
    if not ok:
        line = f"!!! {line} !!! ({logs - target.expected_logs:+d}) a benchmark that loses spend is not a result"
    print(f"  {line}  (by status: {by_status})", flush=True)
    return {"logs": logs, "requests": target.expected_logs, "ok": ok, "by_status": by_status, "line": line}


# -- profiling ---------------------------------------------------------------------------------------------------


def _start_profiler(target: Target, args, workdir: Path):
    pyspy = Path(sys.executable).with_name("py-spy")
    if not pyspy.exists():
        print("  ! --profile needs py-spy in the venv (.venv/bin/pip install py-spy)")
        return None
    out = args.out.parent / f"profile-{target.name}-json-c16.txt"
    argv = [str(pyspy), "record", "--format", "raw", "-o", str(out), "-d", str(int(args.duration))]
    argv += ["--pid", str(target.service.pid), "--rate", "200"]
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
        "load_average": os.getloadavg(),
        "git_head": git("rev-parse", "--short", "HEAD"),
        "tollgate_commit": git("rev-parse", "--short", "HEAD") if args.source != "tree" else "working tree",
        "git_uncommitted_files": len(git("status", "--short").splitlines()),
    }


if __name__ == "__main__":
    sys.exit(main())
