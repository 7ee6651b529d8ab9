"""The embedded default's local files, which settings.py names but never makes: the data folder (SQLite
database, static files, spool) and, when SECRET_KEY is not in the environment, the secret key file.

`manage.py setup` makes them (`make run` and `make test` run it first), and so does `manage.py serve` on its first
start, so that importing settings (a test, a Celery worker, `manage.py check`) never writes anything.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def prepare_local_files() -> list[Path]:
    """Make what is missing; return what was made (nothing the second time)."""
    made = []
    if not settings.VAR_DIR.is_dir():
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        made.append(settings.VAR_DIR)
    if settings.EMBEDDED and "SECRET_KEY" not in os.environ:
        if _write_secret_key(settings.SECRET_KEY_FILE):
            made.append(settings.SECRET_KEY_FILE)
        _use_secret_key_file()
    return made


def _write_secret_key(path: Path) -> bool:
    """Write a new key, readable by its owner only, unless the file exists. Two processes starting at once (two
    `serve`s, a test run beside `make run`) end with one key: the file appears whole or not at all (a hard link
    of a finished file, which fails if the name is taken)."""
    if path.exists():
        return False
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    try:
        os.link(draft, path)
    except FileExistsError:
        return False
    finally:
        draft.unlink()
    return True


def _use_secret_key_file() -> None:
    # This process loaded its settings before the file existed (the first serve, a test run in a clean clone): it
    # takes the key now, as every process started later does from settings.
    try:
        settings.SECRET_KEY  # noqa: B018 - Django raises on an empty key
    except ImproperlyConfigured:
        settings.SECRET_KEY = settings.SECRET_KEY_FILE.read_text().strip()
