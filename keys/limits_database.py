"""Budgets counted by the database while Redis is unreachable: every server process still admits against one truth.

Redis's counters are shared by the processes; without them each process would count alone, and N processes could
spend N budgets (seen: a budget covering 20 calls admitted 40 with two workers). So while Redis is down, budgets
are admitted by the database, in one transaction per call: the payers' rows are locked (key, user, team: the
order the ledger locks them in), their stored spend is the ledger's own, and the reservations of calls in flight
are rows of `Reservation`, leased by their process. A call settles after its spend log commits (never before: in
between, neither its reservation nor its cost would be counted), by deleting its reservations.

Rate limits (rpm, tpm, parallel requests) stay in this process's counters meanwhile, as documented: per process.
Processes that used the database tell Redis, once it is back, to forget the views of what they charged meanwhile,
so those views are made again from the database.
"""

import threading
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from keys.cache import key_cache
from keys.counting import Verdict
from keys.limits_local import LocalCounters
from keys.models import BUDGET_HOLDERS, Reservation

_ZERO = Decimal(0)


class DatabaseBudgets:
    """Budgets in the database, rates in this process: the backend while Redis is unreachable."""

    settles_after_commit = True

    def __init__(self, owner: str, rates: LocalCounters):
        self.owner = owner
        self.rates = rates
        self._lock = threading.Lock()
        self.charged: set[tuple[str, str]] = set()  # entities settled here: Redis's views of them are stale
        self.leased = 0  # this process's reservations in the database

    async def available(self) -> bool:
        return True

    async def admit(self, admission, now: float) -> Verdict:
        verdict = await self.rates.admit(admission, now, budgets=False)
        if verdict.refused:
            return verdict
        budgets = [check for check in admission.checks if check.limits.max_budget is not None]
        if not budgets:
            return verdict
        refusal = await key_cache().run(self._reserve, admission.admission_id, budgets)
        if refusal is not None:
            await self.rates.settle(admission, _ZERO, -admission.estimated_tokens)
            return refusal
        with self._lock:
            self.leased += len(budgets)
        return verdict

    def _reserve(self, admission_id: str, budgets) -> Verdict | None:
        now = timezone.now()
        with transaction.atomic():
            rows = {}
            for kind in BUDGET_HOLDERS:  # lock order: the ledger's
                model, id_field = BUDGET_HOLDERS[kind]
                wanted = [check.limits.entity_id for check in budgets if check.limits.kind == kind]
                if wanted:
                    locked = model.objects.select_for_update().filter(**{f"{id_field}__in": wanted}).order_by("pk")
                    rows.update({(kind, getattr(row, id_field)): row for row in locked})
            for index, check in enumerate(budgets):
                limits = check.limits
                row = rows.get((limits.kind, limits.entity_id))
                spend = row.spend if row is not None else limits.spend
                reserved = (
                    Reservation.objects.filter(
                        kind=limits.kind, entity_id=limits.entity_id, expires_at__gt=now
                    ).aggregate(total=Sum("amount"))["total"]
                    or _ZERO
                )
                budget = limits.max_budget
                if spend >= budget or spend + reserved + check.worst_case_cost > budget:
                    return Verdict("budget", index, [spend], reserved)
            Reservation.objects.bulk_create(
                Reservation(
                    kind=check.limits.kind,
                    entity_id=check.limits.entity_id,
                    admission_id=admission_id,
                    amount=check.worst_case_cost,
                    owner=self.owner,
                    expires_at=now + timedelta(seconds=settings.TOLLGATE_LEASE_SECONDS),
                )
                for check in budgets
            )
        return None

    async def settle(self, admission, actual_cost: Decimal, token_delta: int) -> list[Decimal | None]:
        spends = await self.rates.settle(admission, actual_cost, token_delta)
        budgets = [check for check in admission.checks if check.limits.max_budget is not None]
        if budgets:
            await key_cache().run(self._release, admission.admission_id)
            with self._lock:
                self.leased -= len(budgets)
                if actual_cost:
                    self.charged.update((check.limits.kind, check.limits.entity_id) for check in admission.checks)
        return spends

    @staticmethod
    def _release(admission_id: str) -> None:
        Reservation.objects.filter(admission_id=admission_id).delete()

    def renew(self) -> None:
        """Keep this process's reservations held, and drop the lapsed ones of processes that died (the sync loop,
        while this process holds any: admissions read only unexpired rows either way)."""
        if not self.leased:
            return
        now = timezone.now()
        Reservation.objects.filter(owner=self.owner).update(
            expires_at=now + timedelta(seconds=settings.TOLLGATE_LEASE_SECONDS)
        )
        Reservation.objects.filter(expires_at__lt=now - timedelta(minutes=1)).delete()

    def take_charged(self) -> set[tuple[str, str]]:
        with self._lock:
            charged, self.charged = self.charged, set()
        return charged

    async def claim_alert(self, limits, event: str) -> bool:
        return await self.rates.claim_alert(limits, event)
