"""Fixtures every test package shares."""

import pytest
from django.db import connection

from tests import secrets_audit
from tests.e2e.server import MASTER_KEY


def pytest_configure(config):
    # Fails the run if a secret a test used reaches a log or an error body; `-p no:secrets_audit` turns it off.
    config.pluginmanager.register(secrets_audit, "secrets_audit")
    if config.pluginmanager.hasplugin("django"):
        # What `manage.py setup` makes (the folder of the test database, the embedded secret key), so that pytest
        # also runs in a clean clone: settings only name them.
        from gateway.local_files import prepare_local_files

        prepare_local_files()


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
    from django.conf import settings

    from gateway.proxy.state import close_states
    from keys.cache import key_cache
    from keys.limits import local_counters
    from keys.throttle import forget_shared_auth_failures, reset_auth_failures
    from spend.ledger import close_ledgers
    from spend.log_rows import forget_written_prices

    def reset():
        key_cache().clear()
        local_counters().clear()
        reset_auth_failures()
        forget_written_prices()  # the rows of the prices this process wrote went with the test's database
        if settings.REDIS_URL:
            forget_shared_auth_failures(settings.REDIS_URL)

    reset()
    yield
    # Each test runs its own event loop, with its own ledger and sync threads: close their connections too.
    close_states()
    close_ledgers()
    reset()


@pytest.fixture(scope="session", autouse=True)
def _own_spool_directory(tmp_path_factory, request):
    """The spool and the spend journal of this test run, not the repository's var/: a journal another run left
    there (killed) would be charged into this run's database."""
    if not request.config.pluginmanager.hasplugin("django"):
        return
    from django.conf import settings

    settings.TOLLGATE_SPOOL_DIR = tmp_path_factory.mktemp("spool")


@pytest.fixture
def master_headers() -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="session", autouse=True)
def _end_stray_database_sessions(django_db_setup, django_db_blocker):
    """Async views leave connections open in worker threads; on PostgreSQL they would stop the test database
    from being dropped at the end of the run. End them just before pytest-django drops it."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    connection.close()
