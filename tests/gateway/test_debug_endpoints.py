"""/debug/asyncio-tasks is served only where someone asked for it: DEBUG or TOLLGATE_DEBUG_ENDPOINTS."""

import orjson
import pytest
from django.test import AsyncClient

from tests.e2e.server import MASTER_KEY

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("debug", "debug_endpoints", "status"),
    [(False, False, 404), (False, True, 200), (True, False, 200)],
)
async def test_asyncio_tasks_is_served_only_with_debug_or_its_setting(settings, debug, debug_endpoints, status):
    settings.DEBUG, settings.TOLLGATE_DEBUG_ENDPOINTS = debug, debug_endpoints
    response = await AsyncClient().get("/debug/asyncio-tasks", headers={"Authorization": f"Bearer {MASTER_KEY}"})

    assert response.status_code == status
    if status == 200:
        assert orjson.loads(response.content)["total_active_tasks"] >= 1
