import pytest


@pytest.fixture(autouse=True)
def _without_redis(settings):
    # In-process fuzzing needs no Redis (the throttle's Redis counting is tested with its own URL); per-loop
    # Redis clients would otherwise outlive each test's event loop.
    settings.REDIS_URL = ""
