"""Budget resets: a key's, user's or team's period spend goes back to 0 when its budget_reset_at passes.

Exact across the boundary: the reset locks the entity's row, the same row the ledger locks (and increments)
before writing a call's log. A call is therefore charged either before the reset, to the period that ends, or
after it, to the next one, never to both or neither; the BudgetReset row records which logs were which.
"""

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from keys.budgets import next_reset_at
from keys.models import record_change
from spend.entities import PAYER_BY_KIND, PAYERS, Payer
from spend.models import BudgetReset, SpendLog
from spend.periods import local_zone

logger = logging.getLogger(__name__)


def reset_due_budgets(now: datetime | None = None) -> int:
    """Reset every key, user and team whose budget_reset_at has passed; the number reset."""
    now = now or timezone.now()
    done = 0
    for payer in PAYERS:
        due = payer.model.objects.filter(budget_reset_at__lte=now).order_by("pk").values_list("pk", flat=True)
        done += sum(reset_budget(payer, pk, now) for pk in due)
    return done


def reset_ended_periods(entities, now: datetime | None = None) -> int:
    """Reset the budgets of these (kind, entity id) pairs that are due: what a call does when its caller's period
    has ended, so that periods end on time with or without a scheduler. The number reset."""
    now = now or timezone.now()
    done = 0
    for kind, entity_id in entities:
        payer = PAYER_BY_KIND[kind]
        due = payer.model.objects.filter(**payer.lookup(entity_id), budget_reset_at__lte=now).values_list(
            "pk", flat=True
        )
        done += sum(reset_budget(payer, pk, now) for pk in due)
    return done


def reset_budget(payer: Payer, pk: int, now: datetime) -> bool:
    """End one entity's budget period if it is still due (another worker may have just done it)."""
    with transaction.atomic():
        entity = payer.model.objects.select_for_update().filter(pk=pk, budget_reset_at__lte=now).first()
        if entity is None:
            return False
        # Read under the lock: every log charged to the ending period is committed, none of the next one exists.
        watermark = SpendLog.objects.aggregate(last=Max("id"))["last"] or 0
        following = next_reset_at(now, entity.budget_duration, local_zone()) if entity.budget_duration else None
        BudgetReset.objects.create(
            kind=payer.kind,
            entity_id=getattr(entity, payer.id_field),
            reset_at=now,
            scheduled_at=entity.budget_reset_at,
            next_reset_at=following,
            log_watermark=watermark,
            period_spend=entity.spend,
        )
        new_period = {"spend": 0, "budget_reset_at": following}
        if payer.kind == "key":
            new_period["soft_budget_alerted_at"] = None  # the next period may alert again
        payer.model.objects.filter(pk=pk).update(**new_period)
        # Every server process reloads the entity, so its limits see the new period at once.
        record_change(payer.kind, getattr(entity, payer.id_field), action="budget_reset", actor="reset_budgets")
    logger.info("reset %s %s budget (period spend %s)", payer.kind, getattr(entity, payer.id_field), entity.spend)
    return True


def record_period_start(sender, kind: str, entity_id: str, next_reset_at: datetime | None, **_) -> BudgetReset:
    """A holder whose spend counts from now (a receiver of keys.signals.period_started, inside the transaction that
    made it): its logs are those after the last one committed now, as if its budget had just been reset."""
    return BudgetReset.objects.create(
        kind=kind,
        entity_id=entity_id,
        reset_at=timezone.now(),
        next_reset_at=next_reset_at,
        log_watermark=SpendLog.objects.aggregate(last=Max("id"))["last"] or 0,
        period_spend=0,
    )


def period_watermarks(payer: Payer, entity_ids=None) -> dict[str, int]:
    """Each entity's current period start, as the log id its last reset recorded (entities never reset: absent)."""
    resets = BudgetReset.objects.filter(kind=payer.kind)
    if entity_ids is not None:
        resets = resets.filter(entity_id__in=entity_ids)
    return dict(
        resets.order_by().values("entity_id").annotate(last=Max("log_watermark")).values_list("entity_id", "last")
    )
