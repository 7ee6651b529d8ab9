"""A key's per-model budgets and rate limits (`model_max_budget`, `model_rpm_limit`, `model_tpm_limit`) as the
proxy checks them: one more budget holder per model group the key names, admitted with the key's own limits.

Each is keyed by the model group a call reaches, never the name it asked for (as the models lists are: an alias must
not carry a call past a budget set on its target). Its spend is a `KeyModelSpend` row, made the first time the key
calls that group with a budget set for it (keys.holders.start_model_spend); rate limits alone need no row, since
their counters are per minute.
"""

import logging
from decimal import Decimal

from keys.budgets import InvalidModelBudget, ModelBudget, model_budget, period_of
from keys.caller import Limits
from keys.models import VirtualKey, key_model_id

logger = logging.getLogger(__name__)


def _budget(key: VirtualKey, model: str) -> ModelBudget | None:
    entry = (key.model_max_budget or {}).get(model)
    if entry is None:
        return None
    try:
        return model_budget(entry)
    except InvalidModelBudget as exc:  # the API and the admin refuse these; one written by hand is not enforced
        logger.warning("key %s: model_max_budget for %r is not enforced: %s", key.key_hint, model, exc)
        return None


def model_budget_limit(key: VirtualKey, model: str) -> Decimal | None:
    """The key's budget for `model` in USD (None: none, or one that is not enforced)."""
    budget = _budget(key, model)
    return budget.limit if budget else None


def _count(limits: dict, model: str) -> int | None:
    value = (limits or {}).get(model)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def model_limits(key: VirtualKey, label: str) -> tuple[dict[str, Limits], frozenset[str]]:
    """The key's limits per model group, and the groups with a budget whose spend row does not exist yet (a query for
    the rows only when the key has a per-model budget)."""
    models = {*(key.model_max_budget or {}), *(key.model_rpm_limit or {}), *(key.model_tpm_limit or {})}
    if not models:
        return {}, frozenset()
    spends = {row.model: row for row in key.model_spends.all()} if key.model_max_budget else {}
    limits, unstarted = {}, set()
    for model in models:
        budget, row = _budget(key, model), spends.get(model)
        if budget is not None and row is None:
            unstarted.add(model)
        limits[model] = Limits(
            kind="keymodel",
            entity_id=key_model_id(key.token_hash, model),
            label=f"{label} on model {model}",
            max_budget=budget.limit if budget else None,
            spend=row.spend if row else Decimal(0),
            period=period_of(row.budget_reset_at) if row else 0,
            epoch=row.spend_epoch if row else 0,
            rpm_limit=_count(key.model_rpm_limit, model),
            tpm_limit=_count(key.model_tpm_limit, model),
        )
    return limits, frozenset(unstarted)
