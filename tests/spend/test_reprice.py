"""manage.py reprice: past calls at today's prices, by key and team; --apply appends adjustments that reconcile."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from gateway.models import Deployment
from pricing import store
from pricing.money import exact_sum
from spend.ledger import write_batch
from spend.models import SpendLog
from spend.reconcile import find_drift
from tests.spend.conftest import DAY, charged_entry

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def priced_calls(payers):
    """Two calls of 1000 + 500 tokens charged at 0.00003 / 0.00006 (0.06 each) on a custom-priced deployment."""
    key = payers[0]
    deployment = Deployment.objects.create(
        model_name="prod-gpt4", litellm_model="openai/gpt-4",
        input_cost_per_token=D("0.00003"), output_cost_per_token=D("0.00006"),
    )  # fmt: skip
    prices = {"input_cost_per_token": "0.00003", "output_cost_per_token": "0.00006"}
    write_batch(
        [
            charged_entry(key, deployment_id=deployment.model_id, prompt_tokens=1000, completion_tokens=500,
                          cost=D("0.06"), prices=prices, pricing_source="custom", start_time=DAY + timedelta(hours=n))
            for n in range(2)
        ]
    )  # fmt: skip
    return deployment, payers


def reprice(*args) -> str:
    out = io.StringIO()
    call_command("reprice", "--since", "2026-03-01", *args, stdout=out)
    return out.getvalue()


def lower_the_price(deployment):
    deployment.input_cost_per_token = D("0.00001")
    deployment.output_cost_per_token = D("0.00002")
    deployment.save()


def test_unchanged_prices_change_nothing(priced_calls):
    assert "0 calls would get an adjustment" in reprice()
    assert "Wrote 0 adjustment rows" in reprice("--apply")
    assert SpendLog.objects.count() == 2


def test_a_dry_run_shows_old_new_and_delta_by_key_and_team_and_writes_nothing(priced_calls):
    deployment, (key, _user, team) = priced_calls
    lower_the_price(deployment)

    text = reprice()

    assert "2 calls would get an adjustment. Nothing was written" in text
    key_row = next(line for line in text.splitlines() if line.startswith(key.key_hint))
    team_row = next(line for line in text.splitlines() if line.startswith("Research"))
    for row in (key_row, team_row):
        assert row.split()[-4:] == ["2", "0.12", "0.04", "-0.08"]
    assert SpendLog.objects.count() == 2
    key.refresh_from_db()
    assert key.spend == D("0.12")


def test_apply_appends_adjustments_that_reconcile(priced_calls):
    deployment, (key, user, team) = priced_calls
    originals = list(SpendLog.objects.order_by("id").values())
    lower_the_price(deployment)

    text = reprice("--apply")

    assert "Wrote 2 adjustment rows; key, user and team spend moved by -0.08." in text
    assert list(SpendLog.objects.exclude(call_type="adjustment").order_by("id").values()) == originals
    adjustments = SpendLog.objects.filter(call_type="adjustment").order_by("id")
    assert [(row.cost, row.metadata["adjusts"], row.metadata["reason"]) for row in adjustments] == [
        (D("-0.04"), original["request_id"], "reprice") for original in originals
    ]
    assert {(row.key_hash, row.user_id, row.team_id) for row in adjustments} == {
        (key.token_hash, user.user_id, team.team_id)
    }
    assert adjustments[0].prices == {"input_cost_per_token": "0.00001", "output_cost_per_token": "0.00002"}
    assert adjustments[0].pricing_source == "custom"
    for payer in (key, user, team):
        payer.refresh_from_db()
        assert payer.spend == D("0.04")
    assert exact_sum(SpendLog.objects.filter(key_hash=key.token_hash), "cost") == D("0.04")
    assert find_drift() == []


def test_applying_twice_charges_nothing_twice(priced_calls):
    deployment, (key, _user, _team) = priced_calls
    lower_the_price(deployment)
    reprice("--apply")

    assert "Wrote 0 adjustment rows" in reprice("--apply")
    deployment.input_cost_per_token = D("0.00003")  # a second change: a second adjustment per call
    deployment.save()
    reprice("--apply")

    key.refresh_from_db()
    assert SpendLog.objects.filter(call_type="adjustment").count() == 4
    assert key.spend == D("0.08")  # 2 × (1000 × 0.00003 + 500 × 0.00002)
    assert find_drift() == []


def test_a_price_from_a_new_cost_map_version_is_applied(payers):
    key = payers[0]
    deployment = Deployment.objects.create(model_name="gpt-4", litellm_model="openai/gpt-4")
    write_batch([charged_entry(key, deployment_id=deployment.model_id, prompt_tokens=1000, completion_tokens=0,
                               cost=D("0.02"), prices={"input_cost_per_token": "0.00002"})])  # fmt: skip

    text = reprice()

    assert store.load_active_cost_map().entries["gpt-4"]["input_cost_per_token"] == D("0.00003")
    assert text.splitlines()[-2].split()[-4:] == ["1", "0.02", "0.03", "0.01"]


def test_calls_without_a_deployment_are_skipped(payers):
    write_batch([charged_entry(payers[0], deployment_id="deleted-deployment")])

    assert "skipped 1: no deployment" in reprice("--apply")
    assert SpendLog.objects.count() == 1
