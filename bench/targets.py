"""What a benchmark run puts under load, and how each is started and always stopped: the fake upstream called
directly, the floor, Tollgate (its code snapshot, database, server process and virtual key) and the LiteLLM peer."""

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
PEER_VENV = Path(os.environ.get("PEER_VENV", "/tmp/litellm-peer"))
UPSTREAM = {"json": "http://127.0.0.1:9100/v1/chat/completions", "stream": "http://127.0.0.1:9101/v1/chat/completions"}
MASTER_KEY = "sk-bench-master-" + secrets.token_hex(12)
# One for the whole run: servers that share a database must decrypt the provider keys the first one stored.
SECRET_KEY = "bench-" + secrets.token_hex(24)
LITELLM_KEY = "sk-peer-6f1c2a9e4b7d8c0f3a5e1b2c4d6f8a0b"  # the peer's start.sh default
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

    def body(self, mode: str, model: str | None = None, messages: list | None = None) -> bytes:
        payload = {"model": model or self.models[mode], "messages": messages or MESSAGES}
        if mode == "stream":
            payload["stream"] = True
        return json.dumps(payload, separators=(",", ":")).encode()

    def call(self, mode: str, timeout: float = 120, model: str | None = None) -> httpx.Response:
        return httpx.post(self.urls[mode], content=self.body(mode, model), headers=self.headers, timeout=timeout)

    def spend_logs(self) -> int:
        return self.database.scalar("SELECT count(*) FROM spend_spendlog")


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
    """The floor (bench/floor), streaming from `stream_upstream` when given (else the shared upstream's :9101)."""
    port = services.free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if stream_upstream:
        env["FLOOR_STREAM_UPSTREAM"] = stream_upstream
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
            base=base,
        )
        target.info["startup_s"] = service.wait_healthy(60)
        target.info["ready_s"] = first_answer(target)
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
        target = Target(
            name,
            urls={"json": f"{base}/v1/chat/completions", "stream": f"{base}/v1/chat/completions"},
            models={"json": "bench-model", "stream": "bench-stream"},
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            service=service,
            database=database,
            info={"workers": workers, "env": args.tollgate_env + [f"{k}={v}" for k, v in (env or {}).items()]},
            base=base,
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


def use_virtual_key(target: Target, models: list[str], aliases: dict[str, str] | None = None) -> str | None:
    """Switch the target to a virtual key with a budget, limits and aliases, if this Tollgate can make one."""
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
    try:
        response = httpx.post(f"{target.base}/key/generate", json=payload, headers=master, timeout=30)
    except httpx.HTTPError as exc:
        target.info["auth"] = f"master key (/key/generate failed: {type(exc).__name__})"
        return None
    if response.status_code == 404:
        target.info["auth"] = "master key (/key/generate: 404, virtual keys not built yet)"
        return None
    if response.status_code >= 300 or "key" not in response.json():
        target.info["auth"] = f"master key (/key/generate answered {response.status_code}: {response.text[:200]})"
        return None
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
        target.info["auth"] = f"master key (the virtual key was refused: {answer.status_code} {answer.text[:200]})"
        return None
    target.expected_logs += 1
    target.models, target.headers = trial.models, trial.headers
    target.info["auth"] = "virtual key (max_budget, rpm/tpm limits" + (", model aliases)" if aliases else ")")
    return virtual


# -- the LiteLLM peer --------------------------------------------------------------------------------------------


def litellm_installed() -> bool:
    return (PEER_VENV / "bin" / "litellm").exists()


@contextlib.contextmanager
def litellm(args, workdir, name: str = "litellm", config: Path | None = None):
    """The peer as ../shared/peers/litellm/start.sh runs it; with `config`, the same command on another config
    (start.sh always takes the config beside it), which needs the peer installed already."""
    installed = litellm_installed()
    port = services.free_port(preferred=4000)
    env = {**os.environ, "PORT": str(port), "LITELLM_MASTER_KEY": LITELLM_KEY, "WORKERS": "1"}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DATABASE_URL", None)  # the peer runs as measured in the issue: master key only, no database
    if config is None:
        argv = ["bash", str(PEERS / "litellm" / "start.sh")]
    elif installed:
        argv = [str(PEER_VENV / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--num_workers", "1"]
    else:
        raise RuntimeError(f"the LiteLLM peer is not installed in {PEER_VENV}: run once with --peer first")
    base = f"http://127.0.0.1:{port}"
    service = services.Service(
        name, argv, env=env, cwd=workdir, log_path=workdir / f"{name}.log", health_url=f"{base}/health/liveliness"
    ).start()
    if not installed:
        print("installing the LiteLLM peer into /tmp/litellm-peer (first run: minutes)", flush=True)
    try:
        target = Target(
            name,
            urls={"json": f"{base}/v1/chat/completions", "stream": f"{base}/v1/chat/completions"},
            models={"json": "bench-model", "stream": "bench-stream"},
            headers={"Authorization": f"Bearer {LITELLM_KEY}"},
            service=service,
            info={"installed_this_run": not installed},
            base=base,
        )
        startup = service.wait_healthy(180 if installed else 1800)
        target.info["startup_s"] = startup if installed else None
        target.info["ready_s"] = first_answer(target) if installed else None
        yield target
    finally:
        service.stop()
