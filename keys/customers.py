"""Customers (end users) on the proxy's path: the one a call names, made on first sight, with its budget's limits.

Each process keeps the customers its calls have named in the key cache (`KeyCache.customers`), so a known customer
costs no query; the first call naming one reads it, or creates it (as LiteLLM upserts it), off the event loop. A
change to a customer or a budget (the management API, a period reset) is a `KeyChange`, which drops the cached
state in every process at its next sync, as a key's change does.
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from keys.cache import key_cache, limits_of
from keys.caller import Limits
from keys.errors import CustomerBlocked
from keys.models import Customer

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


def customer_limits(customer: Customer) -> Limits:
    return limits_of("customer", customer.end_user_id, f"customer {customer.end_user_id}", customer,
                     customer.soft_budget)  # fmt: skip


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
    return CustomerState(customer.end_user_id, customer.blocked, customer_limits(customer))


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
