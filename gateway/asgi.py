"""ASGI entry point: `uvicorn gateway.asgi:application` (what `manage.py serve` runs)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

application = get_asgi_application()
