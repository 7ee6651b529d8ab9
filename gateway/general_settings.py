"""The two `general_settings` of a LiteLLM config.yaml that configure the process, not its deployments:
`database_url` and `master_key`, handed to Django as the variables settings.py reads (DATABASE_URL,
TOLLGATE_MASTER_KEY).

They must be known before Django loads its settings (the database is chosen there), so manage.py applies them
first, for `serve --config FILE` or TOLLGATE_CONFIG; settings.py itself only reads the environment, and the server
processes `serve` starts inherit it. A variable already set wins over the file, as in LiteLLM. A Celery worker
reads no config file: it takes DATABASE_URL from the environment, like every production process.
"""

import os
from pathlib import Path

import yaml

# general_settings key -> the environment variable settings.py reads it from.
PROCESS_SETTINGS = {"database_url": "DATABASE_URL", "master_key": "TOLLGATE_MASTER_KEY"}
ENV_PREFIX = "os.environ/"


class GeneralSettingsError(Exception):
    """general_settings names an environment variable that is not set."""


def environment_from_config(path: str) -> dict[str, str]:
    """The variables a config's general_settings give, `os.environ/NAME` references resolved; {} without a file."""
    if not path or not Path(path).is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    general = document.get("general_settings") if isinstance(document, dict) else None
    if not isinstance(general, dict):
        return {}
    return {
        variable: _resolve(str(general[key]), key) for key, variable in PROCESS_SETTINGS.items() if general.get(key)
    }


def apply_config_environment(path: str) -> None:
    """Set the variables the config gives that the environment leaves unset (or empty)."""
    for variable, value in environment_from_config(path).items():
        if not os.environ.get(variable):
            os.environ[variable] = value


def _resolve(value: str, key: str) -> str:
    if not value.startswith(ENV_PREFIX):
        return value
    name = value.removeprefix(ENV_PREFIX)
    if name not in os.environ:
        raise GeneralSettingsError(
            f"config.yaml general_settings.{key} refers to environment variable {name}, which is not set"
        )
    return os.environ[name]
