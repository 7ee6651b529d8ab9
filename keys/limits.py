"""Budgets and rate limits on every proxied call: admit before sending, settle (or release) when it ends.

`admit` checks, for the key, its user and its team, in one atomic step: spend against max_budget (a call that would
start over budget is refused, and so is one whose worst-case cost, on top of what the calls in flight have
reserved, would take the spend past it), then rpm_limit, tpm_limit and max_parallel_requests. It reserves the
worst-case cost, a request, the estimated tokens and a parallel slot on each. `Admission.settle` releases the
reservation and adds the real cost and tokens as the spend log commits; `Admission.release` gives the slot
back for a call that failed before it was charged.

Live spend is the database's spend (the truth, as last loaded) plus the costs settled since: the view keeps the
higher of the two within a budget period, and restarts from the database when the period moves on.

With settings.REDIS_URL the counters live in Redis, shared by every server process (atomic Lua scripts);
without it, in this process. If Redis fails, budgets are admitted by the database (keys.limits_database) and rate
limits by this process's counters, with a warning, and Redis is tried again a second later.
"""

import time
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError

from keys import alerts
from keys.cache import key_cache
from keys.caller import Caller, Limits
from keys.counting import Check, Verdict
from keys.errors import BudgetExceeded, BudgetsUnavailable, RateLimited
from keys.limits_database import DatabaseBudgets
from keys.limits_local import LocalCounters
from keys.limits_redis import CountersUnavailable, redis_counters
from pricing.calculator import format_money

_ZERO = Decimal(0)


def seconds_to_next_minute(now: float) -> int:
    return max(1, 60 - int(now) % 60)


class Admission:
    """A call admitted against its key's, user's and team's limits; settle or release it exactly once."""

    def __init__(self, caller: Caller, checks: list[Check], verdict: Verdict, backend, *, minute: int, tokens: int):
        self.caller = caller
        self.checks = checks
        self.verdict = verdict
        self.backend = backend
        self.admission_id = uuid.uuid4().hex
        self.minute = minute
        self.estimated_tokens = tokens
        self.done = False

    def headers(self) -> dict[str, str]:
        return usage_headers(self.caller, self.checks, self.verdict)

    @property
    def settles_after_commit(self) -> bool:
        """Whether the call's spend log must commit before it settles (the database's budgets count the log)."""
        return getattr(self.backend, "settles_after_commit", False)

    async def settle(self, actual_cost: Decimal, tokens: int) -> None:
        """The call is charged `actual_cost` (its spend log is committing) and used `tokens` tokens."""
        if self.done:
            return
        self.done = True
        spends = await self.backend.settle(self, actual_cost, tokens - self.estimated_tokens)
        for check, spend in zip(self.checks, spends, strict=True):
            if spend is not None:
                await alerts.spend_settled(self.backend, check.limits, spend)

    async def release(self) -> None:
        """The call failed before anything was charged: give back its reservation, slot and estimated tokens."""
        if self.done:
            return
        self.done = True
        await self.backend.settle(self, _ZERO, -self.estimated_tokens)


class _MasterAdmission:
    """The master key has no limits."""

    settles_after_commit = False

    def headers(self) -> dict[str, str]:
        return {}

    async def settle(self, actual_cost: Decimal, tokens: int) -> None:
        return None

    async def release(self) -> None:
        return None


_MASTER_ADMISSION = _MasterAdmission()


def usage_headers(caller: Caller, checks: list[Check], verdict: Verdict) -> dict[str, str]:
    """x-ratelimit-* for the tightest request and token limits, and the key's spend and budget."""
    headers: dict[str, str] = {}
    for unit, counts, attribute in (
        ("requests", verdict.requests, "rpm_limit"),
        ("tokens", verdict.tokens, "tpm_limit"),
    ):
        tightest = None
        for check, used in zip(checks, counts, strict=False):
            limit = getattr(check.limits, attribute)
            if limit is not None and (tightest is None or limit - used < tightest[1]):
                tightest = (limit, limit - used)
        if tightest is not None:
            headers[f"x-ratelimit-limit-{unit}"] = str(tightest[0])
            headers[f"x-ratelimit-remaining-{unit}"] = str(max(tightest[1], 0))
    key_limits = caller.key_limits
    if key_limits is not None:
        spend = verdict.spend[0] if verdict.spend and checks and checks[0].limits is key_limits else key_limits.spend
        headers["x-litellm-key-spend"] = format_money(spend)
        if key_limits.max_budget is not None:
            headers["x-litellm-key-max-budget"] = format_money(key_limits.max_budget)
    return headers


def _refused_spend(checks: list[Check], verdict: Verdict) -> Decimal:
    """The spend of the budget that refused a call, as the refusal saw it."""
    return verdict.spend[0] if verdict.spend else checks[verdict.entity].limits.spend


def _refusal(checks: list[Check], verdict: Verdict, now: float):
    limits = checks[verdict.entity].limits
    if verdict.refused == "budget":
        spend, budget = _refused_spend(checks, verdict), limits.max_budget
        if spend >= budget:
            message = (
                f"Budget has been exceeded: {limits.label} has spent {format_money(spend)} "
                f"of its max_budget {format_money(budget)}."
            )
        else:
            message = (
                f"Budget has been exceeded: {limits.label} has spent {format_money(spend)} of its max_budget "
                f"{format_money(budget)}, calls in flight have reserved {format_money(verdict.reserved)}, and this "
                f"call may cost up to {format_money(checks[verdict.entity].worst_case_cost)}."
            )
        return BudgetExceeded(message, param="max_budget")
    if verdict.refused == "parallel":
        return RateLimited(
            f"Rate limit exceeded: {limits.label} already has {limits.max_parallel_requests} requests in flight "
            f"(max_parallel_requests).",
            headers={"retry-after": "1"},
        )
    if verdict.refused == "rpm":
        what = f"{limits.rpm_limit} requests per minute (rpm_limit)"
        headers = {"x-ratelimit-limit-requests": str(limits.rpm_limit), "x-ratelimit-remaining-requests": "0"}
    else:
        what = f"{limits.tpm_limit} tokens per minute (tpm_limit)"
        headers = {"x-ratelimit-limit-tokens": str(limits.tpm_limit), "x-ratelimit-remaining-tokens": "0"}
    headers["retry-after"] = str(seconds_to_next_minute(now))
    return RateLimited(f"Rate limit exceeded: {limits.label} is limited to {what}.", headers=headers)


async def admit(
    caller: Caller,
    *,
    model_group: str,
    worst_case_cost: Decimal,
    estimated_tokens: int,
    customer: Limits | None = None,
    tags: tuple[Limits, ...] = (),
):
    """Admit one call for `model_group` or raise BudgetExceeded / RateLimited. Returns an `Admission`.

    The key's limits include its own for `model_group` (model_max_budget, model_rpm_limit, model_tpm_limit).
    `customer`: the limits of the customer (end user) the call names, and `tags`: those of the tag holders it carries,
    checked and reserved on with the key's, even for the master key, which has none of its own."""
    entities = () if caller.is_master else caller.limits_for(model_group)
    if customer is not None:
        entities += (customer,)
    entities += tags
    if not entities:
        return _MASTER_ADMISSION
    checks = [Check(limits, worst_case_cost) for limits in entities if limits.limited]
    now = time.time()
    minute = int(now) // 60
    backend = await current_backend()
    admission = Admission(caller, checks, Verdict(), backend, minute=minute, tokens=max(estimated_tokens, 0))
    if not checks:
        admission.done = True
        return admission
    try:
        try:
            verdict = await backend.admit(admission, now)
        except CountersUnavailable:
            admission.backend = database_budgets()
            verdict = await admission.backend.admit(admission, now)
    except DatabaseError as exc:  # a counter to seed from the database, or budgets it admits, and it is away
        raise BudgetsUnavailable("Budgets cannot be checked: the database does not answer. Try again later.") from exc
    if verdict.refused:
        if verdict.refused == "budget":
            await alerts.budget_refused(
                admission.backend, checks[verdict.entity].limits, _refused_spend(checks, verdict)
            )
        raise _refusal(checks, verdict, now)
    admission.verdict = verdict
    return admission


def live_spend(limits: Limits) -> Decimal:
    """The spend enforcement sees for one key, user or team, seeding the view with `limits.spend` (the database's).

    Synchronous, for the management API and the admin: /key/info shows exactly what the next call is checked against.
    Without a budget nothing is checked against spend and no call settles into a view: the database's spend it is.
    """
    if limits.max_budget is None:
        return limits.spend
    if settings.REDIS_URL:
        spend = redis_counters().live_spend_sync(limits)
        if spend is not None:
            return spend
    return _local.live_spend(limits)


_local = LocalCounters()


def local_counters() -> LocalCounters:
    return _local


async def renew_leases() -> None:
    """Keep this process's calls in flight holding their reservations: the server calls it every sync tick."""
    if not settings.REDIS_URL:
        return
    await redis_counters().renew_leases()
    if _database is not None:
        await key_cache().run(_database.renew)


_database: DatabaseBudgets | None = None


def database_budgets() -> DatabaseBudgets:
    """The budgets this process admits by the database while Redis is unreachable."""
    global _database
    if _database is None:
        _database = DatabaseBudgets(redis_counters().owner, _local)
    return _database


async def current_backend():
    """Redis when configured and reachable, else the database's budgets (with this process's rate counters); this
    process's counters alone without Redis."""
    if not settings.REDIS_URL:
        return _local
    counters = redis_counters()
    if not await counters.available():
        return database_budgets()
    if _database is not None and _database.charged:
        # Back from an outage: Redis's views of what this process charged meanwhile are made again from the database.
        charged = _database.take_charged()
        if not await counters.forget_views(charged):
            _database.charged |= charged
            return _database
    return counters
