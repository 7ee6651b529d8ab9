"""In-process proxy tests run without Redis: its shared counters are tested live (tests/e2e) and in tests/keys."""

import pytest

from gateway.proxy.upstream import close_upstream_pool
from tests.fakes.upstream import FakeUpstream


@pytest.fixture(autouse=True)
def _without_redis(settings):
    settings.REDIS_URL = ""


@pytest.fixture
async def upstream():
    """A fake upstream on loopback for the test (a module may define its own, set up differently)."""
    async with FakeUpstream() as up:
        yield up
    await close_upstream_pool()  # the gateway's pool on this test's event loop
