"""`manage.py serve` with several workers runs its server in a fresh interpreter that replaces the command's process:
uvicorn's supervisor is then that small interpreter, not a copy of everything the command loaded (the system checks
import every URL, view and admin). One worker serves in the command's own process."""

import io
import json
import subprocess
import sys

import pytest
from django.core.management import call_command

from gateway.management.commands import serve


class _Replaced(Exception):
    pass


@pytest.fixture
def started(monkeypatch, tmp_path):
    """What serve started: ("exec", path, argv) for a replaced process, ("uvicorn", app, options) for one in-process."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    monkeypatch.delenv("TOLLGATE_CONFIG", raising=False)
    calls = []

    def execv(path, argv):
        calls.append(("exec", path, argv))
        raise _Replaced  # os.execv does not return

    monkeypatch.setattr(serve.os, "execv", execv)
    monkeypatch.setattr(serve.uvicorn, "run", lambda app, **options: calls.append(("uvicorn", app, options)))
    return calls


def test_several_workers_are_served_by_an_interpreter_that_replaces_the_command(started):
    with pytest.raises(_Replaced):
        call_command("serve", "--port", "4123", "--workers", "3", "--header-timeout", "2.5", stdout=io.StringIO())

    [(how, path, argv)] = started
    assert how == "exec"
    assert path == argv[0] == sys.executable
    # Run what the new interpreter would run, with uvicorn.run reporting its arguments instead of serving.
    stub = "import json, uvicorn; uvicorn.run = lambda app, **kw: print(json.dumps([app, kw], default=repr)); "
    ran = subprocess.run([*argv[:2], stub + argv[2], *argv[3:]], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    app, options = json.loads(ran.stdout)
    assert app == "gateway.asgi:application"
    assert (options["host"], options["port"], options["workers"]) == ("127.0.0.1", 4123, 3)
    assert options["http"].endswith("HeaderTimeoutProtocol'>, header_timeout=2.5)")
    assert json.loads(argv[3]) == sys.path  # the command's import path: manage.py's folder, any --pythonpath


def test_one_worker_serves_in_the_commands_own_process(started):
    call_command("serve", "--port", "4124", stdout=io.StringIO())

    [(how, app, options)] = started
    assert (how, app, options["port"], options["workers"]) == ("uvicorn", "gateway.asgi:application", 4124, 1)
