import sys

# httpx's package imports its command-line client (httpx._main), which imports rich, pygments and click, unless that
# import fails: 2.4 MB of a server's resident memory (measured idle, bench start, one worker: 121.4 -> 119.0 MB) for
# a command no process of Tollgate runs. Marked as absent before anything imports httpx (this package comes first
# in every process: manage.py, the ASGI workers, Celery), httpx keeps its stub `main` instead.
sys.modules.setdefault("httpx._main", None)

from gateway.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
