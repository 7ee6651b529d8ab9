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
# litellm_settings read the same way: the default budget of customers with none of their own.
LITELLM_PROCESS_SETTINGS = {
    "max_end_user_budget": "TOLLGATE_MAX_END_USER_BUDGET",
    "max_end_user_budget_id": "TOLLGATE_MAX_END_USER_BUDGET_ID",
}
ENV_PREFIX = "os.environ/"


class GeneralSettingsError(Exception):
    """general_settings names an environment variable that is not set."""


def environment_from_config(path: str) -> dict[str, str]:
    """The variables a config's general_settings and litellm_settings give (the keys named above), `os.environ/NAME`
    references resolved; {} without a file."""
    if not path or not Path(path).is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    if not isinstance(document, dict):
        return {}
    variables = {}
    for section, settings in (("general_settings", PROCESS_SETTINGS), ("litellm_settings", LITELLM_PROCESS_SETTINGS)):
        values = document.get(section)
        if isinstance(values, dict):
            variables.update(
                {variable: _resolve(str(values[key]), f"{section}.{key}") for key, variable in settings.items()
                 if values.get(key) not in (None, "")}
            )  # fmt: skip
    return variables


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
        raise GeneralSettingsError(f"config.yaml {key} refers to environment variable {name}, which is not set")
    return os.environ[name]
