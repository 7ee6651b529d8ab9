"""Services that change customers (end users) and budgets, as LiteLLM's /customer/* and /budget/* do.

Each runs in one transaction that appends its `KeyChange` (every process drops its cached customer state) and
syncs this process's cache when it commits. A customer's limits are its budget's: /customer/new with inline limits
(max_budget, tpm_limit, ...) makes a budget for it, and /customer/update with them changes that budget, as LiteLLM
does.
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from keys.models import Budget, Customer, KeyChange, Organization, record_change
from keys.services import NotFound, _after_commit, _audit, _set_spend, budget_reset_for
from pricing.errors import TollgateError

BUDGET_FIELDS = (
    "max_budget",
    "soft_budget",
    "budget_duration",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "model_max_budget",
)
_BUDGET_EMPTY = {"budget_duration": str, "model_max_budget": dict}
_CUSTOMER_FIELDS = ("alias", "blocked", "default_model", "metadata")
_CUSTOMER_EMPTY = {"alias": str, "blocked": bool, "default_model": str, "metadata": dict}


class AlreadyExists(TollgateError):
    code = "already_exists"


def find_customer(end_user_id: str, param: str = "end_user_id") -> Customer:
    customer = Customer.objects.select_related("budget").filter(end_user_id=end_user_id).first()
    if customer is None:
        raise NotFound(f"End User Id={end_user_id} does not exist in db", param=param)
    return customer


def find_budget(budget_id: str, param: str = "budget_id") -> Budget:
    budget = Budget.objects.filter(budget_id=budget_id).first()
    if budget is None:
        raise NotFound(f"Budget not found: {budget_id}", param=param)
    return budget


def _set_fields(entity, data: dict, fields, empty: dict) -> None:
    """Set the fields `data` names; null empties a text, dict or flag field and removes a limit."""
    for name in fields:
        if name in data:
            value = data[name]
            setattr(entity, name, empty[name]() if value is None and name in empty else value)


def _start_periods(budgets, budget: Budget | None) -> None:
    """Customers and organizations that took on `budget` (or whose budget's duration changed), on `budgets`, start a
    period of its duration now."""
    reset_at = budget_reset_for(budget.budget_duration, timezone.now()) if budget else None
    for model in (Customer, Organization):
        for holder in model.objects.select_for_update().filter(budget__in=budgets):
            holder.budget_reset_at = reset_at
            holder.save(update_fields=["budget_reset_at", "updated_at"])


def _budget_from(data: dict, *, actor: str, always: bool = False) -> Budget | None:
    """A new budget from a customer's or an organization's request's inline limits; None when it names none, unless
    `always` (LiteLLM makes one for every organization)."""
    if not always and not any(data.get(name) is not None for name in BUDGET_FIELDS):
        return None
    budget = Budget(created_by=actor, updated_by=actor)
    _set_fields(budget, data, BUDGET_FIELDS, _BUDGET_EMPTY)
    budget.save()
    record_change(KeyChange.Kind.BUDGET, budget.budget_id, action="created", actor=actor, changes=_audit(data))
    return budget


def refuse_budget_id_with_limits(data: dict) -> None:
    """A new customer or organization takes a budget by `budget_id` or one made from its inline limits, not both."""
    if data.get("budget_id") and any(data.get(name) is not None for name in BUDGET_FIELDS):
        raise TollgateError("Give either budget_id or the budget's limits (max_budget, ...), not both.",
                            param="budget_id", code="invalid_value")  # fmt: skip


# -- budgets -----------------------------------------------------------------------------------------------------------


@transaction.atomic
def create_budget(data: dict, *, actor: str) -> Budget:
    if data.get("budget_id") and Budget.objects.filter(budget_id=data["budget_id"]).exists():
        raise AlreadyExists(f"Budget already exists: budget_id={data['budget_id']}", param="budget_id")
    budget = Budget(created_by=actor, updated_by=actor)
    if data.get("budget_id"):
        budget.budget_id = data["budget_id"]
    _set_fields(budget, data, BUDGET_FIELDS, _BUDGET_EMPTY)
    budget.save()
    record_change(KeyChange.Kind.BUDGET, budget.budget_id, action="created", actor=actor, changes=_audit(data))
    _after_commit()
    return budget


@transaction.atomic
def update_budget(budget: Budget, data: dict, *, actor: str) -> Budget:
    """Change a budget: every customer on it gets the new limits; a new duration starts their periods now."""
    budget = Budget.objects.select_for_update().get(pk=budget.pk)
    duration = budget.budget_duration
    _set_fields(budget, data, BUDGET_FIELDS, _BUDGET_EMPTY)
    budget.updated_by = actor
    budget.save()
    if budget.budget_duration != duration:
        _start_periods([budget], budget)
    record_change(KeyChange.Kind.BUDGET, budget.budget_id, action="updated", actor=actor, changes=_audit(data))
    _after_commit()
    return budget


@transaction.atomic
def delete_budgets(budgets: list[Budget], *, actor: str) -> list[str]:
    """Delete budgets: their customers and organizations keep their spend and have no limits until given another
    budget."""
    ids = [budget.budget_id for budget in budgets]
    _start_periods(budgets, None)
    for budget_id in ids:
        record_change(KeyChange.Kind.BUDGET, budget_id, action="deleted", deleted=True, actor=actor)
    Budget.objects.filter(pk__in=[budget.pk for budget in budgets]).delete()
    _after_commit()
    return ids


# -- customers ---------------------------------------------------------------------------------------------------------


def _save_customer(customer: Customer, data: dict, *, actor: str, action: str) -> Customer:
    _set_fields(customer, data, _CUSTOMER_FIELDS, _CUSTOMER_EMPTY)
    budget_changed = False
    if "budget_id" in data:
        customer.budget = find_budget(data["budget_id"]) if data["budget_id"] else None
        budget_changed = True
    if any(name in data for name in BUDGET_FIELDS):
        if customer.budget is None:
            customer.budget = _budget_from(data, actor=actor)
            budget_changed = customer.budget is not None
        else:
            update_budget(customer.budget, {name: data[name] for name in BUDGET_FIELDS if name in data}, actor=actor)
            customer.budget.refresh_from_db()
            customer.refresh_from_db(fields=["budget_reset_at"])  # a new duration started a period there
    if budget_changed:
        customer.budget_reset_at = budget_reset_for(customer.budget_duration, timezone.now())
    if "spend" in data and data["spend"] is not None and data["spend"] != customer.spend:
        _set_spend(customer, data["spend"])
    customer.save()
    record_change(KeyChange.Kind.CUSTOMER, customer.end_user_id, action=action, actor=actor, changes=_audit(data))
    _after_commit()
    return customer


@transaction.atomic
def create_customer(data: dict, *, actor: str) -> Customer:
    """A new customer; its limits from `budget_id`, or a budget made from the inline limits (not both)."""
    end_user_id = data["user_id"]
    if Customer.objects.filter(end_user_id=end_user_id).exists():
        raise AlreadyExists(
            f"Customer already exists, passed user_id={end_user_id}. Please pass a new user_id.", param="user_id"
        )
    refuse_budget_id_with_limits(data)
    customer = Customer(end_user_id=end_user_id)
    customer.save()  # the spend adjustment of an initial `spend` names a customer that exists
    return _save_customer(customer, data, actor=actor, action="created")


@transaction.atomic
def update_customer(customer: Customer, data: dict, *, actor: str) -> Customer:
    customer = Customer.objects.select_for_update(of=("self",)).select_related("budget").get(pk=customer.pk)
    return _save_customer(customer, data, actor=actor, action="updated")


@transaction.atomic
def set_blocked(end_user_ids: list[str], blocked: bool, *, actor: str) -> list[Customer]:
    """Block or unblock customers, making those not seen yet (LiteLLM upserts them), so a customer can be blocked
    before its first call."""
    customers = []
    for end_user_id in end_user_ids:
        customer, _ = Customer.objects.select_for_update().get_or_create(end_user_id=end_user_id)
        customers.append(_save_customer(customer, {"blocked": blocked}, actor=actor,
                                        action="blocked" if blocked else "unblocked"))  # fmt: skip
    return customers


@transaction.atomic
def delete_customers(customers: list[Customer], *, actor: str) -> list[str]:
    """Delete customers. Their logs stay, with an adjustment taking each one's spend back to 0 first: a customer
    made again by its next call starts from 0, and its logs still add up to its spend."""
    ids = []
    for customer in Customer.objects.select_for_update().filter(pk__in=[c.pk for c in customers]).order_by("pk"):
        if customer.spend:
            _set_spend(customer, Decimal(0))
        record_change(KeyChange.Kind.CUSTOMER, customer.end_user_id, action="deleted", deleted=True, actor=actor)
        ids.append(customer.end_user_id)
    Customer.objects.filter(pk__in=[customer.pk for customer in customers]).delete()
    _after_commit()
    return ids
