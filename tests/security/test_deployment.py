"""Production settings pass Django's deployment checklist; the admin keeps CSRF; ALLOWED_HOSTS comes from the
environment; the OpenAPI schema is open while the endpoints it describes are not."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests import secrets_audit

ROOT = Path(__file__).resolve().parents[2]
STRONG_MASTER_KEY = "sk-" + secrets.token_urlsafe(32)


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """What a production deployment behind a TLS-terminating proxy sets (see README, Production)."""
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "TOLLGATE_MASTER_KEY": STRONG_MASTER_KEY,
        "TOLLGATE_VAR_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "gateway.example.com",
        "TOLLGATE_HTTPS": "1",
        "TOLLGATE_BEHIND_TLS_PROXY": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
        "SECURE_HSTS_PRELOAD": "1",
        # The proxy in front redirects HTTP to HTTPS; the gateway only ever sees HTTPS requests.
        "SILENCED_SYSTEM_CHECKS": "security.W008",
        **overrides,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    secrets_audit.register_secrets_in_env(env, "the production environment of manage.py")
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    secrets_audit.register_output(f"manage.py {args[0]} with production settings", result.stdout + result.stderr)
    return result


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    # Every check: security, caches, templates, urls, database... and drf-spectacular's schema check.
    return manage("check", "--deploy", "--fail-level", "WARNING", env=env)


def test_production_settings_pass_the_deployment_checklist(tmp_path):
    result = deploy_check(production_env(tmp_path))

    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues (1 silenced)" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"TOLLGATE_HTTPS": "0"}, "security.W012"),  # session cookie sent over plain HTTP
        ({"TOLLGATE_HTTPS": "0"}, "security.W016"),  # CSRF cookie too
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SILENCED_SYSTEM_CHECKS": ""}, "security.W008"),
        ({"DEBUG": "1"}, "security.W018"),
    ],
)
def test_the_checklist_catches_each_missing_setting(tmp_path, overrides, problem):
    result = deploy_check(production_env(tmp_path, **overrides))

    assert result.returncode != 0
    assert problem in result.stderr


def test_allowed_hosts_and_https_settings_come_from_the_environment(tmp_path):
    env = production_env(tmp_path, ALLOWED_HOSTS="gateway.example.com,api.example.com")
    code = (
        "from django.conf import settings as s; "
        "print(s.ALLOWED_HOSTS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, "
        "s.SECURE_HSTS_SECONDS)"
    )
    result = manage("shell", "--no-imports", "-c", code, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "['gateway.example.com', 'api.example.com'] True True ('HTTP_X_FORWARDED_PROTO', 'https') 31536000"
    )


@pytest.mark.django_db
def test_a_host_not_allowed_is_refused(settings):
    settings.ALLOWED_HOSTS = ["gateway.example.com"]

    assert Client().get("/health/liveliness", HTTP_HOST="gateway.example.com").status_code == 200
    assert Client().get("/health/liveliness", HTTP_HOST="evil.example.net").status_code == 400


@pytest.mark.django_db
def test_admin_login_without_a_csrf_token_is_refused(django_user_model):
    django_user_model.objects.create_superuser("admin", "admin@example.com", "a-long-password-1")
    client = Client(enforce_csrf_checks=True)

    refused = client.post("/admin/login/", {"username": "admin", "password": "a-long-password-1"})

    assert refused.status_code == 403
    assert b"CSRF" in refused.content
    page = client.get("/admin/login/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    accepted = client.post(
        "/admin/login/", {"username": "admin", "password": "a-long-password-1", "csrfmiddlewaretoken": token}
    )
    assert accepted.status_code == 302


@pytest.mark.django_db
def test_the_schema_is_open_but_the_endpoints_it_describes_are_not(master_headers, settings):
    settings.TOLLGATE_AUTH_FAILURE_LIMIT = 0  # one address calls every endpoint without a key: not throttled here
    schema = Client().get("/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert schema.status_code == 200
    document = schema.json()
    assert document["components"]["securitySchemes"]["masterKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The master key (TOLLGATE_MASTER_KEY), as `Authorization: Bearer <key>`.",
    }
    assert {"/model/new", "/model/info", "/key/generate", "/spend/logs"} <= set(document["paths"])
    for path, operations in document["paths"].items():
        for method in operations:
            response = Client().generic(method.upper(), path)
            assert response.status_code in (401, 403), (method, path, response.status_code)
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.fixture
def production_session_settings(tmp_path):
    """The session and CSRF cookie settings production's environment gives (read by a process of its own)."""
    names = ["SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_AGE", "SESSION_COOKIE_SAMESITE",
             "CSRF_COOKIE_SECURE"]  # fmt: skip
    code = f"import json; from django.conf import settings as s; print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))"
    result = manage("shell", "--no-imports", "-c", code, env=production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.django_db
def test_an_admin_session_cookie_is_https_only_hidden_from_scripts_and_lasts_eight_hours(
    production_session_settings, settings, django_user_model
):
    assert production_session_settings == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_AGE": 8 * 3600,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
    }
    for name, value in production_session_settings.items():
        setattr(settings, name, value)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_user_model.objects.create_superuser("admin", "admin@example.com", "a-long-password-1")

    signed_in = Client().post("/admin/login/", {"username": "admin", "password": "a-long-password-1"}, secure=True)
    cookie = signed_in.cookies["sessionid"]

    assert signed_in.status_code == 302
    assert (cookie["secure"], cookie["httponly"], cookie["max-age"], cookie["samesite"]) == (True, True, 28800, "Lax")
