#!/usr/bin/env python
"""Tollgate's command-line entry point (Django's manage.py)."""

import os
import sys


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
    config_path = _config_from_argv(sys.argv[2:])
    if config_path:
        os.environ["TOLLGATE_CONFIG"] = os.path.abspath(config_path)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
