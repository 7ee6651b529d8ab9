"""Refreshing the cost map from a URL (a loopback server here): a changed map becomes active with its diff; a broken
one is recorded as failed and the current map stays; an unchanged one records nothing new."""

import threading
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from pricing import store
from pricing.models import CostMapEntry, CostMapVersion
from pricing.tasks import CostMapFetchError, refresh_cost_map
from pricing.versions import store_fetched_map
from tests.pricing.conftest import entry, raw, small_map

D = Decimal
pytestmark = pytest.mark.django_db


def refresh(url: str) -> dict:
    """Run the task as the admin's button does without a broker: eagerly, in this process."""
    return refresh_cost_map.apply(args=[url]).get()


def changed_map() -> dict:
    new = small_map()
    del new["model-00"]  # removed
    new["model-01"] = entry(input_price="0.0000015")  # input price changed
    new["model-02"] = entry(cache_read_input_token_cost=D("0.00000000013"))  # a price added
    new["brand-new"] = entry(input_price="0.00003", output_price="0.00006")  # added
    return new


def active_version() -> CostMapVersion:
    return CostMapVersion.objects.get(status=CostMapVersion.Status.ACTIVE)


def test_a_changed_map_becomes_active_with_its_diff(active_small_map, cost_map_server):
    before = active_version()
    url = cost_map_server.serve("/map.json", raw(changed_map()))

    outcome = refresh(url)

    version = active_version()
    assert outcome == {"result": "activated", "version_id": version.pk, "message": "1 added, 1 removed, 2 changed"}
    assert (version.source, version.entry_count) == (url, 20)
    assert version.diff == {
        "added": ["brand-new"],
        "removed": ["model-00"],
        "changed": {
            "model-01": {"input_cost_per_token": {"old": "0.000001", "new": "0.0000015"}},
            "model-02": {"cache_read_input_token_cost": {"old": None, "new": "0.00000000013"}},
        },
    }
    assert (version.added_count, version.removed_count, version.changed_count) == (1, 1, 2)
    before.refresh_from_db()
    assert before.status == CostMapVersion.Status.SUPERSEDED
    assert set(CostMapEntry.objects.values_list("version", flat=True)) == {version.pk}
    assert CostMapEntry.objects.get(model_name="brand-new").input_per_million == "30"
    cost_map = store.load_active_cost_map()
    assert cost_map.version == store.active_version_label() == version.label
    assert cost_map.entries["model-01"]["input_cost_per_token"] == D("0.0000015")


def test_an_unchanged_map_records_nothing_new(active_small_map, cost_map_server):
    before = active_version()
    url = cost_map_server.serve("/map.json", raw(small_map()))

    outcome = refresh(url)

    assert outcome["result"] == "unchanged"
    assert CostMapVersion.objects.count() == CostMapVersion.objects.filter(pk__lte=before.pk).count()
    after = active_version()
    assert after.pk == before.pk and after.checked_at is not None


def _loses_a_third():
    return raw({name: item for name, item in small_map().items() if name >= "model-07"})


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"model-00": {"litellm_provider": "openai", "input_cost_per_token": 0.1', 200, "not valid JSON"),
        (b"[1, 2, 3]", 200, "not a JSON object"),
        (b"\xff\xfe not text", 200, "not a cost map"),
        (raw({**small_map(), "model-03": entry(input_price="-0.000001")}), 200, "input_cost_per_token is negative"),
        (raw({**small_map(), "model-03": entry(input_price="NaN")}), 200, "NaN is not a number"),
        (_loses_a_third(), 200, "drops 7 of 20 models"),
        (b"{}", 200, "not a non-empty JSON object"),
        (b"gone", 404, "answered HTTP 404"),
        (b"oops", 503, "answered HTTP 503"),
    ],
    ids=["bad-json", "a-list", "not-utf8", "negative-price", "nan-price", "loses-35%", "empty", "http-404", "http-503"],
)
def test_a_broken_map_is_recorded_as_failed_and_the_current_map_stays(
    active_small_map, cost_map_server, body, status, reason
):
    before = active_version()
    label = store.active_version_label()
    url = cost_map_server.serve("/map.json", body, status)

    outcome = refresh(url)

    failed = CostMapVersion.objects.get(status=CostMapVersion.Status.FAILED)
    assert outcome == {"result": "failed", "version_id": failed.pk, "message": failed.failure_reason}
    assert reason in failed.failure_reason
    assert (failed.source, failed.raw_json) == (url, "")
    assert active_version().pk == before.pk
    assert store.active_version_label() == label
    assert sorted(store.load_active_cost_map().entries) == sorted(small_map())


def test_an_unreachable_server_is_recorded_as_failed(active_small_map, cost_map_server):
    url = cost_map_server.serve("/map.json", b"{}")
    cost_map_server.close()

    outcome = refresh(url)

    assert outcome["result"] == "failed"
    assert "could not fetch" in CostMapVersion.objects.get(status="failed").failure_reason


def test_on_a_worker_a_server_error_is_retried_before_it_is_recorded(active_small_map, cost_map_server):
    url = cost_map_server.serve("/map.json", b"oops", 503)

    with pytest.raises(CostMapFetchError):
        refresh_cost_map.run(url)  # as a worker's first attempt: autoretry_for schedules the next one

    assert not CostMapVersion.objects.filter(status="failed").exists()


def test_the_refresh_fetches_cost_map_url_by_default(active_small_map, cost_map_server, settings):
    settings.COST_MAP_URL = cost_map_server.serve("/litellm.json", raw(changed_map()))

    assert refresh_cost_map.apply().get()["result"] == "activated"
    assert cost_map_server.hits == ["/litellm.json"]


def test_the_loss_limit_comes_from_the_settings(active_small_map, cost_map_server, settings):
    settings.COST_MAP_MAX_LOSS_SHARE = 0.5

    assert refresh(cost_map_server.serve("/map.json", _loses_a_third()))["result"] == "activated"


needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (row locks across connections)"
)


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("start", ["one-active", "no-version"])
@pytest.mark.parametrize("same_map", [True, False], ids=["same-map", "different-maps"])
def test_two_refreshes_at_once_leave_exactly_one_active_version(start, same_map):
    CostMapVersion.objects.all().delete()
    if start == "one-active":
        store_fetched_map(raw(small_map()), "test://small", max_loss_share=D(1))
    bodies = [raw(changed_map()), raw(changed_map() if same_map else {**changed_map(), "another": entry()})]
    barrier = threading.Barrier(2)
    outcomes = []

    def worker(body):
        barrier.wait()
        try:
            outcomes.append(store_fetched_map(body, "test://race", max_loss_share=D("0.1")).result)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert CostMapVersion.objects.filter(status=CostMapVersion.Status.ACTIVE).count() == 1
    expected = ["activated", "unchanged"] if same_map else ["activated", "activated"]
    assert sorted(outcomes) == expected
    active = CostMapVersion.objects.get(status=CostMapVersion.Status.ACTIVE)
    assert CostMapEntry.objects.exclude(version=active).count() == 0
    assert CostMapEntry.objects.count() == active.entry_count
