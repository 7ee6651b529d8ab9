"""The refresh task in a real Celery worker over Redis, against the test database and a loopback cost map server."""

import os

import pytest

from pricing import store
from pricing.models import CostMapVersion
from pricing.tasks import refresh_cost_map
from pricing.versions import store_fetched_map
from tests.polling import wait_until
from tests.pricing.conftest import D, entry, raw, small_map
from tests.spend.test_worker import worker  # noqa: F401  (the spend tests' worker fixture)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a Redis broker)"),
    pytest.mark.django_db(transaction=True),
]


def test_a_real_worker_activates_a_changed_map_and_records_a_broken_one(cost_map_server, worker):  # noqa: F811
    worker_queue, _log = worker
    store_fetched_map(raw(small_map()), "test://small", max_loss_share=D(1))
    changed = {**small_map(), "brand-new": entry()}
    good = cost_map_server.serve("/good.json", raw(changed))
    broken = cost_map_server.serve("/broken.json", b'{"model-00": ')

    refresh_cost_map.apply_async(args=[good], queue=worker_queue)
    wait_until(lambda: CostMapVersion.objects.filter(status="active", source=good).exists(), "the new map active")
    refresh_cost_map.apply_async(args=[broken], queue=worker_queue)
    wait_until(lambda: CostMapVersion.objects.filter(status="failed", source=broken).exists(), "the broken map failed")

    active = CostMapVersion.objects.get(status="active")
    assert active.diff["added"] == ["brand-new"]
    assert store.active_version_label() == active.label  # what every server process polls
    assert "brand-new" in store.load_active_cost_map().entries
