"""Fixtures every test package shares."""

import pytest

from tests.e2e.server import MASTER_KEY


@pytest.fixture(autouse=True)
def _master_key(request):
    # Pure-Python test packages may run without pytest-django (-p no:django); only Django tests need the key.
    if request.config.pluginmanager.hasplugin("django"):
        request.getfixturevalue("settings").TOLLGATE_MASTER_KEY = MASTER_KEY


@pytest.fixture(autouse=True)
def _fresh_process_state(request):
    """Per-process caches and counters start empty in every test: each test has its own database contents."""
    if not request.config.pluginmanager.hasplugin("django"):
        yield
        return
    from gateway.security import reset_auth_failures
    from keys.cache import key_cache
    from keys.limits import local_counters

    for reset in (key_cache().clear, local_counters().clear, reset_auth_failures):
        reset()
    yield
    for reset in (key_cache().clear, local_counters().clear, reset_auth_failures):
        reset()


@pytest.fixture
def master_headers() -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {MASTER_KEY}"}
