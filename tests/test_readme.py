"""The README's examples, run as written (only the address is swapped for a free port)."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests import secrets_audit
from tests.e2e.server import ROOT, GatewayServer, free_port

pytestmark = pytest.mark.live

README = (ROOT / "README.md").read_text()
DEMO_KEY = re.search(r"^TOLLGATE_MASTER_KEY \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    config = (ROOT / "gateway" / "demo_config.yaml").read_text()
    with GatewayServer(tmp_path_factory.mktemp("readme"), config, env={"TOLLGATE_MASTER_KEY": DEMO_KEY}) as server:
        yield server


def test_readme_uses_the_demo_key_of_the_makefile():
    assert DEMO_KEY in README


def test_every_manage_py_command_runs_in_the_venv():
    """A newcomer's shell has no venv on its PATH: `python manage.py` finds no Django there. (Production's commands
    run in the deployment's own environment.)"""
    trying = README.split("\n## Production", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", trying, re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    assert [line for line in lines if "manage.py" in line and not line.startswith(".venv/bin/python manage.py")] == []


def test_python_example(demo):
    (snippet,) = [block for block in code_blocks("python") if "OpenAI(" in block]
    result = subprocess.run(
        [sys.executable, "-c", snippet.replace("http://127.0.0.1:4000", demo.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    secrets_audit.register_output("the README's Python example (stderr)", result.stderr)

    reply, cost = result.stdout.strip().splitlines()
    assert reply == "This is a mock response from Tollgate."
    assert re.fullmatch(r"cost \(USD\): 0\.\d+", cost)


def run_sh(block: str, demo, env: dict | None = None) -> str:
    result = subprocess.run(
        ["bash", "-c", block.replace("http://127.0.0.1:4000", demo.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **(env or {})},
    )
    secrets_audit.register_output("a README curl example (stderr)", result.stderr)  # stdout is a response body
    return result.stdout


def test_curl_examples_in_order(demo):
    chat, generate, info = [block for block in code_blocks("sh") if block.startswith("curl")]

    assert '"content":"This is a mock response from Tollgate."' in run_sh(chat, demo)
    key = json.loads(run_sh(generate, demo))["key"]
    shown = json.loads(run_sh(info, demo, env={"KEY": key}))["info"]
    assert (shown["key_alias"], shown["max_budget"], shown["rpm_limit"]) == ("my-app", 5, 60)


def test_manage_py_examples(demo):
    commands = [block.strip() for block in code_blocks("sh") if block.startswith(".venv/bin/python manage.py cost")]

    assert commands
    for command in commands:
        output = demo.manage(*shlex.split(command)[2:]).stdout
        assert "0.000435" in output  # gpt-4o-mini: 800 × 1.5e-7 + 200 × 7.5e-8 + 500 × 6e-7


def test_import_config_example(demo, tmp_path):
    config = tmp_path / "config.yaml"
    (block,) = [block for block in code_blocks("yaml") if "azure-gpt4-turbo" in block]
    config.write_text(block)
    env = {"OPENAI_API_KEY": "sk-readme-openai", "AZURE_API_KEY": "readme-azure"}

    first = demo.manage("import_config", str(config), env_extra=env)
    again = demo.manage("import_config", str(config), env_extra=env)

    assert "2 created" in first.stdout
    assert "0 created, 0 updated, 0 deleted, 2 unchanged" in again.stdout


def test_make_run_serves_the_demo(tmp_path):
    port = free_port()
    env = {**os.environ, "TOLLGATE_VAR_DIR": str(tmp_path), "PORT": str(port), "LOG_LEVEL": "DEBUG"}
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY"):
        env.pop(name, None)
    log_path = tmp_path / "make-run.log"
    secrets_audit.register_log_file(log_path, "make run's output")
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {DEMO_KEY}"},
                    json={"model": "demo-model", "messages": [{"role": "user", "content": "Hello"}]},
                    timeout=5,
                )
                break
            except httpx.TransportError:
                assert process.poll() is None, "make run exited"
                time.sleep(0.3)
        assert response.status_code == 200
        assert response.headers["x-litellm-response-cost"] != "0"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
        if (tmp_path / "secret_key").exists():  # the embedded demo made its own
            secrets_audit.register_secret((tmp_path / "secret_key").read_text().strip(), "make run's SECRET_KEY")
