"""Customers (end users) on the proxy's path: the one a call names, made on first sight, with its budget's limits.

Each process keeps the customers its calls have named in the key cache (`KeyCache.customers`), so a known customer
costs no query; the first call naming one reads it, or creates it (as LiteLLM upserts it), off the event loop. A
change to a customer or a budget (the management API, a period reset) is a `KeyChange`, which drops the cached
state in every process at its next sync, as a key's change does.
"""

from dataclasses import dataclass, replace
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from keys.cache import key_cache, limits_of
from keys.caller import Limits
from keys.errors import CustomerBlocked
from keys.models import Budget, Customer
from keys.services import budget_reset_for

# Customers remembered per process; the least recently named ones are read again when they return.
_CACHED_CUSTOMERS = 100_000


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What a call needs of its customer: whether it is blocked, and its limits (its budget's) and spend."""

    end_user_id: str
    blocked: bool
    limits: Limits

    def check_usable(self) -> None:
        if self.blocked:
            raise CustomerBlocked(
                f"Authentication Error - the end user (customer) {self.end_user_id!r} is blocked.", param="user"
            )


def default_end_user_budget() -> Budget | None:
    """The budget of customers with none of their own (LiteLLM's max_end_user_budget_id, else max_end_user_budget):
    read when a customer is, so a change to it reaches every customer on it at their next load."""
    if settings.TOLLGATE_MAX_END_USER_BUDGET_ID:
        return Budget.objects.filter(budget_id=settings.TOLLGATE_MAX_END_USER_BUDGET_ID).first()
    if settings.TOLLGATE_MAX_END_USER_BUDGET:
        return Budget(max_budget=Decimal(settings.TOLLGATE_MAX_END_USER_BUDGET))
    return None


def customer_limits(customer: Customer, default: Budget | None = None) -> Limits:
    """A customer's limits: its budget's, or (`default`, read here when not given) the default end-user budget's."""
    limits = limits_of("customer", customer.end_user_id, f"customer {customer.end_user_id}", customer,
                       customer.soft_budget)  # fmt: skip
    if customer.budget is not None:
        return limits
    default = default or default_end_user_budget()
    if default is None:
        return limits
    return replace(limits, max_budget=default.max_budget, soft_budget=default.soft_budget,
                   rpm_limit=default.rpm_limit, tpm_limit=default.tpm_limit,
                   max_parallel_requests=default.max_parallel_requests)  # fmt: skip


def load_customer(end_user_id: str) -> CustomerState:
    """The customer named `end_user_id`, made now if the database has none (two processes making it at once: the
    second reads the first's)."""
    customer = Customer.objects.select_related("budget").filter(end_user_id=end_user_id).first()
    if customer is None:
        try:
            with transaction.atomic():
                customer = Customer.objects.create(end_user_id=end_user_id)
        except IntegrityError:
            customer = Customer.objects.select_related("budget").get(end_user_id=end_user_id)
    default = default_end_user_budget() if customer.budget is None else None
    if default is not None and default.budget_duration and customer.budget_reset_at is None:
        # The default budget's period starts at the customer's first load, and again after each reset.
        customer.budget_reset_at = budget_reset_for(default.budget_duration, timezone.now())
        customer.save(update_fields=["budget_reset_at", "updated_at"])
    return CustomerState(customer.end_user_id, customer.blocked, customer_limits(customer, default))


async def customer_state(end_user_id: str) -> CustomerState:
    """The state of the customer a call names, from this process's cache or read (and kept) off the event loop."""
    cache = key_cache()
    state = cache.customers.get(end_user_id)
    if state is not None:
        cache.customers.move_to_end(end_user_id)
        return state
    generation = cache.generation
    state = await cache.run(load_customer, end_user_id)
    if generation == cache.generation:  # no change applied meanwhile that this read may predate
        cache.customers[end_user_id] = state
        while len(cache.customers) > _CACHED_CUSTOMERS:
            cache.customers.popitem(last=False)
    return state


def forget_customer(end_user_id: str) -> None:
    """Drop a customer's cached state (its period was just reset by this process)."""
    key_cache().customers.pop(end_user_id, None)
