"""The cost map this process prices with: parsed once, swapped whole when a new version is activated."""

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


def active_cost_map() -> ActiveCostMap:
    """The current map; the shipped snapshot until a stored version is activated."""
    global _active
    if _active is None:
        with _lock:
            if _active is None:
                raw, entries = shipped_cost_map()
                _active = ActiveCostMap(version=f"shipped:{sha256_of(raw)[:12]}", entries=entries)
    return _active


def activate(version: str, entries: dict) -> ActiveCostMap:
    global _active
    with _lock:
        _active = ActiveCostMap(version=version, entries=entries)
    return _active
