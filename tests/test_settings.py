"""Settings read the environment and nothing else: importing them writes nothing and parses no config file; the
embedded default's folder and secret key come from `manage.py setup` (or the first serve); every setting the code
reads is declared once in gateway/settings.py, and every variable settings read is in the README's table."""

import ast
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.general_settings import GeneralSettingsError, apply_config_environment, environment_from_config
from gateway.local_files import prepare_local_files

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "gateway" / "settings.py"
APPS = ("gateway", "keys", "pricing", "spend")
CONFIG = """
model_list: []
general_settings:
  database_url: postgres://config-user@db.example.test:5432/from_config
  master_key: os.environ/H2_TEST_MASTER_KEY
"""


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TOLLGATE_", "DJANGO_"))}
    for name in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL"):
        env.pop(name, None)
    return {**env, "HOME": str(tmp_path / "home"), "TOLLGATE_VAR_DIR": str(tmp_path / "var"), **extra}


def files_under(path: Path) -> set[str]:
    return {str(item.relative_to(path)) for item in path.rglob("*")}


def test_importing_settings_and_setting_django_up_writes_nothing(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "config.yaml").write_text(CONFIG)
    before = files_under(tmp_path)
    script = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.DATABASES['default']['ENGINE'], repr(settings.TOLLGATE_MASTER_KEY))"
    )
    env = clean_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="gateway.settings",
        TOLLGATE_CONFIG=str(tmp_path / "config.yaml"),
        H2_TEST_MASTER_KEY="sk-from-the-config-environment-0123456789",
        PYTHONDONTWRITEBYTECODE="1",
    )

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert files_under(tmp_path) == before  # no var/, no secret key
    # The config is the entry point's business (manage.py), not the settings'.
    assert result.stdout.split() == ["django.db.backends.sqlite3", "''"]


def manage(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_manage_py_takes_database_and_master_key_from_the_config_when_the_environment_does_not(tmp_path):
    (tmp_path / "config.yaml").write_text(CONFIG)
    script = (
        "from django.conf import settings; print(settings.DATABASES['default']['NAME'], settings.TOLLGATE_MASTER_KEY)"
    )

    def shell(**extra: str) -> subprocess.CompletedProcess:
        config = {"TOLLGATE_CONFIG": str(tmp_path / "config.yaml"), "SECRET_KEY": "test-only-secret-key-0123456789ab"}
        return manage(tmp_path, "shell", "--no-imports", "-c", script, **config, **extra)

    from_config = shell(H2_TEST_MASTER_KEY="sk-from-config-0123456789abcdef")
    from_env = shell(H2_TEST_MASTER_KEY="sk-from-config-0123456789abcdef", TOLLGATE_MASTER_KEY="sk-from-env-0123456789")
    unresolved = shell()

    assert from_config.stdout.split() == ["from_config", "sk-from-config-0123456789abcdef"], from_config.stderr
    assert from_env.stdout.split() == ["from_config", "sk-from-env-0123456789"], from_env.stderr
    assert unresolved.returncode == 1
    assert "general_settings.master_key refers to environment variable H2_TEST_MASTER_KEY" in unresolved.stderr


def test_manage_py_setup_makes_the_folder_and_one_secret_key(tmp_path):
    first = manage(tmp_path, "setup")
    key = (tmp_path / "var" / "secret_key").read_text()
    again = manage(tmp_path, "setup")

    assert first.stdout.splitlines() == [f"made {tmp_path / 'var'}", f"made {tmp_path / 'var' / 'secret_key'}"]
    assert stat.S_IMODE((tmp_path / "var" / "secret_key").stat().st_mode) == 0o600
    assert len(key) >= 50
    assert again.stdout.splitlines() == ["nothing to make"]
    assert (tmp_path / "var" / "secret_key").read_text() == key


def test_first_serve_uses_the_key_it_made(settings, tmp_path, monkeypatch):
    """`serve` loaded its settings before its first start made the key: it must sign with that key, as every
    process started later will (its sessions would otherwise fail with an empty SECRET_KEY)."""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    settings.EMBEDDED = True
    settings.VAR_DIR = tmp_path / "var"
    settings.SECRET_KEY_FILE = tmp_path / "var" / "secret_key"
    settings.SECRET_KEY = ""

    assert prepare_local_files() == [tmp_path / "var", tmp_path / "var" / "secret_key"]
    assert settings.SECRET_KEY == (tmp_path / "var" / "secret_key").read_text()
    assert prepare_local_files() == []


def test_general_settings_resolve_environment_references(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("H2_TEST_MASTER_KEY", "sk-resolved")

    assert environment_from_config(str(config)) == {
        "DATABASE_URL": "postgres://config-user@db.example.test:5432/from_config",
        "TOLLGATE_MASTER_KEY": "sk-resolved",
    }
    assert environment_from_config(str(tmp_path / "missing.yaml")) == {}
    monkeypatch.delenv("H2_TEST_MASTER_KEY")
    with pytest.raises(GeneralSettingsError, match="H2_TEST_MASTER_KEY"):
        apply_config_environment(str(config))


# --- every setting declared once, every variable documented ------------------------------------------------------


def declared_settings() -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names |= {target.id for target in targets if isinstance(target, ast.Name) and target.id.isupper()}
    return names


def environment_variables_read_by_settings() -> set[str]:
    """The first argument of every env.<cast>("NAME", ...) call, and NAME in `"NAME" in env.ENVIRON`."""
    names = set()
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "env"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and "ENVIRON" in ast.dump(node):
            names.add(node.left.value)
    return names


def readme_configuration_table() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split(" | ")[0])}


def settings_read_by_the_code() -> dict[str, set[str]]:
    """settings.X and getattr(settings, "X") in the apps and manage.py, X -> the modules that read it."""
    pattern = re.compile(r"(?<![\w.])settings\.([A-Z][A-Z0-9_]*)|getattr\(settings, \"([A-Z][A-Z0-9_]*)\"")
    reads: dict[str, set[str]] = {}
    paths = [ROOT / "manage.py", *(path for app in APPS for path in (ROOT / app).rglob("*.py"))]
    for path in paths:
        if path == SETTINGS:
            continue
        for match in pattern.finditer(path.read_text()):
            reads.setdefault(match.group(1) or match.group(2), set()).add(str(path.relative_to(ROOT)))
    return reads


def test_every_setting_the_code_reads_is_declared_in_settings():
    undeclared = {
        name: modules for name, modules in settings_read_by_the_code().items() if name not in declared_settings()
    }

    assert undeclared == {}


def test_no_setting_is_read_with_a_default_of_its_own():
    # getattr(settings, "X", default) keeps a second default, which drifts from the declared one.
    readers = [
        str(path.relative_to(ROOT))
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if "getattr(settings," in path.read_text()
    ]

    assert readers == []


def test_every_variable_settings_read_is_in_the_readme_table_and_only_those():
    read = environment_variables_read_by_settings()
    documented = readme_configuration_table()

    assert sorted(read - documented) == [], "read by settings.py, missing from the README's table"
    assert sorted(documented - read) == [], "in the README's table, read by nothing"


def test_production_settings_pass_djangos_deployment_checks(tmp_path):
    """What the README's production section sets (HTTPS, HSTS, a real secret key, DEBUG off) leaves `check --deploy`
    with nothing to say, warnings included (without TOLLGATE_HTTPS the cookies would travel over plain HTTP)."""
    env = clean_env(
        tmp_path,
        DEBUG="false",
        SECRET_KEY="production-secret-" + "k3y-" * 12,
        TOLLGATE_HTTPS="true",
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
