"""`manage.py serve` runs its server in a fresh interpreter that replaces the command's process: what the command
loaded (the system checks import every URL, view and admin; the config import) is not the server's to keep, and
with several workers uvicorn's supervisor is that small interpreter, not a copy of the whole command."""

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
def exec_calls(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    monkeypatch.delenv("TOLLGATE_CONFIG", raising=False)
    calls = []

    def execv(path, argv):
        calls.append((path, argv))
        raise _Replaced  # os.execv does not return

    monkeypatch.setattr(serve.os, "execv", execv)
    monkeypatch.setattr(serve.uvicorn, "run", lambda *args, **kwargs: pytest.fail("uvicorn ran in the command"))
    return calls


def test_serve_replaces_itself_by_an_interpreter_that_runs_the_server_with_its_options(exec_calls):
    with pytest.raises(_Replaced):
        call_command("serve", "--port", "4123", "--workers", "3", "--header-timeout", "2.5", stdout=io.StringIO())

    [(path, argv)] = exec_calls
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
