"""GET /metrics: the proxy's counts (gateway.metrics) with the gauges read when scraped, in Prometheus' text format.

To the master key (Bearer), as LiteLLM's, unless TOLLGATE_METRICS_PUBLIC opens it to a scraper on a trusted network.
Under `serve --workers N` (PROMETHEUS_MULTIPROC_DIR set) the answer sums every worker's files, so any worker gives
the whole count; a worker that died (killed, replaced by uvicorn) is forgotten for the gauges that must not outlive
it, while its counts stay in the sums. Budgets left come from the database, as the ledger committed them, and the
spool's depth from its folder: a query and a directory listing per scrape, none per call.
"""

import os
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from gateway import metrics
from gateway.proxy.views import authenticated
from keys.models import Team, VirtualKey
from spend.ledger import SpendEntry
from spend.spool import Spool

_COUNTED = (
    metrics.requests,
    metrics.failures,
    metrics.input_tokens,
    metrics.output_tokens,
    metrics.spend,
    metrics.total_latency,
    metrics.upstream_latency,
    metrics.deployment_failures,
    metrics.in_flight,
)


def _budget_gauges(model, id_field: str, alias_field: str, name: str, labels: list[str]):
    """What each holder of `model` with a max_budget may still spend, and its max_budget (LiteLLM's two gauges)."""
    left = GaugeMetricFamily(f"litellm_remaining_{name}_budget_metric", "USD left this budget period.", labels=labels)
    budget = GaugeMetricFamily(f"litellm_{name}_max_budget_metric", "max_budget in USD.", labels=labels)
    rows = model.objects.filter(max_budget__isnull=False).values_list(id_field, alias_field, "max_budget", "spend")
    for entity_id, alias, max_budget, spent in rows:
        left.add_metric([entity_id, alias], float(max_budget - spent))
        budget.add_metric([entity_id, alias], float(max_budget))
    return left, budget


class ScrapeTimeGauges(Collector):
    """Each key's and team's budget and what is left of it, and the ledger's spool depth."""

    def collect(self):
        yield from _budget_gauges(VirtualKey, "token_hash", "key_alias", "api_key", ["hashed_api_key", "api_key_alias"])
        yield from _budget_gauges(Team, "team_id", "team_alias", "team", ["team", "team_alias"])
        yield GaugeMetricFamily(
            "tollgate_ledger_spool_charges",
            "Charges waiting in the spool for the database to take them.",
            value=Spool(settings.TOLLGATE_SPOOL_DIR, SpendEntry).depth(),
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers(directory: str) -> None:
    """Drop the live gauges (calls in flight) of worker processes that are gone: theirs ended with them."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)


def exposition() -> bytes:
    """Every metric in the text format (a worker thread: it queries the database)."""
    registry = CollectorRegistry(auto_describe=False)
    if getattr(values.ValueClass, "_multiprocess", False):
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        forget_dead_workers(directory)
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        for metric in _COUNTED:
            registry.register(metric)
    registry.register(ScrapeTimeGauges())
    close_old_connections()
    try:
        return generate_latest(registry)
    finally:
        close_old_connections()


async def _scrape(request, caller=None) -> HttpResponse:
    body = await sync_to_async(exposition, thread_sensitive=False)()
    # The text format's version 0.0.4, which every Prometheus reads (the library's latest, 1.0.0, only differs for
    # names outside [a-zA-Z0-9_:], which these are not).
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)


_scrape_as_master = authenticated(master_only=True)(_scrape)


@require_GET
async def metrics_view(request) -> HttpResponse:
    """Prometheus' scrape: the master key's, or anyone's with TOLLGATE_METRICS_PUBLIC."""
    if settings.TOLLGATE_METRICS_PUBLIC:
        return await _scrape(request)
    return await _scrape_as_master(request)
