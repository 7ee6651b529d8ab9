"""Health endpoints: liveliness always, readiness checks the database and Redis, /health is for the master key."""

import orjson
import pytest
from django.test import AsyncClient

from gateway.models import Deployment
from tests.e2e.server import MASTER_KEY

pytestmark = pytest.mark.django_db(transaction=True)


async def test_liveliness_needs_nothing():
    response = await AsyncClient().get("/health/liveliness")

    assert response.status_code == 200


async def test_readiness_reports_database_and_cache(settings):
    settings.REDIS_URL = ""
    response = await AsyncClient().get("/health/readiness")

    assert response.status_code == 200
    assert orjson.loads(response.content) == {"status": "healthy", "db": "connected", "cache": "in-process"}


async def test_readiness_fails_when_redis_is_unreachable(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = await AsyncClient().get("/health/readiness")

    assert response.status_code == 503
    assert orjson.loads(response.content)["cache"] == "unreachable"


async def test_health_lists_deployments_for_the_master_key_only():
    await Deployment.objects.acreate(model_id="h-1", model_name="demo", litellm_model="mock/demo")

    listed = await AsyncClient().get("/health", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    refused = await AsyncClient().get("/health")

    assert orjson.loads(listed.content)["healthy_endpoints"][0]["model_id"] == "h-1"
    assert refused.status_code == 401
