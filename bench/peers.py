"""The gateways Tollgate is measured against, each installed from its registry at a pinned version and started on
loopback: the LiteLLM proxy (../shared/peers/litellm) and Portkey's open-source gateway (../shared/peers/portkey).

Portkey 1.15.2 as npm installs it today (its `@hono/node-server` range resolves to 1.19.x) answers every stream
with a 500 on Node 20: `TypeError: immutable` (Portkey-AI/gateway#1389). node-server's light Response reuses the
upstream fetch's Headers, which are immutable, when the body is a stream, and Portkey appends its own headers to
them. With `@hono/node-server` pinned to 1.13.8 (an npm override, nothing patched) streams work, so the bench
measures both: `portkey` as installed, its stream rows counted as the failures they are, and `portkey-hono1.13.8`.
"""

import contextlib
import json
import os
import subprocess
from pathlib import Path

from bench import services
from bench.targets import PEERS, chat_target, first_answer

PEER_VENV = Path(os.environ.get("PEER_VENV", "/tmp/litellm-peer"))
LITELLM_KEY = "sk-peer-6f1c2a9e4b7d8c0f3a5e1b2c4d6f8a0b"  # the peer's start.sh default

PORTKEY_VERSION = "1.15.2"
PORTKEY_DIR = Path(os.environ.get("PEER_DIR", "/tmp/portkey-peer"))  # where start.sh installs it
# The node-server release before the light Response took a stream's headers as they came (see above).
PORTKEY_WORKING_HONO = "1.13.8"
PORTKEY_ROUTES = {"json": "http://127.0.0.1:9100/v1", "stream": "http://127.0.0.1:9101/v1"}


# -- LiteLLM -----------------------------------------------------------------------------------------------------


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
        raise RuntimeError(f"the LiteLLM peer is not installed in {PEER_VENV}: run once with --peers first")
    base = f"http://127.0.0.1:{port}"
    service = services.Service(
        name, argv, env=env, cwd=workdir, log_path=workdir / f"{name}.log", health_url=f"{base}/health/liveliness"
    ).start()
    if not installed:
        print(f"installing the LiteLLM peer into {PEER_VENV} (first run: minutes)", flush=True)
    try:
        headers = {"Authorization": f"Bearer {LITELLM_KEY}"}
        info = {"peer": True, "installed_this_run": not installed}
        target = chat_target(name, base, headers, service=service, info=info)
        startup = service.wait_healthy(180 if installed else 1800)
        target.info["startup_s"] = startup if installed else None
        target.info["ready_s"] = first_answer(target) if installed else None
        yield target
    finally:
        service.stop()


# -- Portkey -----------------------------------------------------------------------------------------------------


def install_portkey(directory: Path, hono: str | None = None) -> str:
    """@portkey-ai/gateway at its pinned version in `directory` (once), with @hono/node-server pinned to `hono` if
    given; the node-server version it resolved to."""
    server = directory / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not server.exists():
        directory.mkdir(parents=True, exist_ok=True)
        dependencies = {"@portkey-ai/gateway": PORTKEY_VERSION}
        manifest: dict = {"name": directory.name, "private": True, "dependencies": dependencies}
        if hono:
            dependencies["@hono/node-server"] = hono
            manifest["overrides"] = {"@hono/node-server": hono}
        (directory / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"installing Portkey's gateway {PORTKEY_VERSION} into {directory}", flush=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"], cwd=directory, check=True, capture_output=True, timeout=900
        )
    installed = directory / "node_modules" / "@hono" / "node-server" / "package.json"
    return json.loads(installed.read_text())["version"]


def portkey_factory(name: str, directory: Path, hono: str | None = None):
    @contextlib.contextmanager
    def factory(args, workdir):
        with portkey(workdir, name, directory, hono) as target:
            yield target

    return factory


@contextlib.contextmanager
def portkey(workdir: Path, name: str, directory: Path, hono: str | None = None):
    """Portkey's gateway on a free port. Started with node directly, not through start.sh: its build reads only
    `--port=N` and start.sh passes `--port N`, which leaves it on 8787. `--headless`: no log UI (a server's mode).
    It listens on every interface (its build gives no host option); the bench only ever calls 127.0.0.1."""
    hono_version = install_portkey(directory, hono)
    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    server = directory / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    service = services.Service(
        name,
        ["node", str(server), f"--port={port}", "--headless"],
        env=env,
        cwd=directory,
        log_path=workdir / f"{name}.log",
        health_url=f"{base}/",
    ).start()
    try:
        target = chat_target(
            name,
            base,
            {"Authorization": "Bearer fake-key", "x-portkey-provider": "openai"},
            service=service,
            models={"json": "gpt-4o-mini", "stream": "gpt-4o-mini"},  # passed on to the upstream as it is
            mode_headers={mode: {"x-portkey-custom-host": route} for mode, route in PORTKEY_ROUTES.items()},
            info={"peer": True, "version": PORTKEY_VERSION, "node": node_version, "hono_node_server": hono_version},
        )
        target.info["startup_s"] = service.wait_healthy(120)
        target.info["ready_s"] = first_answer(target)
        yield target
    finally:
        service.stop()
