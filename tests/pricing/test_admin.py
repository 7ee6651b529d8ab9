"""The pricing admin as a superuser sees it: entries with search and filters, versions with diffs, refresh now,
and the price history, read-only."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from pricing.models import CostMapVersion, PriceRevision
from pricing.tasks import refresh_cost_map
from pricing.versions import store_fetched_map
from tests.pricing.conftest import D, entry, raw, small_map

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "a-long-test-pass-1"))
    return client


@pytest.fixture
def eager(monkeypatch):
    """The button runs the task in-process, as it does without a broker."""
    monkeypatch.setitem(refresh_cost_map.app.conf, "task_always_eager", True)


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ({"q": "gpt-4o-mini"}, [b"gpt-4o-mini", b"$0.15", b"$0.6"], [b"claude-haiku-4-5"]),
        (
            {"provider": "anthropic", "mode": "chat", "q": "haiku"},
            [b"claude-haiku-4-5-20251001"],
            [b"gpt-4o-mini", b"heroku/claude-3-5-haiku"],
        ),
        ({"q": "gpt-4", "o": "-4"}, [b"gpt-4-32k", b"$120"], []),
    ],
    ids=["search", "filters", "sorted-by-input-price"],
)
def test_cost_map_entries_list(staff, django_assert_max_num_queries, query, shown, hidden):
    with django_assert_max_num_queries(12):
        page = staff.get(reverse("admin:pricing_costmapentry_changelist"), query)

    assert page.status_code == 200
    for text in shown:
        assert text in page.content
    for text in hidden:
        assert text not in page.content


def test_cost_map_entry_page_opens_read_only(staff):
    version = CostMapVersion.objects.get(status="active")
    pk = version.entries.get(model_name="gpt-4").pk

    page = staff.get(reverse("admin:pricing_costmapentry_change", args=[pk]))

    assert page.status_code == 200
    assert b"$30" in page.content and b'name="_save"' not in page.content


def test_a_version_page_shows_its_diff_and_the_raw_map(staff):
    store_fetched_map(raw(small_map()), "test://small", max_loss_share=D(1))
    changed = {**small_map(), "model-01": entry(input_price="0.0000015"), "brand-new": entry()}
    store_fetched_map(raw(changed), "test://changed", max_loss_share=D("0.1"))
    version = CostMapVersion.objects.get(status="active")

    listing = staff.get(reverse("admin:pricing_costmapversion_changelist"))
    page = staff.get(reverse("admin:pricing_costmapversion_change", args=[version.pk]))
    download = staff.get(reverse("admin:pricing_costmapversion_raw", args=[version.pk]))

    assert listing.status_code == page.status_code == download.status_code == 200
    assert b"Refresh now" in listing.content
    for text in (b"brand-new", b"model-01", b"input_cost_per_token", b"0.000001", b"0.0000015"):
        assert text in page.content
    assert download.content == raw(changed)


def test_refresh_now_runs_the_refresh(staff, eager, cost_map_server, settings):
    store_fetched_map(raw(small_map()), "test://small", max_loss_share=D(1))
    settings.COST_MAP_URL = cost_map_server.serve("/map.json", raw({**small_map(), "brand-new": entry()}))

    response = staff.post(reverse("admin:pricing_costmapversion_refresh"), follow=True)

    assert response.status_code == 200
    assert b"Cost map refresh: activated. 1 added, 0 removed, 0 changed" in response.content
    assert CostMapVersion.objects.get(status="active").source == settings.COST_MAP_URL


def test_refresh_now_reports_a_failure(staff, eager, cost_map_server, settings):
    settings.COST_MAP_URL = cost_map_server.serve("/map.json", b"not json")

    response = staff.post(reverse("admin:pricing_costmapversion_refresh"), follow=True)

    assert b"Cost map refresh: failed" in response.content
    assert CostMapVersion.objects.filter(status="failed").count() == 1


def test_refresh_now_is_a_post(staff):
    assert staff.get(reverse("admin:pricing_costmapversion_refresh")).status_code == 405


def test_refresh_now_needs_permission(client):
    user = get_user_model().objects.create_user("viewer", password="a-long-test-pass-1", is_staff=True)
    client.force_login(user)

    assert client.post(reverse("admin:pricing_costmapversion_refresh")).status_code == 403


def test_price_revisions_are_read_only(staff):
    revision = PriceRevision.objects.create(
        model_id="dep-1", model_name="prod-gpt4", prices={"input_cost_per_token": "0.00002"}, changed_by="alice"
    )

    listing = staff.get(reverse("admin:pricing_pricerevision_changelist"))
    page = staff.get(reverse("admin:pricing_pricerevision_change", args=[revision.pk]))

    assert listing.status_code == page.status_code == 200
    assert (
        b'input_cost_per_token: <span class="money" title="0.00002 per token">$20.00</span> / 1M tokens'
        in listing.content
    )
    assert b'name="_save"' not in page.content
    assert staff.get(reverse("admin:pricing_pricerevision_add")).status_code == 403
