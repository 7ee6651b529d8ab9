"""The cost map this process prices with: parsed once, swapped whole when a new version is activated."""

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pricing.costmap import load_cost_map, sha256_of

SHIPPED_COST_MAP = Path(__file__).resolve().parent / "data" / "model_prices_and_context_window.json"


@dataclass(frozen=True)
class ActiveCostMap:
    version: str
    entries: dict = field(repr=False)


_lock = threading.Lock()
_active: ActiveCostMap | None = None


def shipped_cost_map() -> tuple[bytes, dict]:
    raw = SHIPPED_COST_MAP.read_bytes()
    return raw, load_cost_map(raw)


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


def activate(version: str, entries: dict) -> ActiveCostMap:
    global _active
    with _lock:
        _active = ActiveCostMap(version=version, entries=entries)
    return _active
