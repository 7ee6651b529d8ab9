"""Which cost map is active, as every server process sees it."""

from pricing.active import ActiveCostMap, active_cost_map


def active_version_label() -> str:
    return active_cost_map().version


def load_active_cost_map() -> ActiveCostMap:
    return active_cost_map()
