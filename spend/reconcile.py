"""The ledger's invariant: each budget holder's stored spend (a key's, user's, team's, customer's, tag's, a key's on
one model) is the exact sum of its logs since its last budget reset (plus what retention pruned from that period).
The logs are the truth; a stored spend that drifted from them is what gets corrected.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction

from pricing import audit
from pricing.money import exact_sum
from spend.entities import PAYER_BY_KIND, PAYERS, Payer
from spend.models import PrunedSpend, SpendLog
from spend.resets import period_watermarks


@dataclass(frozen=True, slots=True)
class Drift:
    kind: str
    entity_id: str
    stored: Decimal
    expected: Decimal

    @property
    def difference(self) -> Decimal:
        return self.stored - self.expected


def expected_spend(payer: Payer, entity_id: str, watermark: int) -> Decimal:
    """What the logs say this entity's current period cost."""
    logged = payer.logged_cost(SpendLog.objects.filter(id__gt=watermark), entity_id)
    pruned = exact_sum(
        PrunedSpend.objects.filter(kind=payer.kind, entity_id=entity_id, last_log_id__gt=watermark), "cost"
    )
    return logged + pruned


def find_drift() -> list[Drift]:
    """Every entity whose stored spend differs from its logs, read from one consistent snapshot."""
    snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        if snapshot:
            # Calls keep landing while this runs: one snapshot sees each call's log and its charge, or neither.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return [drift for payer in PAYERS for drift in _drift_of(payer)]


def _drift_of(payer: Payer) -> list[Drift]:
    watermarks = period_watermarks(payer)
    drifted = []
    for entity_id, stored in payer.model.objects.order_by(payer.id_field).values_list(payer.id_field, "spend"):
        expected = expected_spend(payer, entity_id, watermarks.get(entity_id, 0))
        if stored != expected:
            drifted.append(Drift(payer.kind, entity_id, stored, expected))
    return drifted


def fix_drift(drift: Drift) -> Drift | None:
    """Set the entity's spend to what its logs say, re-read under its row lock (calls may have landed since)."""
    payer = PAYER_BY_KIND[drift.kind]
    with transaction.atomic():
        entity = payer.model.objects.select_for_update().filter(**payer.lookup(drift.entity_id)).first()
        if entity is None:
            return None
        watermark = period_watermarks(payer, [drift.entity_id]).get(drift.entity_id, 0)
        expected = expected_spend(payer, drift.entity_id, watermark)
        if entity.spend == expected:
            return None
        payer.model.objects.filter(pk=entity.pk).update(spend=expected)
        audit.record_update(payer.model, entity.pk, {"spend": entity.spend}, {"spend": expected})
        return Drift(payer.kind, drift.entity_id, entity.spend, expected)
