"""The README's quick start, as a newcomer runs it: `make run` in one shell, then each line of the "Try it" section's
shell blocks typed into a second, fresh shell (nothing in its environment but PATH, HOME and what the README tells
to set), each line succeeding, and the calls they made in /spend/logs."""

import json
import os
import re
import signal
import subprocess
import time

import httpx
import pytest

from tests import secrets_audit
from tests.e2e.server import ROOT, free_port
from tests.test_readme import DEMO_KEY, README

pytestmark = pytest.mark.live

MARK = "::quickstart-line"


def quick_start_lines() -> list[str]:
    """The commands of the "Try it" section's shell blocks after `make run` (continued lines joined, comments
    kept: bash ignores them), in order. Addresses are the README's own; the test only changes the port."""
    section = README.split("## Try it", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        if block.startswith("make run"):  # the first shell's command: the test serves the same way below
            continue
        lines += [line for line in block.replace("\\\n", "").splitlines() if line.strip()]
    return lines


def test_the_quick_start_names_the_commands_a_newcomer_needs():
    lines = quick_start_lines()
    assert any(line.startswith("KEY=$(make -s key)") for line in lines)
    assert any("make superuser" in line and "DJANGO_SUPERUSER_PASSWORD=" in line for line in lines)
    assert not [line for line in lines if re.match(r"python3? manage\.py", line)]  # no venv on a newcomer's PATH
    assert "PORT" in README.split("## Try it", 1)[1].split("\n## ", 1)[0]


@pytest.fixture
def make_run(tmp_path):
    """What `make run` does after installing: setup, migrate and serve the demo, in a clean environment."""
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TOLLGATE_VAR_DIR": str(tmp_path / "var"),
           "PORT": str(port), "TOLLGATE_MASTER_KEY": DEMO_KEY}  # fmt: skip
    python = str(ROOT / ".venv" / "bin" / "python")
    for command in (["setup"], ["migrate", "--noinput"]):
        subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    log_path = tmp_path / "serve.log"
    secrets_audit.register_log_file(log_path, "the quick start's server")
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        server = subprocess.Popen(
            [python, "manage.py", "serve", "--config", "gateway/demo_config.yaml", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield url, env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
        secrets_audit.register_secret((tmp_path / "var" / "secret_key").read_text().strip(), "the quick start's")


def test_the_quick_start_works_line_by_line_in_a_fresh_shell(make_run, tmp_path):
    url, server_env = make_run
    lines = quick_start_lines()
    # One bash runs the lines in order, as a person pastes them; after each, its exit status and a mark between the
    # lines' outputs. A line that fails ends the shell there. (The script is an argument, not stdin: a command that
    # reads its input would swallow the lines after it.)
    script = "".join(
        f"{line.replace('http://127.0.0.1:4000', url)}\n"
        f'status=$?; printf "\\n{MARK} {number} %s\\n" "$status"; [ "$status" = 0 ] || exit "$status"\n'
        for number, line in enumerate(lines)
    )
    shell_env = {name: server_env[name] for name in ("PATH", "HOME", "TOLLGATE_VAR_DIR", "PORT")}

    started = time.monotonic()
    result = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=ROOT, env=shell_env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)  # fmt: skip
    took = time.monotonic() - started
    secrets_audit.register_output("the quick start's shell", result.stdout + result.stderr)

    outputs = re.split(rf"^{MARK} \d+ \d+$\n?", result.stdout, flags=re.M)
    statuses = [int(status) for status in re.findall(rf"^{MARK} \d+ (\d+)$", result.stdout, re.M)]
    failed = next((number for number, status in enumerate(statuses) if status), len(statuses))
    assert statuses == [0] * len(lines), (
        lines[min(failed, len(lines) - 1)],
        result.stdout[-2000:],
        result.stderr[-2000:],
    )
    assert result.returncode == 0
    by_line = dict(zip(lines, outputs, strict=False))
    chats = [output for line, output in by_line.items() if "/v1/chat/completions" in line]
    assert len(chats) == 2  # with the new key, and with the master key
    for chat in chats:
        assert json.loads(chat)["choices"][0]["message"]["content"] == "This is a mock response from Tollgate."
    (logs_line,) = [line for line in lines if "/spend/logs" in line]
    (logged,) = json.loads(by_line[logs_line])  # the key's one call
    assert (logged["model"], logged["status"]) == ("demo-model", "success") and float(logged["spend"]) > 0

    master = {"Authorization": f"Bearer {DEMO_KEY}"}
    keys = httpx.get(f"{url}/key/list", params={"key_alias": "my-app"}, headers=master).json()
    assert keys["total_count"] == 1
    users = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "shell", "-c",
         "from django.contrib.auth.models import User; print(User.objects.filter(is_superuser=True)"
         ".values_list('username', flat=True).get())"],
        cwd=ROOT, env=server_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert users.stdout.strip().splitlines()[-1] == "admin"
    report = httpx.get(f"{url}/spend/logs", params={"limit": 100_000}, headers=master, timeout=60).json()
    print(f"quick start: {len(lines)} lines in {took:.1f} s; {len(report)} spend logs")
    assert len(report) >= 5001  # the generated month and the call made with the key
