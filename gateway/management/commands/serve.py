"""`manage.py serve`: import the config, then run the production ASGI server (uvicorn, uvloop, httptools).

With several workers the server runs in a fresh interpreter that replaces this process (same pid, same environment):
uvicorn's supervisor is then that small interpreter, not a copy of all the command loaded (the system checks import
every URL, view and admin; the config import). Measured idle after start and one call (bench start, RSS of the
whole process tree), 2 workers: 356.0 -> 279.6 MB. One worker serves in this process: a fresh interpreter would
hold 0.9 MB less (its first requests load the URLs and views the checks did) and start 1.2-1.8 s later (Django set
up twice), measured back to back.
"""

import functools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gateway.header_timeout import HeaderTimeoutProtocol

# What the fresh interpreter runs: this process's import path (manage.py's folder, any --pythonpath), then the server.
_SERVE_FRESH = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from gateway.management.commands.serve import run_server; run_server(**json.loads(sys.argv[2]))"
)


class Command(BaseCommand):
    help = "Import a LiteLLM-style config.yaml and serve the gateway."

    def add_arguments(self, parser):
        parser.add_argument("--config", default=settings.TOLLGATE_CONFIG, help="LiteLLM config.yaml")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=4000)
        parser.add_argument("--workers", type=int, default=1, help="server processes")
        parser.add_argument("--migrate", action="store_true", help="apply database migrations first")
        parser.add_argument(
            "--header-timeout",
            type=float,
            default=settings.TOLLGATE_HEADER_TIMEOUT,
            help="seconds a client has to send its request headers before its connection is closed",
        )

    def handle(self, *args, **options):
        from django.core.management import call_command

        from gateway.config_import import ConfigError, import_config_file
        from gateway.local_files import prepare_local_files

        # The first start of the embedded default makes its data folder and secret key (`manage.py setup`).
        for path in prepare_local_files():
            self.stdout.write(f"made {path}")
        _empty_metrics_directory()
        if options["migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        if options["config"]:
            try:
                summary = import_config_file(options["config"])
            except (ConfigError, OSError) as exc:
                raise CommandError(f"{options['config']}: {exc}") from None
            self.stdout.write(f"config {options['config']}: {summary}")
        self.stdout.write(
            f"Tollgate listening on http://{options['host']}:{options['port']} ({options['workers']} workers)"
        )
        self.stdout.flush()
        server = {
            "host": options["host"],
            "port": options["port"],
            "workers": options["workers"],
            "header_timeout": options["header_timeout"],
        }
        if options["workers"] > 1:
            serve_in_a_fresh_process(**server)
        run_server(**server)


def serve_in_a_fresh_process(**server: object) -> NoReturn:
    """Replace this process by a new interpreter that runs ``run_server(**server)``."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-c", _SERVE_FRESH, json.dumps(sys.path), json.dumps(server)])


def run_server(*, host: str, port: int, workers: int, header_timeout: float) -> None:
    uvicorn.run(
        "gateway.asgi:application",
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=functools.partial(HeaderTimeoutProtocol, header_timeout=header_timeout),
        lifespan="on",
        access_log=False,
        # Who the caller is comes from TOLLGATE_TRUST_X_FORWARDED_FOR (keys/throttle.py) and the scheme from
        # TOLLGATE_BEHIND_TLS_PROXY alone. uvicorn's default would take both from the headers of any caller on
        # 127.0.0.1, so a local caller could pick a fresh address for each guess at a key.
        proxy_headers=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


def _empty_metrics_directory() -> Path:
    """The folder where every worker writes its metrics (prometheus_client's multi-process mode), emptied: the counts
    of an earlier run are not this one's. Set in the environment before any worker starts, so each one counts there
    (PROMETHEUS_MULTIPROC_DIR already set: that folder, emptied as well)."""
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Path(settings.VAR_DIR) / "metrics")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory
