"""Refreshing the cost map from COST_MAP_URL: Celery beat runs it on a schedule, the admin on demand."""

from decimal import Decimal

import httpx
from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from pricing.audit import acting_as_task
from pricing.versions import record_failure, store_fetched_map

FETCH_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# The real map is ~3 MB; anything far bigger is not a cost map, and must not exhaust a worker's memory.
MAX_COST_MAP_BYTES = 64 * 1024 * 1024


class CostMapFetchError(Exception):
    """The cost map could not be downloaded. ``retryable``: a network error or a server error, worth retrying."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


def fetch_cost_map(url: str) -> bytes:
    """GET the map (following redirects), no more than MAX_COST_MAP_BYTES of it."""
    try:
        with httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=True) as client:
            with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    retryable = response.status_code >= 500 or response.status_code == 429
                    raise CostMapFetchError(f"{url} answered HTTP {response.status_code}", retryable=retryable)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_COST_MAP_BYTES:
                        raise CostMapFetchError(f"{url} sent more than {MAX_COST_MAP_BYTES} bytes", retryable=False)
                return bytes(body)
    except httpx.HTTPError as error:
        raise CostMapFetchError(f"could not fetch {url}: {error.__class__.__name__}: {error}") from error


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(CostMapFetchError, OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=4,
)
def refresh_cost_map(self, url: str | None = None) -> dict:
    """Fetch the cost map, validate it and make it active if it changed. Idempotent: a rerun, or a second worker
    running it at the same moment, finds the map already active and records nothing.

    A network or server error is retried with backoff and recorded as a failed version on the last attempt (at
    once when run eagerly, as the admin's button does without a broker); every other failure is recorded at once.
    """
    source = url or settings.COST_MAP_URL
    try:
        raw = fetch_cost_map(source)
    except CostMapFetchError as error:
        if error.retryable and not self.request.is_eager and self.request.retries < self.max_retries:
            raise
        with acting_as_task("refresh_cost_map"):
            return record_failure(source, str(error)).as_dict()
    with acting_as_task("refresh_cost_map"):  # a new price list is a change to prices: the audit trail keeps it
        return store_fetched_map(raw, source, Decimal(str(settings.COST_MAP_MAX_LOSS_SHARE))).as_dict()
