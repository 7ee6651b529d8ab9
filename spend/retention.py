"""Retention: raw spend logs older than settings.SPEND_LOG_RETENTION_DAYS are deleted; the daily rollups stay.

Only logs the rollup has already counted are deleted, under the rollup's lock. The cost of deleted logs that still
belong to an entity's current budget period is kept as PrunedSpend, so ``reconcile_spend`` still balances.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from spend.entities import PAYERS
from spend.models import PrunedSpend, RollupState, SpendLog
from spend.periods import day_bounds, retention_horizon
from spend.resets import period_watermarks
from spend.rollups import rollup_state

_BATCH = 5000


def prune_spend_logs(now: datetime | None = None, batch_size: int = _BATCH) -> int:
    """Delete rolled-up logs from before the retention horizon, in batches; the number deleted."""
    horizon = retention_horizon(now or timezone.now())
    if horizon is None:
        return 0
    cutoff, _ = day_bounds(horizon)
    rollup_state()
    deleted = 0
    while True:
        with transaction.atomic():
            rolled_up = RollupState.objects.select_for_update().get(pk=1).last_log_id
            logs = list(
                SpendLog.objects.filter(start_time__lt=cutoff, id__lte=rolled_up)
                .order_by("id")
                .values("id", "cost", *{field for payer in PAYERS for field in payer.log_fields})[:batch_size]
            )
            if not logs:
                return deleted
            _keep_period_totals(logs)
            SpendLog.objects.filter(id__in=[log["id"] for log in logs]).delete()
            deleted += len(logs)


def _keep_period_totals(logs: list[dict]) -> None:
    carried = []
    for payer in PAYERS:
        entity_ids = payer.holders_among(set().union(*(payer.ids_in(log) for log in logs)))
        watermarks = period_watermarks(payer, entity_ids)
        totals: dict[str, PrunedSpend] = {}
        for log in logs:
            for entity_id in payer.ids_in(log) & entity_ids:
                if log["id"] <= watermarks.get(entity_id, 0):
                    continue
                carry = totals.get(entity_id)
                if carry is None:
                    carry = totals[entity_id] = PrunedSpend(
                        kind=payer.kind, entity_id=entity_id, last_log_id=0, cost=0, requests=0
                    )
                carry.cost += log["cost"]
                carry.requests += 1
                carry.last_log_id = max(carry.last_log_id, log["id"])
        carried.extend(totals.values())
    PrunedSpend.objects.bulk_create(carried)
