#!/usr/bin/env python
"""Tollgate's command-line entry point (Django's manage.py)."""

import os
import sys
from contextlib import nullcontext


def _config_from_argv(argv: list[str]) -> str | None:
    # `serve --config FILE` must be known before settings load: its general_settings may carry database_url.
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    from gateway.general_settings import GeneralSettingsError, apply_config_environment

    try:
        apply_config_environment(_config_from_argv(sys.argv[2:]) or os.environ.get("TOLLGATE_CONFIG", ""))
    except GeneralSettingsError as exc:
        sys.exit(str(exc))
    from django.core.management import execute_from_command_line

    from pricing.audit import acting, command_actor

    # What a command people run changes lands in the audit trail as the command's (gateway/audit.py).
    actor = command_actor(sys.argv)
    with acting(actor) if actor is not None else nullcontext():
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
