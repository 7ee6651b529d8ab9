"""The cost map this process prices with: read once, swapped whole when a new version is activated, and held compactly
(pricing.costmap.CompactCostMap): a server keeps it for its whole life, and reads only its deployments' entries."""

import functools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pricing.costmap import CompactCostMap, compact_cost_map, sha256_of

SHIPPED_COST_MAP = Path(__file__).resolve().parent / "data" / "model_prices_and_context_window.json"


@dataclass(frozen=True)
class ActiveCostMap:
    version: str
    entries: Mapping[str, dict] = field(repr=False)


_lock = threading.Lock()
_active: ActiveCostMap | None = None


def shipped_cost_map() -> tuple[bytes, CompactCostMap]:
    raw = SHIPPED_COST_MAP.read_bytes()
    return raw, compact_cost_map(raw)


@functools.cache
def shipped_label() -> str:
    """The version name of the shipped snapshot (hashing it is cheap; parsing it is not)."""
    return f"shipped:{sha256_of(SHIPPED_COST_MAP.read_bytes())[:12]}"


def active_cost_map() -> ActiveCostMap:
    """The current map; the shipped snapshot until a stored version is activated."""
    global _active
    if _active is None:
        with _lock:
            if _active is None:
                _active = ActiveCostMap(version=shipped_label(), entries=shipped_cost_map()[1])
    return _active


def loaded() -> ActiveCostMap | None:
    """The map this process has activated, if any, without loading one."""
    return _active


def activate(version: str, entries: Mapping[str, dict]) -> ActiveCostMap:
    """Make ``entries`` this process's map, held compactly (a parsed dict is written compactly first)."""
    global _active
    if not isinstance(entries, CompactCostMap):
        entries = CompactCostMap(entries)
    with _lock:
        _active = ActiveCostMap(version=version, entries=entries)
    return _active
