"""The secrets audit (tests/secrets_audit.py) catches a planted secret wherever it could leak, names it by a hint
only, and fails the run. The planted secrets are made here at run time, so this run's own audit never knows them."""

import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests.secrets_audit import Audit
from tests.secrets_scan import LogTap, SecretMatcher, format_record, hint

ROOT = Path(__file__).resolve().parents[2]


def planted(prefix: str = "sk-planted-") -> str:
    return prefix + secrets.token_hex(16)


def test_a_debug_record_of_a_quiet_logger_is_audited_and_still_filtered(caplog):
    value = planted()
    seen: list[logging.LogRecord] = []
    logger = logging.getLogger("tests.secrets_audit.quiet")
    caplog.set_level(logging.WARNING, logger=logger.name)
    tap = LogTap(seen.append)
    tap.install()
    try:
        logger.debug("calling upstream with Authorization: Bearer %s", value)
    finally:
        tap.uninstall()

    [leak] = SecretMatcher({value: "a planted key"}).scan(format_record(seen[0]), "log")
    assert leak.origin == "a planted key"
    assert value not in leak.describe() and hint(value) in leak.describe()
    assert caplog.records == []  # the usual handlers see only what the logger's level lets through


def test_a_secret_in_a_logged_traceback_is_found():
    value = planted()
    try:
        raise ValueError(f"upstream refused headers {{'api-key': '{value}'}}")
    except ValueError:
        record = logging.getLogger("gateway").makeRecord("gateway", logging.ERROR, __file__, 1, "call failed", (), None)
        record.exc_info = sys.exc_info()

    text = format_record(record)

    assert "Traceback (most recent call last)" in text
    assert [leak.line for leak in SecretMatcher({value: "planted"}).scan(text, "log")] == [text.count("\n") + 1]
    assert record.exc_text is None  # the usual handlers format the traceback as they would have


def test_a_secret_in_a_server_log_file_is_reported_with_its_file_and_line(tmp_path):
    value = planted("provider-secret-")
    log = tmp_path / "server.log"
    log.write_text(f"INFO starting\nWARNING retrying\nERROR upstream said: invalid key {value}\n")

    [leak] = SecretMatcher({value: "api_key in a config"}).scan_file(log, "live server log")

    assert (leak.source, leak.line) == (f"live server log ({log})", 3)
    assert leak.text == f"ERROR upstream said: invalid key [{hint(value)}]"


@pytest.mark.parametrize(
    ("shown", "found"),
    [
        pytest.param(lambda key: key, True, id="whole"),
        pytest.param(lambda key: key.removeprefix("sk-"), True, id="without its prefix"),
        pytest.param(lambda key: key[:19] + "…", True, id="cut after 16 characters past the prefix"),
        pytest.param(lambda key: "…" + key[-16:], True, id="its last 16 characters"),
        pytest.param(lambda key: f"sk-...{key[-4:]}", False, id="the hint Tollgate shows by design"),
        pytest.param(lambda key: planted(), False, id="another key made the same way"),
    ],
)
def test_a_secret_is_found_by_its_distinctive_parts(shown, found):
    value = planted()
    assert bool(SecretMatcher({value: "planted"}).scan(f"key={shown(value)}", "log")) is found


def test_a_secret_is_found_url_quoted():
    value = f"aws/{secrets.token_hex(6)}+k"  # too short for its ends to count on their own

    assert SecretMatcher({value: "planted"}).scan(f"GET /?secret={urllib.parse.quote(value, safe='')}", "log")


def test_short_secrets_are_not_grepped_but_unregistered_virtual_keys_are():
    unregistered = "sk-" + secrets.token_urlsafe(24)  # what keys.services.new_raw_key makes

    leaks = SecretMatcher({"sk-1": "a short key"}).scan(f"sk-1 sk-1 then {unregistered}", "log")

    assert [(leak.secret, leak.origin) for leak in leaks] == [
        (unregistered, "nowhere registered: it has the shape of a virtual key")
    ]


def test_the_audit_scans_records_error_bodies_outputs_and_log_files(tmp_path):
    in_record, in_body, in_output, in_file = (planted() for _ in range(4))
    audit = Audit()
    audit.secrets = {in_record: "record", in_body: "body", in_output: "output", in_file: "file"}
    audit.start()
    record = logging.getLogger("keys").makeRecord("keys", logging.DEBUG, __file__, 1, "made %s", (in_record,), None)
    audit.capture_record(record)
    audit.capture("error body", "POST /key/generate -> 400", f'{{"error": {{"message": "bad key {in_body}"}}}}')
    audit.capture("output", "manage.py shell", f"printed {in_output}")
    (tmp_path / "worker.log").write_text(f"DEBUG task args: {in_file}\n")
    audit.log_files[tmp_path / "worker.log"] = "Celery worker log"

    audit.finish()

    assert {leak.origin for leak in audit.leaks} == {"record", "body", "output", "file"}
    assert "4 leaks found" in audit.summary and "1 log records, 1 error bodies, 1 outputs" in audit.summary
    assert audit.workdir.exists()  # kept for whoever reads the report
    shutil.rmtree(audit.workdir)


def test_a_known_exposure_is_counted_without_failing(tmp_path):
    value = planted()
    audit = Audit()
    audit.secrets = {value: "a generated key"}
    audit.start()
    url = f"http://127.0.0.1:4000/key/info?key={value}"
    audit.capture("log record", "INFO httpx", f'INFO httpx: HTTP Request: GET {url} "HTTP/1.1 200 OK"')

    audit.finish()

    assert audit.leaks == []
    assert "none found; 1 known, not failing: the tests' HTTP client logs each URL" in audit.summary


LEAKING_TEST = """
import logging

from tests import secrets_audit


def test_logs_a_secret_at_debug():
    secrets_audit.register_secret({value!r}, "a planted secret")
    logging.getLogger("quiet").setLevel(logging.ERROR)
    logging.getLogger("quiet").debug("upstream key %s", {value!r} if {leak} else "sk-...1234")
"""
CONFTEST = """
from tests import secrets_audit


def pytest_configure(config):
    config.pluginmanager.register(secrets_audit, "secrets_audit")
"""


@pytest.mark.parametrize("leak", [True, False])
def test_a_run_that_leaks_fails_and_names_the_secret_by_its_hint(tmp_path, leak):
    value = planted()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_leaking.py").write_text(LEAKING_TEST.format(value=value, leak=leak))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert value not in result.stdout + result.stderr
    assert "1 passed" in result.stdout
    if leak:
        assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
        assert f"{hint(value)} from a planted secret" in result.stdout
        assert "DEBUG quiet, during test_leaking.py::test_logs_a_secret_at_debug, line 1" in result.stdout
        assert "1 leaks found" in result.stdout
        kept = re.search(r"everything the test process captured is kept in (\S+)", result.stdout).group(1)
        shutil.rmtree(kept)
    else:
        assert result.returncode == pytest.ExitCode.OK, result.stdout
        assert "secrets audit: " in result.stdout and ": none found" in result.stdout
