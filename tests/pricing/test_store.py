"""The active cost map as every process sees it: the shipped snapshot first, a stored version once activated."""

from decimal import Decimal

import pytest

from pricing import active, store
from pricing.costmap import CompactCostMap
from pricing.models import CostMapEntry, CostMapVersion
from pricing.versions import install_shipped_version, store_fetched_map
from tests.pricing.conftest import entry, raw, small_map

pytestmark = pytest.mark.django_db
SHIPPED_SHA256 = "8f8060d8ce7a40c91b995c74d6a27657543d49e3c1c53430dabd556f244392c6"


def test_first_migrate_makes_the_shipped_snapshot_the_active_version():
    version = CostMapVersion.objects.get(status=CostMapVersion.Status.ACTIVE)

    assert (version.source, version.sha256, version.entry_count) == ("shipped", SHIPPED_SHA256, 4551)
    assert CostMapEntry.objects.filter(version=version).count() == 4551
    gpt4 = CostMapEntry.objects.get(model_name="gpt-4")
    assert (gpt4.provider, gpt4.mode, gpt4.input_per_million, gpt4.output_per_million) == ("openai", "chat", "30", "60")
    assert gpt4.entry["input_cost_per_token"] == "0.00003"
    assert store.active_version_label() == version.label == f"cost-map:{version.pk}@{SHIPPED_SHA256[:12]}"


def test_installing_the_shipped_snapshot_again_changes_nothing():
    assert install_shipped_version() is False
    assert CostMapVersion.objects.count() == 1


def test_the_smallest_price_keeps_every_digit_in_the_listing():
    cheapest = CostMapEntry.objects.get(model_name="fireworks_ai/accounts/fireworks/models/SSD-1B")
    assert (cheapest.entry["input_cost_per_token"], cheapest.input_per_million) == ("0.00000000013", "0.00013")


def test_active_map_is_parsed_from_the_stored_version():
    cost_map = store.load_active_cost_map()

    assert cost_map.version == store.active_version_label()
    assert len(cost_map.entries) == 4551
    assert cost_map.entries["gpt-4"]["input_cost_per_token"] == Decimal("0.00003")


def test_without_any_stored_version_the_shipped_file_is_the_map():
    CostMapVersion.objects.all().delete()
    store.forget_active_version()

    assert store.active_version_label() == active.shipped_label() == f"shipped:{SHIPPED_SHA256[:12]}"
    assert len(store.load_active_cost_map().entries) == 4551


def test_a_new_active_version_swaps_the_whole_map_in():
    before = store.load_active_cost_map()
    store_fetched_map(raw(small_map()), "test://small", max_loss_share=Decimal(1))

    after = store.load_active_cost_map()
    assert after.version != before.version
    assert after.version == store.active_version_label()
    assert sorted(after.entries) == sorted(small_map())
    assert "gpt-4" in before.entries  # a request holding the old map keeps a whole, consistent one


def test_a_version_activated_by_another_process_is_parsed_once(django_assert_num_queries):
    other = CostMapVersion.objects.create(
        sha256="f" * 64,
        source="test://other",
        status=CostMapVersion.Status.SUPERSEDED,
        raw_json=raw({"m": entry()}).decode(),
    )
    CostMapVersion.objects.filter(status=CostMapVersion.Status.ACTIVE).update(status="superseded")
    CostMapVersion.objects.filter(pk=other.pk).update(status=CostMapVersion.Status.ACTIVE)

    with django_assert_num_queries(2):  # the label, then the raw JSON
        first = store.load_active_cost_map()
    with django_assert_num_queries(1):  # only the label: the map is already parsed
        again = store.load_active_cost_map()
    assert again is first
    assert first.version == f"cost-map:{other.pk}@ffffffffffff"
    assert list(first.entries) == ["m"]


def test_the_label_is_cached_for_the_sync_interval(settings, django_assert_num_queries):
    settings.TOLLGATE_SYNC_INTERVAL = 60
    with django_assert_num_queries(1):
        labels = {store.active_version_label() for _ in range(100)}
    assert len(labels) == 1


def _refreshed_here():
    store_fetched_map(raw(small_map()), "test://small", max_loss_share=Decimal(1))  # activated from the parsed dict


@pytest.mark.parametrize(
    ("make_active", "model", "price"),
    [
        (lambda: CostMapVersion.objects.all().delete(), "gpt-4", "0.00003"),  # the shipped file
        (lambda: None, "gpt-4", "0.00003"),  # the stored version the migration made
        (_refreshed_here, "model-00", "0.000001"),
    ],
    ids=["shipped", "stored", "refreshed"],
)
def test_the_active_map_is_held_compactly_however_it_became_active(make_active, model, price):
    make_active()
    store.forget_active_version()

    entries = store.load_active_cost_map().entries

    assert isinstance(entries, CompactCostMap)
    assert entries[model]["input_cost_per_token"] == Decimal(price)


@pytest.mark.parametrize("extra", [0, 1], ids=["exact-parts", "a-shorter-last-part"])
def test_a_stored_map_is_read_in_parts_so_no_read_holds_the_whole_json(monkeypatch, extra, django_assert_num_queries):
    monkeypatch.setattr(store, "RAW_JSON_PART", 64)
    text = raw({f"model-{index}": entry() for index in range(3)}).decode()
    text += " " * (-len(text) % 64 + extra)  # JSON may end in spaces
    # A label of its own: on SQLite a case may get the primary key of the one before back, after its rollback.
    other = CostMapVersion.objects.create(sha256=f"{extra}" * 64, source="test://parts", raw_json=text)
    CostMapVersion.objects.filter(status=CostMapVersion.Status.ACTIVE).update(status="superseded")
    CostMapVersion.objects.filter(pk=other.pk).update(status=CostMapVersion.Status.ACTIVE)

    # The label, then a query per part; a last part shorter than the others (or empty) ends the read.
    with django_assert_num_queries(1 + len(text) // 64 + 1):
        cost_map = store.load_active_cost_map()

    assert list(cost_map.entries) == ["model-0", "model-1", "model-2"]
    assert cost_map.entries["model-2"] == entry()
