"""What a benchmark run puts under load, and how each is started and always stopped: the fake upstream called
directly, the floor and Tollgate (its code snapshot, database, server process and virtual key). The peers
(LiteLLM, Portkey) are in bench/peers.py."""

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from bench import services

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
UPSTREAM = {"json": "http://127.0.0.1:9100/v1/chat/completions", "stream": "http://127.0.0.1:9101/v1/chat/completions"}
MASTER_KEY = "sk-bench-master-" + secrets.token_hex(12)
# One for the whole run: servers that share a database must decrypt the provider keys the first one stored.
SECRET_KEY = "bench-" + secrets.token_hex(24)
ALIASES = {"bench-alias": "bench-model", "bench-stream-alias": "bench-stream"}
MESSAGES = [{"role": "user", "content": "Hello! Say hello back, briefly."}]


def deployment(group: str, api_base: str, **params) -> dict:
    """One model_list entry, in LiteLLM's shape (Tollgate imports the same)."""
    return {
        "model_name": group,
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": api_base, "api_key": "fake-key", **params},
    }


# The same deployments as ../shared/peers/litellm/config.yaml.
DEPLOYMENTS = [
    deployment("bench-model", "http://127.0.0.1:9100/v1"),
    deployment("bench-stream", "http://127.0.0.1:9101/v1"),
]


def tollgate_config(deployments: list[dict] = DEPLOYMENTS, router_settings: dict | None = None) -> str:
    document = {"model_list": deployments, "general_settings": {"master_key": "os.environ/TOLLGATE_MASTER_KEY"}}
    if router_settings:
        document["router_settings"] = router_settings
    return "# Written by bench/run.py.\n" + yaml.safe_dump(document, sort_keys=False)


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
    base: str = ""
    mode_headers: dict[str, dict[str, str]] = field(default_factory=dict)  # added to `headers` for one mode
    redis_pid: int | None = None  # the bench's own redis-server, when this target uses it

    def headers_for(self, mode: str) -> dict[str, str]:
        return {**self.headers, **self.mode_headers.get(mode, {})}

    def body(self, mode: str, model: str | None = None, messages: list | None = None) -> bytes:
        payload = {"model": model or self.models[mode], "messages": messages or MESSAGES}
        if mode == "stream":
            payload["stream"] = True
        return json.dumps(payload, separators=(",", ":")).encode()

    def call(self, mode: str, timeout: float = 120, model: str | None = None) -> httpx.Response:
        headers = self.headers_for(mode)
        return httpx.post(self.urls[mode], content=self.body(mode, model), headers=headers, timeout=timeout)

    def spend_logs(self) -> int:
        return self.database.scalar("SELECT count(*) FROM spend_spendlog")

    def cpu_meter(self) -> services.CpuMeter:
        """Every process a call to this target makes work for: its server's, its database's backends, Redis."""
        parts = {"server": lambda: services.process_tree(self.service.pid)}
        if self.database is not None:
            parts["postgres"] = self.database.backend_pids
        if self.redis_pid is not None:
            parts["redis"] = lambda: [self.redis_pid]
        return services.CpuMeter(parts)


def chat_target(name: str, base: str, headers: dict[str, str], **fields) -> Target:
    """A server answering both modes on its /v1/chat/completions (the stream from the bench-stream model)."""
    fields.setdefault("models", {"json": "bench-model", "stream": "bench-stream"})
    urls = {"json": f"{base}/v1/chat/completions", "stream": f"{base}/v1/chat/completions"}
    return Target(name, urls=urls, headers=headers, base=base, **fields)


def first_answer(target: Target) -> float:
    """Seconds from the server's start to its first 200 on a real chat completion."""
    deadline = time.monotonic() + 60
    while True:
        response = target.call("json")
        if response.status_code == 200:
            return time.perf_counter() - target.service.started_at
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target.name} never answered a completion: {response.status_code} {response.text}")
        time.sleep(0.05)


def settled_count(target: Target, expected: int) -> int:
    """The ledger's count once it stops moving (logs commit before responses end, so this is at once)."""
    deadline = time.monotonic() + 5
    count = target.spend_logs()
    while count != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        count = target.spend_logs()
    return count


def ledger_check(target: Target) -> dict:
    """Exactly one spend log for every request this server answered (servers sharing a database count their own)."""
    before = target.info.get("logs_at_start", 0)
    logs = settled_count(target, before + target.expected_logs) - before
    by_status = dict(target.database.rows("SELECT status, count(*) FROM spend_spendlog GROUP BY status"))
    ok = logs == target.expected_logs
    line = f"ledger: {logs} logs for {target.expected_logs} requests: " + ("OK" if ok else "MISMATCH")
    if not ok:
        line = f"!!! {line} !!! ({logs - target.expected_logs:+d}) a benchmark that loses spend is not a result"
    print(f"  {line}  (by status: {by_status})", flush=True)
    return {"logs": logs, "requests": target.expected_logs, "ok": ok, "by_status": by_status, "line": line}


# -- the fake upstream -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def upstream_target(args, workdir):
    yield Target(
        "upstream",
        urls=dict(UPSTREAM),
        models={"json": "gpt-4o-mini", "stream": "gpt-4o-mini"},
        headers={"Authorization": "Bearer fake-key"},
    )


# -- the floor ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def floor(args, workdir, stream_upstream: str | None = None):
    """The floor (bench/floor): Tollgate's serving stack and upstream client with none of its work, run from the
    same code snapshot as Tollgate; streaming from `stream_upstream` when given (else the shared upstream's :9101)."""
    port = services.free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if stream_upstream:
        env["FLOOR_STREAM_UPSTREAM"] = stream_upstream
    argv = [sys.executable, "-m", "bench.floor.serve", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    service = services.Service(
        "floor",
        argv,
        env=env,
        cwd=snapshot(args, workdir),
        log_path=workdir / "floor.log",
        health_url=f"{base}/health/liveliness",
    ).start()
    try:
        target = Target(
            "floor",
            urls={"json": f"{base}/v1/chat/completions", "stream": f"{base}/stream/v1/chat/completions"},
            models={"json": "bench-model", "stream": "bench-stream"},
            headers={"Authorization": "Bearer fake-key"},
            service=service,
            base=base,
        )
        target.info["startup_s"] = service.wait_healthy(60)
        target.info["ready_s"] = first_answer(target)
        target.info["tuning"] = httpx.get(f"{base}/floor/tuning", timeout=5).json()
        yield target
    finally:
        service.stop()


# -- Tollgate ----------------------------------------------------------------------------------------------------


def snapshot(args, workdir: Path) -> Path:
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


def redis_url(args) -> str:
    return f"{args.redis_url}/{args.redis_db}"


def tollgate_env(args, database: services.BenchDatabase, home: Path, extra: dict | None = None) -> dict:
    """The environment of a Tollgate process of this run: its database, the bench's Redis db, the master key."""
    env = {
        **os.environ,
        "DATABASE_URL": database.url,
        "REDIS_URL": redis_url(args),
        "SECRET_KEY": SECRET_KEY,
        "TOLLGATE_MASTER_KEY": MASTER_KEY,
        "TOLLGATE_VAR_DIR": str(home),
        "PYTHONUNBUFFERED": "1",
    }
    for item in args.tollgate_env:
        key, _, value = item.partition("=")
        env[key] = value
    env.update(extra or {})
    for unset in ("DJANGO_SETTINGS_MODULE", "TOLLGATE_CONFIG"):
        env.pop(unset, None)
    return env


@contextlib.contextmanager
def tollgate_database(args, workdir: Path, label: str) -> Iterator[services.BenchDatabase]:
    """A fresh, migrated PostgreSQL database for Tollgate servers of this run, dropped afterwards."""
    source = snapshot(args, workdir)
    database = services.BenchDatabase(args.database_url, label)
    home = workdir / f"db-{label}"
    home.mkdir(exist_ok=True)
    try:
        database.create()
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=source,
            env=tollgate_env(args, database, home),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if migrated.returncode:
            raise RuntimeError(f"migrate failed:\n{migrated.stdout}\n{migrated.stderr}")
        yield database
    finally:
        database.drop()


@contextlib.contextmanager
def tollgate_server(
    args,
    workdir: Path,
    name: str,
    database: services.BenchDatabase,
    config_text: str,
    *,
    workers: int = 1,
    env: dict | None = None,
) -> Iterator[Target]:
    """A Tollgate server on `database` serving `config_text`, answering as the master key; Redis flushed first."""
    source = snapshot(args, workdir)
    home = workdir / name
    home.mkdir(exist_ok=True)
    config = home / "config.yaml"
    config.write_text(config_text)
    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "manage.py", "serve", "--config", str(config), "--port", str(port)]
    argv += ["--workers", str(workers)]
    service = services.Service(
        name,
        argv,
        env=tollgate_env(args, database, home, env),
        cwd=source,
        log_path=home / "server.log",
        health_url=f"{base}/health/liveliness",
    )
    try:
        services.flush_redis(redis_url(args))
        logs_at_start = database.scalar("SELECT count(*) FROM spend_spendlog")
        service.start()
        target = chat_target(
            name,
            base,
            {"Authorization": f"Bearer {MASTER_KEY}"},
            service=service,
            database=database,
            info={"workers": workers, "env": args.tollgate_env + [f"{k}={v}" for k, v in (env or {}).items()]},
            redis_pid=getattr(args, "redis_pid", None),
        )
        target.info["logs_at_start"] = logs_at_start
        target.info["startup_s"] = service.wait_healthy(120)
        target.info["ready_s"] = first_answer(target)
        target.expected_logs += 1
        yield target
    finally:
        service.stop()
        with contextlib.suppress(Exception):
            services.flush_redis(redis_url(args))


def tollgate_factory(workers: int):
    @contextlib.contextmanager
    def factory(args, workdir):
        name = "tollgate" if workers == 1 else f"tollgate-w{workers}"
        with (
            tollgate_database(args, workdir, f"w{workers}") as database,
            tollgate_server(args, workdir, name, database, tollgate_config(), workers=workers) as target,
        ):
            use_virtual_key(target, models=sorted(set(ALIASES.values())), aliases=ALIASES)
            yield target

    return factory


def use_virtual_key(target: Target, models: list[str], aliases: dict[str, str] | None = None) -> str:
    """Switch the target to a virtual key with a budget, limits and aliases: the full hot path, or no result."""
    payload = {
        "key_alias": "bench",
        "models": models,
        "aliases": aliases or {},
        "max_budget": 1_000_000,  # far above what a run spends (about $0.0004 a call)
        "rpm_limit": 1_000_000_000,
        "tpm_limit": 1_000_000_000_000,
        "metadata": {"purpose": "bench/run.py"},
    }
    master = {"Authorization": f"Bearer {MASTER_KEY}"}
    response = httpx.post(f"{target.base}/key/generate", json=payload, headers=master, timeout=30)
    if response.status_code >= 300 or "key" not in response.json():
        raise RuntimeError(f"/key/generate answered {response.status_code}: {response.text[:300]}")
    virtual = response.json()["key"]
    models_by_mode = {
        mode: next((a for a, g in (aliases or {}).items() if g == m), m) for mode, m in target.models.items()
    }
    trial = Target(target.name, target.urls, models_by_mode, {"Authorization": f"Bearer {virtual}"})
    deadline = time.monotonic() + 5  # a new key may take a sync interval to reach the server's cache
    while True:
        answer = trial.call("json")
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if answer.status_code != 200:
        raise RuntimeError(f"the virtual key was refused: {answer.status_code} {answer.text[:300]}")
    target.expected_logs += 1
    target.models, target.headers = trial.models, trial.headers
    target.info["auth"] = "virtual key (max_budget, rpm/tpm limits" + (", model aliases)" if aliases else ")")
    return virtual
