"""The history of a deployment's custom pricing: a revision per change, exact, and nothing when nothing changed."""

from decimal import Decimal

import pytest

from pricing.models import PriceRevision
from pricing.revisions import latest_revision_labels, record_price_revision

pytestmark = pytest.mark.django_db
D = Decimal


def save(prices: dict, base_model: str = "", by: str = "alice"):
    return record_price_revision(
        model_id="dep-1", model_name="prod-gpt4", custom_prices=prices, base_model=base_model, changed_by=by
    )


def test_each_change_is_kept_with_who_made_it():
    assert save({"input_cost_per_token": None}) is None  # no custom pricing yet: nothing to keep
    first = save({"input_cost_per_token": D("0.00002"), "output_cost_per_token": D("0.000040")})
    assert save({"input_cost_per_token": D("0.000020"), "output_cost_per_token": D("0.00004")}) is None
    second = save({"input_cost_per_token": D("0.00000000013")}, by="bob")
    cleared = save({}, base_model="azure/gpt-4-1106-preview", by="carol")

    assert first.prices == {"input_cost_per_token": "0.00002", "output_cost_per_token": "0.00004"}
    assert (second.prices, second.changed_by) == ({"input_cost_per_token": "0.00000000013"}, "bob")
    assert (cleared.prices, cleared.base_model) == ({}, "azure/gpt-4-1106-preview")
    assert list(PriceRevision.objects.values_list("pk", flat=True)) == [cleared.pk, second.pk, first.pk]


def test_latest_revision_labels():
    save({"input_cost_per_token": D("0.00002")})
    latest = save({"input_cost_per_token": D("0.00003")})

    assert latest_revision_labels(["dep-1", "dep-2"]) == {"dep-1": f"revision:{latest.pk}"}
