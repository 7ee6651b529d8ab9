"""Spend's periodic work on Celery (beat schedules in settings): small, idempotent, safe on two workers at once.

Each task takes no objects (nothing to go stale in the queue), acknowledges only once done (a worker killed
mid-run leaves the message for another), and retries with backoff when the database is unavailable.
"""

from celery import shared_task
from django.db import DatabaseError

from spend import partitions, resets, retention, rollups

_RETRYING = {
    "acks_late": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(**_RETRYING)
def rollup_spend() -> dict:
    """Bring the daily rollups up to date with the spend logs."""
    run = rollups.rollup_spend()
    return {"last_log_id": run.last_log_id, "days": len(run.recomputed_days) + len(run.added_days)}


@shared_task(**_RETRYING)
def reset_budgets() -> int:
    """Start a new budget period for every key, user and team whose budget_reset_at has passed."""
    return resets.reset_due_budgets()


@shared_task(**_RETRYING)
def prune_spend_logs() -> dict:
    """Remove raw spend logs older than SPEND_LOG_RETENTION_DAYS (rollups are kept): whole days on PostgreSQL."""
    pruned = retention.prune_spend_logs()
    return {"rows": pruned.rows, "partitions": pruned.partitions, "days": [day.isoformat() for day in pruned.days]}


@shared_task(**_RETRYING)
def create_spend_partitions() -> list[str]:
    """PostgreSQL: make the spend log's day partitions up to spend.partitions.AHEAD_DAYS ahead (SQLite: nothing)."""
    return [partition.name for partition in partitions.ensure_partitions()]
