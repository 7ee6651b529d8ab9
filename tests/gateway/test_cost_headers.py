"""The cost headers of a call are the amounts its spend log keeps, part by part."""

import pytest

from spend.models import SpendLog
from tests.gateway.test_proxy_requests import CHAT, mock_deployment, post  # noqa: F401 -- the fixture

pytestmark = pytest.mark.django_db(transaction=True)

PARTS = {"": "total", "-input": "input", "-output": "output", "-cache-read": "cache_read"}


async def test_each_cost_header_is_the_logged_breakdown_part(mock_deployment):  # noqa: F811
    response = await post("/v1/chat/completions", CHAT)

    assert response.status_code == 200
    log = await SpendLog.objects.aget()
    assert log.cost_breakdown["input"] != log.cost_breakdown["output"]
    for suffix, part in PARTS.items():
        assert response[f"x-litellm-response-cost{suffix}"] == log.cost_breakdown[part]
    assert response["x-litellm-response-cost-cache-creation"] == log.cost_breakdown["cache_creation"]
