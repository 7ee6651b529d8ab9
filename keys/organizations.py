"""Services that change organizations (LiteLLM's /organization/*): the level above teams, with a budget.

An organization's limits are its budget's (`Budget`, as a customer's are): /organization/new makes one from the
inline limits (max_budget, tpm_limit, ...) unless given a `budget_id`, as LiteLLM does, and /organization/update
with limits changes it. Every call of a key whose team belongs to the organization is charged to it and admitted
against it (keys.cache.caller_for), as to the team. Each service runs in one transaction that appends its
`KeyChange` (every process reloads the keys of the organization's teams) and syncs this process's cache on commit.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from keys.cache import organization_limits
from keys.customer_services import (
    BUDGET_FIELDS,
    AlreadyExists,
    _budget_from,
    _set_fields,
    find_budget,
    refuse_budget_id_with_limits,
    update_budget,
)
from keys.limits import live_spend
from keys.models import InternalUser, KeyChange, Organization, OrganizationMembership, record_change
from keys.selectors import team_with_spend
from keys.services import NotFound, _after_commit, _audit, _set_spend, _user_named, budget_reset_for

_ORGANIZATION_EMPTY = {"organization_alias": str, "models": list, "metadata": dict}


def find_organization(organization_id: str, param: str = "organization_id") -> Organization:
    organization = Organization.objects.select_related("budget").filter(organization_id=organization_id).first()
    if organization is None:
        raise NotFound(f"Organization not found for organization_id={organization_id}", param=param)
    return organization


def _save(organization: Organization, data: dict, *, actor: str, action: str) -> Organization:
    _set_fields(organization, data, _ORGANIZATION_EMPTY, _ORGANIZATION_EMPTY)
    budget_changed = False
    if data.get("budget_id"):
        organization.budget = find_budget(data["budget_id"])
        budget_changed = True
    limits = {name: data[name] for name in BUDGET_FIELDS if name in data}
    if organization.budget is None:
        organization.budget = _budget_from(limits, actor=actor, always=True)
        budget_changed = True
    elif limits:
        update_budget(organization.budget, limits, actor=actor)
        organization.budget.refresh_from_db()
        organization.refresh_from_db(fields=["budget_reset_at"])  # a new duration started a period there
    if budget_changed:
        organization.budget_reset_at = budget_reset_for(organization.budget_duration, timezone.now())
    if data.get("spend") is not None and data["spend"] != organization.spend:
        _set_spend(organization, data["spend"])
    organization.updated_by = actor
    organization.save()
    record_change(KeyChange.Kind.ORGANIZATION, organization.organization_id, action=action, actor=actor,
                  changes=_audit(data))  # fmt: skip
    _after_commit()
    return organization


@transaction.atomic
def create_organization(data: dict, *, actor: str) -> Organization:
    """A new organization; its limits from `budget_id`, or a budget made from the inline limits (not both)."""
    organization_id = data.get("organization_id")
    if organization_id and Organization.objects.filter(organization_id=organization_id).exists():
        raise AlreadyExists(f"Organization already exists: organization_id={organization_id}",
                            param="organization_id")  # fmt: skip
    refuse_budget_id_with_limits(data)
    organization = Organization(created_by=actor)
    if organization_id:
        organization.organization_id = organization_id
    organization.save()  # the spend adjustment of an initial `spend` names an organization that exists
    return _save(organization, data, actor=actor, action="created")


@transaction.atomic
def update_organization(organization: Organization, data: dict, *, actor: str) -> Organization:
    organization = Organization.objects.select_for_update(of=("self",)).select_related("budget").get(pk=organization.pk)
    return _save(organization, data, actor=actor, action="updated")


@transaction.atomic
def delete_organizations(organizations: list[Organization], *, actor: str) -> list[str]:
    """Delete organizations: their teams stay, outside any organization. Their logs stay too, with an adjustment
    taking each one's spend back to 0 first, so an organization made again under the same id starts from 0."""
    ids = []
    pks = [organization.pk for organization in organizations]
    for organization in Organization.objects.select_for_update().filter(pk__in=pks).order_by("pk"):
        if organization.spend:
            _set_spend(organization, Decimal(0))
        record_change(KeyChange.Kind.ORGANIZATION, organization.organization_id, action="deleted", deleted=True,
                      actor=actor)  # fmt: skip
        ids.append(organization.organization_id)
    Organization.objects.filter(pk__in=pks).delete()
    _after_commit()
    return ids


@transaction.atomic
def add_members(
    organization: Organization, members: list[dict], *, actor: str
) -> tuple[list[InternalUser], list[OrganizationMembership]]:
    """Add members (or change the role of existing ones): the users, and their memberships."""
    users, memberships = [], []
    for member in members:
        user = _user_named(member)
        membership, _ = OrganizationMembership.objects.update_or_create(
            organization=organization, user=user, defaults={"user_role": member["role"]}
        )
        users.append(user)
        memberships.append(membership)
    record_change(KeyChange.Kind.ORGANIZATION, organization.organization_id, action="member_add", actor=actor,
                  changes=_audit({"member": members}))  # fmt: skip
    _after_commit()
    return users, memberships


# -- reads -------------------------------------------------------------------------------------------------------------


def organization_with_spend(organization: Organization) -> Organization:
    """The organization as /organization/* shows it: the spend its next call is checked against, its members and
    its teams (each with theirs)."""
    organization.live_spend = live_spend(organization_limits(organization))
    organization.member_list = list(organization.memberships.order_by("user_id"))
    teams = organization.teams.prefetch_related("members")
    organization.team_list = [team_with_spend(team) for team in teams]
    return organization


def known_organization(organization_id: str | None) -> None:
    """A field validator: an organization a team may be put in (null takes it out of any)."""
    if organization_id and not Organization.objects.filter(organization_id=organization_id).exists():
        raise ValidationError(f"No organization {organization_id!r}.")
