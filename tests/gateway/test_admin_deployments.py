"""The deployment admin: custom prices entered and shown per 1M tokens and stored per token exactly, and a
deployment's page saying what it charges, where that price comes from, and its model group's recent volume."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from gateway.models import Deployment
from pricing import store
from spend.ledger import write_batch
from tests.spend.conftest import make_entry

pytestmark = pytest.mark.django_db

FORM = {
    "model_name": "negotiated",
    "litellm_model": "openai/gpt-4o",
    "model_id": "negotiated-1",
    "enabled": "on",
    "source": "admin",
    "extra_params": "{}",
    "extra_pricing": "{}",
    "model_info": "{}",
}


def _add(admin_client, **prices):
    return admin_client.post(reverse("admin:gateway_deployment_add"), {**FORM, **prices})


def test_a_price_entered_per_1m_tokens_is_stored_per_token_exactly(admin_client):
    response = _add(admin_client, input_cost_per_token="2.5", output_cost_per_token="0.0003", input_cost_per_second="")

    assert response.status_code == 302, response.content.decode()[:3000]
    deployment = Deployment.objects.get(model_id="negotiated-1")
    assert (deployment.input_cost_per_token, deployment.output_cost_per_token) == (
        Decimal("0.0000025"),
        Decimal("3E-10"),
    )
    page = admin_client.get(reverse("admin:gateway_deployment_change", args=[deployment.pk])).content.decode()
    assert 'name="input_cost_per_token" value="2.5"' in page
    assert 'name="output_cost_per_token" value="0.0003"' in page


def test_a_per_second_price_is_entered_per_second(admin_client):
    assert _add(admin_client, input_cost_per_second="0.0001").status_code == 302

    assert Deployment.objects.get(model_id="negotiated-1").input_cost_per_second == Decimal("0.0001")


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("input_cost_per_token", "-1", "A price cannot be negative."),
        ("input_cost_per_token", "1000000", "this is not a plausible price"),
        ("input_cost_per_token", "2,5", "Enter a number."),
    ],
)
def test_a_bad_price_is_a_field_error(admin_client, field, value, error):
    response = _add(admin_client, **{field: value})

    assert response.status_code == 200
    assert error in str(response.context["adminform"].form.errors[field])
    assert not Deployment.objects.filter(model_id="negotiated-1").exists()


def test_the_deployment_page_says_what_it_charges_and_its_volume(admin_client):
    deployment = Deployment.objects.create(model_name="gpt-4o", litellm_model="openai/gpt-4o")
    now = timezone.now()
    write_batch([make_entry(model_group="gpt-4o", start_time=now, cost=Decimal("1.25")) for _ in range(3)])
    write_batch([make_entry(model_group="other", start_time=now, cost=Decimal("7"))])

    page = admin_client.get(reverse("admin:gateway_deployment_change", args=[deployment.pk])).content.decode()

    version = store.load_active_cost_map().version
    assert "the cost map (gpt-4o)" in page and version in page
    # gpt-4o's map prices: USD 2.50 and 10 per 1M tokens in, out; cached input 1.25.
    assert '<span class="money" title="0.0000025 per token">$2.50</span> / 1M tokens' in page
    assert '<span class="money" title="0.00000125 per token">$1.25</span> / 1M tokens' in page
    assert '3 calls, <span class="money" title="3.75">$3.75</span> in the model group gpt-4o' in page


def test_custom_prices_are_named_as_the_source(admin_client):
    deployment = Deployment.objects.create(
        model_name="gpt-4o", litellm_model="openai/gpt-4o", input_cost_per_token=Decimal("0.000001")
    )

    page = admin_client.get(reverse("admin:gateway_deployment_change", args=[deployment.pk])).content.decode()

    assert "charged at</th><td>custom" in page
    assert '<span class="money" title="0.000001 per token">$1.00</span> / 1M tokens' in page
