"""Which cost map is active, as every server process sees it.

The database names the active version; each process polls its label (one tiny query, answered from a cache for
TOLLGATE_SYNC_INTERVAL) and parses a version's raw JSON once, when the label moves. Before any version is stored
(a database flushed by the tests, say), the shipped snapshot is the active map.
"""

import threading
import time

from django.conf import settings
from django.db.models.functions import Substr

from pricing import active
from pricing.active import ActiveCostMap
from pricing.costmap import compact_cost_map
from pricing.models import CostMapVersion, version_label

# libpq keeps its input buffer as large as the largest message the connection has read, for the connection's life:
# the shipped map's 3.2 MB of JSON read in one row left the sync thread's connection 3.1 MB larger (measured).
RAW_JSON_PART = 256 * 1024

_load_lock = threading.Lock()
# (pk, sha256) of the active version, or None for the shipped snapshot; and when it was read (monotonic).
_cached: tuple[tuple[int, str] | None, float] | None = None


def active_version_label() -> str:
    return _label(_active_row())


def load_active_cost_map() -> ActiveCostMap:
    """The active map, read from its stored JSON the first time this process meets its version."""
    row = _active_row()
    label = _label(row)
    current = active.loaded()
    if current is not None and current.version == label:
        return current
    with _load_lock:
        current = active.loaded()
        if current is not None and current.version == label:
            return current
        if row is None:
            return active.activate(label, active.shipped_cost_map()[1])
        raw = _raw_json(row[0])
        if raw is None:
            # Deleted between the two reads (an admin, a flush): read the label again next time.
            forget_active_version()
            return current or active.active_cost_map()
        return active.activate(label, compact_cost_map(raw))


def activate_entries(version: CostMapVersion, entries: dict) -> None:
    """Make ``entries`` (already parsed from ``version``) this process's map without parsing them again."""
    forget_active_version()
    active.activate(version.label, entries)


def forget_active_version() -> None:
    """Read the active version from the database on the next call (after this process activated one)."""
    global _cached
    _cached = None


def _active_row() -> tuple[int, str] | None:
    global _cached
    cached, now = _cached, time.monotonic()
    if cached is not None and now - cached[1] < settings.TOLLGATE_SYNC_INTERVAL:
        return cached[0]
    row = CostMapVersion.objects.filter(status=CostMapVersion.Status.ACTIVE).values_list("pk", "sha256").first()
    _cached = (row, now)
    return row


def _raw_json(pk: int) -> str | None:
    """A stored version's raw JSON, read in parts of RAW_JSON_PART characters; None if the version is gone."""
    parts: list[str] = []
    while True:
        start = len(parts) * RAW_JSON_PART + 1
        part = (
            CostMapVersion.objects.filter(pk=pk)
            .values_list(Substr("raw_json", start, RAW_JSON_PART), flat=True)
            .first()
        )
        if part is None:
            return None
        parts.append(part)
        if len(part) < RAW_JSON_PART:
            return "".join(parts)


def _label(row: tuple[int, str] | None) -> str:
    return active.shipped_label() if row is None else version_label(*row)
