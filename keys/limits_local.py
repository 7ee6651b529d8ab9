"""Budget and rate counters in this process: the backend without Redis, and the fallback while Redis is down.

Admitting is synchronous code between two awaits, so on one event loop it is atomic; a lock keeps it so when the
management API reads live spend from another thread.
"""

import asyncio
import hashlib
import os
import threading
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from keys.caller import Limits
from keys.counting import Verdict, rate_refusal, reservation_seconds

_ZERO = Decimal(0)


class _Counters:
    __slots__ = ("period", "epoch", "spend", "reservations", "minute", "requests", "tokens")

    def __init__(self, period: int, epoch: int, spend: Decimal):
        self.period = period
        self.epoch = epoch
        self.spend = spend
        self.reservations: dict[str, tuple[Decimal, float]] = {}  # admission id -> (reserved cost, deadline)
        self.minute = 0
        self.requests = 0
        self.tokens = 0


class LocalCounters:
    def __init__(self):
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], _Counters] = {}
        self._alerted: set[tuple[str, str, str, int]] = set()  # claims this process made or found taken

    async def available(self) -> bool:
        return True

    def _view(self, limits: Limits) -> _Counters:
        """The entity's counters, starting from the database's spend when first seen, or when the period or the
        epoch (spend set by hand) is newer.

        Within a period and epoch only settled calls move the view: a seed read between a call's commit and its
        settle already holds that call, so taking it would count the call twice."""
        counters = self._counters.get((limits.kind, limits.entity_id))
        if counters is None or (limits.period, limits.epoch) > (counters.period, counters.epoch):
            kept = counters.reservations if counters else {}
            counters = _Counters(limits.period, limits.epoch, limits.spend)
            self._counters[(limits.kind, limits.entity_id)] = counters
            counters.reservations = kept
        return counters

    def live_spend(self, limits: Limits) -> Decimal:
        """The view's spend if it is as new as `limits`, else the database's (a read makes no view)."""
        with self._lock:
            counters = self._counters.get((limits.kind, limits.entity_id))
            if counters is None or (limits.period, limits.epoch) > (counters.period, counters.epoch):
                return limits.spend
            return counters.spend if counters.period == limits.period else limits.spend

    async def admit(self, admission, now: float, budgets: bool = True):
        """Admit against these counters; with `budgets` False, rate limits only (the database holds budgets)."""
        with self._lock:
            views = [self._view(check.limits) for check in admission.checks]
            verdict = Verdict()
            for index, (check, counters) in enumerate(zip(admission.checks, views, strict=True)):
                limits = check.limits
                for reservation_id, (_, deadline) in list(counters.reservations.items()):
                    if deadline < now:
                        del counters.reservations[reservation_id]
                if counters.minute != admission.minute:
                    counters.minute, counters.requests, counters.tokens = admission.minute, 0, 0
                if budgets and limits.max_budget is not None:
                    reserved = sum((cost for cost, _ in counters.reservations.values()), _ZERO)
                    if (
                        counters.spend >= limits.max_budget
                        or counters.spend + reserved + check.worst_case_cost > limits.max_budget
                    ):
                        return Verdict("budget", index, [counters.spend], reserved)
                refused = rate_refusal(limits, counters.requests, counters.tokens, len(counters.reservations))
                if refused:
                    return Verdict(refused, index, [counters.spend])
            deadline = now + reservation_seconds()
            for check, counters in zip(admission.checks, views, strict=True):
                reserved = check.worst_case_cost if check.limits.max_budget is not None else _ZERO
                counters.reservations[admission.admission_id] = (reserved, deadline)
                counters.requests += 1
                counters.tokens += admission.estimated_tokens
                verdict.spend.append(counters.spend)
                verdict.requests.append(counters.requests)
                verdict.tokens.append(counters.tokens)
            return verdict

    async def settle(self, admission, actual_cost: Decimal, token_delta: int) -> list[Decimal | None]:
        spends: list[Decimal | None] = []
        with self._lock:
            for check in admission.checks:
                counters = self._counters.get((check.limits.kind, check.limits.entity_id))
                if counters is None:
                    spends.append(None)
                    continue
                counters.reservations.pop(admission.admission_id, None)
                if counters.minute == admission.minute:
                    counters.tokens = max(counters.tokens + token_delta, 0)
                if counters.period == check.limits.period and actual_cost:
                    counters.spend += actual_cost
                spends.append(counters.spend if counters.period == check.limits.period else None)
        return spends

    async def claim_alert(self, limits: Limits, event: str) -> bool:
        """True once per event, entity and budget period, across this machine's processes and their restarts: the
        caller sends that alert. Known claims are answered from memory; a new one is a file on a worker thread."""
        marker = (event, limits.kind, limits.entity_id, limits.period)
        with self._lock:
            if marker in self._alerted:
                return False
            self._alerted.add(marker)
        return await asyncio.get_running_loop().run_in_executor(None, _claim_file, marker)

    def clear(self) -> None:
        with self._lock:
            self._counters.clear()
            self._alerted.clear()


# A holder's claims for periods that ended longer ago than this are removed when it makes a new one: a process
# whose limits are a sync interval old must still find the claim of the period that just ended.
_CLAIMS_KEPT_MS = 24 * 3600 * 1000


def _claim_file(marker: tuple[str, str, str, int]) -> bool:
    """Make the marker's file in the spool directory's alerts/ (O_EXCL: one process makes it); False if it exists.

    The holder's files of periods long over are removed then, so a holder keeps a file or two per event, not one for
    every period it ever had."""
    event, kind, entity_id, period = marker
    directory = Path(settings.TOLLGATE_SPOOL_DIR) / "alerts"
    directory.mkdir(parents=True, exist_ok=True)
    # Entity ids come from callers (a customer's id): hashed into a file name that is always one.
    holder = f"{event}-{kind}-{hashlib.sha256(entity_id.encode()).hexdigest()[:32]}-"
    try:
        os.close(os.open(directory / f"{holder}{period}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    horizon = time.time() * 1000 - _CLAIMS_KEPT_MS
    for claim in directory.glob(f"{holder}*"):
        ended = claim.name.removeprefix(holder)
        if ended.isdigit() and 0 < int(ended) < horizon:
            claim.unlink(missing_ok=True)
    return True
