"""Spend set by hand (the management API, the admin) as the ledger sees it: an adjustment row for the difference.

The ledger is append-only and the one source of truth: a stored spend moved by anything but a charge would drift
from its logs, and `reconcile_spend --fix` would undo the edit. So an edit is a row too: call_type `adjustment`,
cost the new spend less the old (negative to lower it), charged to the one entity whose spend was set (a key's edit
moves neither its user's spend nor its team's), written in the edit's own transaction.
"""

import uuid

from django.utils import timezone

from pricing.calculator import format_money
from spend.entities import PAYERS
from spend.models import SpendLog

ADJUSTMENT = "adjustment"
SPEND_SET = "spend set by hand"


def record_spend_set(sender, entity, old, new, **_) -> SpendLog:
    """The adjustment row for one edit (a receiver of keys.signals.spend_set)."""
    payer = next(payer for payer in PAYERS if payer.model is sender)
    now = timezone.now()
    return SpendLog.objects.create(
        request_id=f"adjust-{uuid.uuid4().hex}",
        call_type=ADJUSTMENT,
        requested_model="",
        **{payer.log_field: getattr(entity, payer.id_field)},
        cost=new - old,
        start_time=now,
        end_time=now,
        metadata={"reason": SPEND_SET, "from": format_money(old), "to": format_money(new)},
    )
