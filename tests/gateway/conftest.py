"""In-process proxy tests run without Redis: its shared counters are tested live (tests/e2e) and in tests/keys."""

import pytest


@pytest.fixture(autouse=True)
def _without_redis(settings):
    settings.REDIS_URL = ""
