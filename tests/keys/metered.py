"""A deployment whose calls cost a known, fixed amount, and a call to it with a key: for the tests of budgets held
through whole calls."""

from decimal import Decimal

import orjson
import pytest
from django.test import AsyncClient

from gateway.models import Deployment

# "metered" costs exactly 0.01 USD per completion token and nothing for input; the mock answers 10 tokens, so a
# call with max_tokens 10 reserves 0.1 and is charged 0.1.
METERED = {"model": "metered", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 10}


@pytest.fixture
def metered(db):
    return Deployment.objects.create(
        model_id="metered-1",
        model_name="metered",
        litellm_model="mock/metered",
        input_cost_per_token=Decimal(0),
        output_cost_per_token=Decimal("0.01"),
    )


async def chat(raw_key: str, body=None):
    """A chat call through the gateway with `raw_key` (METERED unless `body` is given)."""
    return await AsyncClient().post(
        "/v1/chat/completions",
        orjson.dumps(body or METERED),
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw_key}"},
    )
