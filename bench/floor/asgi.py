"""`uvicorn bench.floor.asgi:application --loop uvloop --http httptools` (bench/run.py starts it)."""

import os

from django.core.asgi import get_asgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.floor.settings"

application = get_asgi_application()
