"""The secrets audit: a pytest plugin that fails the run when a secret a test used shows up in a log or an error.

Over the whole run it collects every log record of the test process at every level (DEBUG included, even from
loggers set to WARNING: the level only decides what the usual handlers see), formatted with its traceback; the body
of every error response Tollgate returned (Django's test client, and httpx calls to a live server); what each test
wrote to stdout and stderr; and the log files and outputs of the subprocesses the tests start (live servers, Celery
workers, `manage.py` commands), which register themselves with `register_log_file` or `register_output`.

It knows every secret used: the secret-named values in the tests' sources, configs and Makefile (provider
`api_key`s, AWS secret keys, passwords, master keys), the settings' SECRET_KEY, master key and the Fernet key
derived from them, every virtual key made in the test process (`keys.services.new_raw_key`) or handed out by a live
server, every provider secret sealed or read from the environment, every password set. At the end it greps
everything for each secret and its distinctive parts (without its `sk-` prefix, its first or last 16 characters),
and for anything with the shape of a virtual key, and fails the run if one is found. Reports show a hint (the first
6 characters and the length), never the secret.

Registered by tests/conftest.py; run without it: `pytest -p no:secrets_audit`.
"""

import base64
import hashlib
import json
import logging
import re
import shutil
import tempfile
import threading
import urllib.parse
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from tests.secrets_scan import (
    MIN_SECRET_LENGTH,
    VIRTUAL_KEY_SHAPE,
    Leak,
    LogTap,
    SecretMatcher,
    format_record,
    formatting,
    report,
)

ROOT = Path(__file__).resolve().parents[1]
SECRET_NAME = re.compile(
    r"(?i)(?:^|_)(?:api_key|secret|secret_key|secret_access_key|password|passwd|master_key|encryption_key"
    r"|session_token|ad_token|access_token)$"
)
_PY_LITERAL = re.compile(r"""\b(\w+)["']?\]?\s*[:=]\s*[rb]?["']([^"'\s\\{}]+)["'](?!\s*\+)""")
_YAML_VALUE = re.compile(r"""\b(\w+):[ \t]+["']?([^\s,"'{}\[\]\\]+)""")
_MAKE_DEFAULT = re.compile(r"^(\w+) \?= (\S+)$", re.M)
_KINDS = {"log record": "log records", "error body": "error bodies", "output": "outputs"}


class Audit:
    """What one run captured and which secrets it knows; `finish` scans it all."""

    def __init__(self):
        self.active = False
        self.secrets: dict[str, str] = {}
        self.too_short: set[str] = set()
        self.log_files: dict[Path, str] = {}
        self.servers: set[tuple[str, int]] = set()
        self.counts: Counter = Counter()
        self.current_test = "collection"
        self.workdir: Path | None = None
        self.leaks: list[Leak] = []
        self.known: Counter = Counter()
        self.summary = ""
        self._capture = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="tollgate-secrets-audit-"))
        self._capture = open(self.workdir / "test-process.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self.active = True

    def capture(self, kind: str, label: str, text: str) -> None:
        if not self.active:
            return
        line = json.dumps({"kind": kind, "test": self.current_test, "label": label, "text": text}, ensure_ascii=False)
        with self._lock:
            self._capture.write(line + "\n")
            self.counts[kind] += 1

    def capture_record(self, record: logging.LogRecord) -> None:
        self.capture("log record", f"{record.levelname} {record.name}", format_record(record))

    def discard(self) -> None:
        self.active = False
        self._capture.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def finish(self) -> None:
        self.active = False
        self._capture.close()
        matcher = SecretMatcher(self.secrets)
        found = matcher.scan_capture(self.workdir / "test-process.jsonl")
        scanned = 0
        for path, label in self.log_files.items():
            if path.exists():
                found += matcher.scan_file(path, label)
                scanned += 1
        self.leaks = [leak for leak in found if not leak.known]
        self.known = Counter(leak.known for leak in found if leak.known)
        parts = [f"{self.counts[kind]:,} {plural}" for kind, plural in _KINDS.items()]
        self.summary = (
            f"secrets audit: {', '.join(parts)} of the test process + {scanned:,} subprocess logs scanned for "
            f"{len(self.secrets):,} secrets ({len(self.too_short)} more too short to grep): "
            + (f"{len(self.leaks)} leaks found" if self.leaks else "none found")
            + "".join(f"; {count} known, not failing: {why}" for why, count in self.known.items())
        )
        if not self.leaks:
            shutil.rmtree(self.workdir, ignore_errors=True)


_audit = Audit()


# -- what tests and harnesses call ------------------------------------------------------------------------------------


def register_secret(value, origin: str) -> None:
    if not isinstance(value, str) or not value or value.startswith("os.environ/"):
        return
    if len(value) < MIN_SECRET_LENGTH:
        _audit.too_short.add(value)
    else:
        _audit.secrets.setdefault(value, origin)


def register_named(name: str, value, origin: str) -> None:
    """A value registered only if its name says it is secret; SECRET_KEY-like ones bring their Fernet key too."""
    if not SECRET_NAME.search(name):
        return
    register_secret(value, f"{name} in {origin}")
    if isinstance(value, str) and value and name in ("SECRET_KEY", "TOLLGATE_ENCRYPTION_KEY"):
        fernet_key = base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).decode()  # gateway.secrets
        register_secret(fernet_key, f"the Fernet key derived from {name} in {origin}")


def register_secrets_in_env(env: Mapping[str, str], origin: str) -> None:
    for name, value in env.items():
        register_named(name, value, origin)


def register_secrets_in(node, origin: str) -> None:
    """The secret-named values anywhere in parsed JSON or YAML (api_key, aws_secret_access_key, master_key...)."""
    if isinstance(node, dict):
        for name, value in node.items():
            if isinstance(value, str):
                register_named(str(name), value, origin)
            else:
                register_secrets_in(value, origin)
    elif isinstance(node, list):
        for item in node:
            register_secrets_in(item, origin)


def register_secrets_in_config(text: str, origin: str) -> None:
    """The secret-named values of a LiteLLM config.yaml."""
    try:
        register_secrets_in(yaml.safe_load(text), origin)
    except yaml.YAMLError:
        pass


def register_log_file(path: Path, label: str) -> None:
    """A subprocess's log, scanned at the end of the run."""
    if _audit.active:
        _audit.log_files[Path(path)] = label


def register_output(label: str, text: str | bytes | None) -> None:
    """What a finished subprocess wrote (stdout, stderr), when it was kept in memory rather than in a file."""
    if text:
        _audit.capture("output", label, text.decode(errors="replace") if isinstance(text, bytes) else text)


def register_server(url: str) -> None:
    """A live Tollgate: its error bodies are audited, and virtual keys it hands out become secrets."""
    parsed = urllib.parse.urlsplit(url)
    _audit.servers.add((parsed.hostname, parsed.port))


def _register_sources() -> None:
    """Secret-named literals in the tests' sources and configs, and the Makefile's defaults (the demo key)."""
    for path in sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("tests/**/*.yaml"), *ROOT.glob("gateway/*.yaml")]):
        text = path.read_text(errors="replace")
        for pattern in (_PY_LITERAL, _YAML_VALUE):
            for name, value in pattern.findall(text):
                if "..." not in value and "*" not in value:
                    register_named(name, value, path.relative_to(ROOT).as_posix())
    for name, value in _MAKE_DEFAULT.findall((ROOT / "Makefile").read_text()):
        register_named(name, value, "Makefile")


# -- hooks into the code under test -----------------------------------------------------------------------------------


def _audit_exchange(request, response) -> None:
    """An httpx call to a live Tollgate: the secrets it was sent or handed out, and its body if it is an error."""
    if (request.url.host, request.url.port) not in _audit.servers:
        return
    try:
        sent, body = json.loads(request.content or b"null"), response.text
    except Exception:  # streamed, not JSON
        return
    register_secrets_in(sent, f"a request to {request.url.path}")
    if response.status_code >= 400:
        _audit.capture("error body", f"{request.method} {request.url.path} -> {response.status_code}", body)
    for key in VIRTUAL_KEY_SHAPE.findall(body):
        register_secret(key, f"a virtual key handed out by {request.method} {request.url.path}")


def _install_httpx_hooks(patch: pytest.MonkeyPatch) -> None:
    import httpx

    send, asend = httpx.Client.send, httpx.AsyncClient.send

    def audited_send(self, request, **kwargs):
        response = send(self, request, **kwargs)
        _audit_exchange(request, response)
        return response

    async def audited_asend(self, request, **kwargs):
        response = await asend(self, request, **kwargs)
        _audit_exchange(request, response)
        return response

    patch.setattr(httpx.Client, "send", audited_send)
    patch.setattr(httpx.AsyncClient, "send", audited_asend)


def _audit_django_response(request: dict, response) -> None:
    if response.status_code >= 400 and not response.streaming:
        label = f"{request.get('REQUEST_METHOD')} {request.get('PATH_INFO')} -> {response.status_code}"
        _audit.capture("error body", label, response.content.decode(errors="replace"))


def _install_django_hooks(patch: pytest.MonkeyPatch) -> None:
    from django.conf import settings
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.query import QuerySet
    from django.test import AsyncClient, Client
    from django.test.signals import setting_changed

    from gateway import secrets as provider_secrets
    from keys import services

    for name in ("SECRET_KEY", "TOLLGATE_ENCRYPTION_KEY", "TOLLGATE_MASTER_KEY"):
        register_named(name, getattr(settings, name, ""), "the test settings")

    def on_setting_changed(setting, value, **kwargs):
        register_named(setting, value, "a test's settings")

    setting_changed.connect(on_setting_changed, weak=False, dispatch_uid="secrets_audit")
    _cleanups.append(lambda: setting_changed.disconnect(dispatch_uid="secrets_audit"))

    new_raw_key, seal, resolve = services.new_raw_key, provider_secrets.seal, provider_secrets.resolve_env_reference
    set_password, request, arequest = AbstractBaseUser.set_password, Client.request, AsyncClient.request

    def audited_new_raw_key():
        raw = new_raw_key()
        register_secret(raw, "a virtual key made in the test process")
        return raw

    def audited_seal(secret):
        register_secret(secret, "a provider secret sealed in the test process")
        return seal(secret)

    def audited_resolve(value):
        secret = resolve(value)
        register_secret(secret, f"the environment ({value})")
        return secret

    def audited_set_password(user, raw_password):
        register_secret(raw_password, "a password set in the test process")
        return set_password(user, raw_password)

    def audited_request(self, **environ):
        response = request(self, **environ)
        _audit_django_response(environ, response)
        return response

    async def audited_arequest(self, **environ):
        response = await arequest(self, **environ)
        _audit_django_response(environ, response)
        return response

    queryset_repr, cursor = QuerySet.__repr__, BaseDatabaseWrapper.cursor

    def quiet_queryset_repr(queryset):
        if getattr(formatting, "active", False) and queryset._result_cache is None:
            return f"<{type(queryset).__name__} not evaluated by the secrets audit>"
        return queryset_repr(queryset)

    def quiet_cursor(connection):
        if getattr(formatting, "active", False):
            raise RuntimeError("the secrets audit runs no query")
        return cursor(connection)

    patch.setattr(QuerySet, "__repr__", quiet_queryset_repr)
    patch.setattr(BaseDatabaseWrapper, "cursor", quiet_cursor)
    patch.setattr(services, "new_raw_key", audited_new_raw_key)
    patch.setattr(provider_secrets, "seal", audited_seal)
    patch.setattr(provider_secrets, "resolve_env_reference", audited_resolve)
    patch.setattr(AbstractBaseUser, "set_password", audited_set_password)
    patch.setattr(Client, "request", audited_request)
    patch.setattr(AsyncClient, "request", audited_arequest)


# -- the plugin -------------------------------------------------------------------------------------------------------

_tap = LogTap(_audit.capture_record)
_patch = pytest.MonkeyPatch()
_cleanups: list = []


def pytest_configure(config):
    _audit.start()
    _tap.install()
    _register_sources()


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    _install_httpx_hooks(_patch)
    if session.config.pluginmanager.hasplugin("django"):
        from django.conf import settings

        if settings.configured:
            _install_django_hooks(_patch)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    _audit.current_test = item.nodeid
    try:
        return (yield)
    finally:
        _audit.current_test = "between tests"


def pytest_runtest_logreport(report):
    for name, content in report.sections:  # each phase's report repeats the sections of the phases before it
        if name.startswith(("Captured stdout", "Captured stderr")) and name.endswith(f" {report.when}"):
            _audit.capture("output", f"{name} of {report.nodeid}", content)


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down: their servers have stopped
def pytest_sessionfinish(session):
    _tap.uninstall()
    _patch.undo()
    while _cleanups:
        _cleanups.pop()()
    _audit.finish()
    if _audit.leaks and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config):
    if _audit.active:  # no session ran (--help, a usage error): nothing to scan
        _tap.uninstall()
        _audit.discard()


def pytest_terminal_summary(terminalreporter):
    if _audit.leaks:
        terminalreporter.section("secrets audit: leaks", sep="=", red=True, bold=True)
        for line in report(_audit.leaks):
            terminalreporter.line(line)
        terminalreporter.line(f"everything the test process captured is kept in {_audit.workdir}")
    terminalreporter.write_line(_audit.summary, red=bool(_audit.leaks), green=not _audit.leaks)
