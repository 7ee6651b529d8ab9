"""Services that change keys, users and teams. Each runs in one transaction that also appends its `KeyChange`, and
refreshes this process's key cache when it commits (other processes follow within a sync interval)."""

import secrets
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from keys.auth import hash_key, sync_key_cache
from keys.budgets import next_reset_at, parse_duration
from keys.models import InternalUser, KeyChange, Team, VirtualKey, record_change
from keys.signals import spend_set
from pricing.calculator import format_money
from pricing.errors import TollgateError

NEVER = "never"


class Conflict(TollgateError, status=400, code="invalid_value"):
    """A request that the data as it stands refuses (a chosen key in use, a member already in the team)."""


class NotFound(TollgateError, status=404, code="not_found"):
    """A key, user or team named in a request does not exist."""

    def __init__(self, message: str, *, param: str):
        super().__init__(message, param=param)


def new_raw_key() -> str:
    """`sk-` and 32 url-safe random characters (192 bits)."""
    return "sk-" + secrets.token_urlsafe(24)


def key_hint(raw_key: str) -> str:
    return f"sk-...{raw_key[-4:]}"


def expiry_for(duration: str | None, now: datetime) -> datetime | None:
    """When a key made now with `duration` expires: None means settings.KEY_DEFAULT_DURATION, "never" never."""
    text = duration or settings.KEY_DEFAULT_DURATION
    if text == NEVER:
        return None
    return parse_duration(text).after(now)


def budget_reset_for(budget_duration: str, now: datetime) -> datetime | None:
    return next_reset_at(now, budget_duration, settings.TIME_ZONE) if budget_duration else None


def _audit(data: dict) -> dict:
    """The fields a request set, in a form JSON keeps exactly (money as decimal strings)."""

    def plain(value):
        if isinstance(value, Decimal):
            return format_money(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(data)


def _after_commit() -> None:
    transaction.on_commit(sync_key_cache)


def find_key(key: str) -> VirtualKey:
    """A key by its current secret (`sk-...`) or by its token hash (its identity). A secret it had before it was
    regenerated finds nothing."""
    by_name = Q(secret_hash=hash_key(key))
    if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
        by_name |= Q(token_hash=key)
    found = VirtualKey.objects.select_related("user", "team").filter(by_name).first()
    if found is None:
        raise NotFound(f"Key not found: {key_hint(key) if key.startswith('sk-') else key}", param="key")
    return found


def find_team(team_id: str) -> Team:
    team = Team.objects.filter(team_id=team_id).first()
    if team is None:
        raise NotFound(f"Team not found: {team_id}", param="team_id")
    return team


def find_user(user_id: str) -> InternalUser:
    user = InternalUser.objects.filter(user_id=user_id).first()
    if user is None:
        raise NotFound(f"User not found: {user_id}", param="user_id")
    return user


def _apply_budget_fields(entity, data: dict, fields, empty: dict, now: datetime) -> None:
    """Set the fields `data` names; null empties a list, dict or text field and removes a limit or budget."""
    for name in fields:
        if name in data:
            value = data[name]
            setattr(entity, name, value if value is not None or name not in empty else empty[name]())
    if "budget_duration" in data:
        entity.budget_duration = data["budget_duration"] or ""
        entity.budget_reset_at = budget_reset_for(entity.budget_duration, now)
    if "spend" in data and data["spend"] != entity.spend:
        _set_spend(entity, data["spend"])


def _set_spend(entity, spend: Decimal) -> None:
    """Spend set by hand: an adjustment in the ledger for the difference, and a new epoch, so that every process's
    budget counters start again from the database's spend at their next call."""
    old, entity.spend = entity.spend, spend
    entity.spend_epoch += 1
    spend_set.send(sender=type(entity), entity=entity, old=old, new=spend)


# -- keys --------------------------------------------------------------------------------------------------------------

_KEY_FIELDS = (
    "key_alias",
    "models",
    "aliases",
    "config",
    "metadata",
    "max_budget",
    "soft_budget",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "blocked",
    "allowed_routes",
    "enforced_params",
    "permissions",
    "tags",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
)


_KEY_EMPTY = {
    "key_alias": str,
    "models": list,
    "aliases": dict,
    "config": dict,
    "metadata": dict,
    "blocked": bool,
    "allowed_routes": list,
    "enforced_params": list,
    "permissions": dict,
    "tags": list,
    "model_max_budget": dict,
    "model_rpm_limit": dict,
    "model_tpm_limit": dict,
}


def _apply_key_fields(key: VirtualKey, data: dict, now: datetime) -> None:
    """`expires` (a moment, as the admin's form gives it) or `duration` (from now, as the API's)."""
    _apply_budget_fields(key, data, _KEY_FIELDS, _KEY_EMPTY, now)
    if "expires" in data:
        key.expires = data["expires"]
    elif "duration" in data:
        key.expires = expiry_for(data["duration"], now)
    if "team_id" in data:
        key.team = find_team(data["team_id"]) if data["team_id"] else None
    if "user_id" in data:
        key.user = InternalUser.objects.get_or_create(user_id=data["user_id"])[0] if data["user_id"] else None


def key_in_use(raw_key: str) -> bool:
    """A secret that names a key already: its current secret, or its identity (the hash of its first secret)."""
    hashed = hash_key(raw_key)
    return VirtualKey.objects.filter(Q(secret_hash=hashed) | Q(token_hash=hashed)).exists()


@transaction.atomic
def generate_key(data: dict, *, actor: str) -> tuple[str, VirtualKey]:
    """A new key with `data`'s settings, and its `key` if the caller chose the secret: returns the raw key (shown
    this once) and the stored key. The chosen secret is stored hashed like a made one, and never in the change log."""
    now = timezone.now()
    data = dict(data)
    raw_key = data.pop("key", None) or new_raw_key()
    # The first secret's hash is the key's identity for good; only secret_hash follows later secrets.
    key = VirtualKey(
        token_hash=hash_key(raw_key), secret_hash=hash_key(raw_key), key_hint=key_hint(raw_key), created_by=actor
    )
    _apply_key_fields(key, {"duration": None, **data}, now)  # no duration: KEY_DEFAULT_DURATION
    try:
        with transaction.atomic():
            key.save()
    except IntegrityError:  # a chosen secret another request took since it was checked
        raise Conflict("This key is already in use: choose another.", param="key") from None
    record_change(KeyChange.Kind.KEY, key.token_hash, action="created", actor=actor, changes=_audit(data))
    _after_commit()
    return raw_key, key


@transaction.atomic
def update_key(key: VirtualKey, data: dict, *, actor: str, action: str = "updated") -> VirtualKey:
    key = VirtualKey.objects.select_for_update().get(pk=key.pk)
    _apply_key_fields(key, data, timezone.now())
    key.save()
    record_change(KeyChange.Kind.KEY, key.token_hash, action=action, actor=actor, changes=_audit(data))
    _after_commit()
    return VirtualKey.objects.select_related("user", "team").get(pk=key.pk)


@transaction.atomic
def regenerate_key(key: VirtualKey, data: dict, *, actor: str) -> tuple[str, VirtualKey]:
    """A new secret for the key; the old secret stops working. The key keeps its identity (token_hash), so its
    settings, spend, logs and budget counters stay its own."""
    key = VirtualKey.objects.select_for_update().get(pk=key.pk)
    raw_key = new_raw_key()
    key.secret_hash, key.key_hint = hash_key(raw_key), key_hint(raw_key)
    _apply_key_fields(key, data, timezone.now())
    key.save()
    record_change(KeyChange.Kind.KEY, key.token_hash, action="regenerated", actor=actor, changes=_audit(data))
    _after_commit()
    return raw_key, key


@transaction.atomic
def delete_keys(keys: list[VirtualKey], *, actor: str) -> list[str]:
    for key in keys:
        record_change(KeyChange.Kind.KEY, key.token_hash, action="deleted", deleted=True, actor=actor)
    VirtualKey.objects.filter(pk__in=[key.pk for key in keys]).delete()
    _after_commit()
    return [key.token_hash for key in keys]


# -- teams and users ---------------------------------------------------------------------------------------------------

_TEAM_FIELDS = (
    "team_alias",
    "models",
    "model_aliases",
    "max_budget",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "metadata",
    "blocked",
    "organization_id",  # the team's organization (the input checked it exists); null: none
)
_TEAM_EMPTY = {"team_alias": str, "models": list, "model_aliases": dict, "metadata": dict, "blocked": bool}
_USER_FIELDS = (
    "user_email",
    "user_role",
    "models",
    "max_budget",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "metadata",
)
_USER_EMPTY = {"user_email": str, "models": list, "metadata": dict}


def _set_members(team: Team, data: dict) -> None:
    """A team's members as `members` lists them; one no longer a member is no longer an admin either."""
    if data.get("members") is not None:
        team.members.set([InternalUser.objects.get_or_create(user_id=user_id)[0] for user_id in data["members"]])
        team.admin_members.set(team.admin_members.filter(teams=team))


def _set_teams(user: InternalUser, data: dict) -> None:
    if data.get("teams") is not None:
        user.teams.set([find_team(team_id) for team_id in data["teams"]])
        user.teams_as_admin.set(user.teams_as_admin.filter(members=user))


# A budget holder's change-log kind (also the name keys use for it: key.team, key.user_id), its settable fields, the
# empty value of each that null clears, and what sets its memberships.
_HOLDERS = {
    Team: (KeyChange.Kind.TEAM, _TEAM_FIELDS, _TEAM_EMPTY, _set_members),
    InternalUser: (KeyChange.Kind.USER, _USER_FIELDS, _USER_EMPTY, _set_teams),
}


def _save_holder(holder, data: dict, *, actor: str, action: str):
    """Set a team's or user's fields and memberships from `data`, save it and log the change."""
    kind, fields, empty, set_memberships = _HOLDERS[type(holder)]
    _apply_budget_fields(holder, data, fields, empty, timezone.now())
    holder.save()
    set_memberships(holder, data)
    record_change(kind, getattr(holder, f"{kind}_id"), action=action, actor=actor, changes=_audit(data))
    _after_commit()
    return holder


@transaction.atomic
def _delete_with_keys(model, entities: list, *, actor: str) -> list[str]:
    """Delete teams or users and their keys: a key left without its team or user would escape their budget."""
    kind = _HOLDERS[model][0]
    delete_keys(list(VirtualKey.objects.filter(**{f"{kind}__in": entities})), actor=actor)
    ids = [getattr(entity, f"{kind}_id") for entity in entities]
    for entity_id in ids:
        record_change(kind, entity_id, action="deleted", deleted=True, actor=actor)
    model.objects.filter(pk__in=[entity.pk for entity in entities]).delete()
    return ids


@transaction.atomic
def create_team(data: dict, *, actor: str) -> Team:
    """A new team; `members_with_roles` (LiteLLM's) adds those members with their roles, after `members`."""
    data = dict(data)
    members_with_roles = data.pop("members_with_roles", None)
    team = Team(team_id=data["team_id"]) if data.get("team_id") else Team()
    _save_holder(team, data, actor=actor, action="created")
    if members_with_roles:
        add_team_members(team, members_with_roles, actor=actor)
    return team


@transaction.atomic
def update_team(team: Team, data: dict, *, actor: str, action: str = "updated") -> Team:
    return _save_holder(Team.objects.select_for_update().get(pk=team.pk), data, actor=actor, action=action)


def delete_teams(teams: list[Team], *, actor: str) -> list[str]:
    return _delete_with_keys(Team, teams, actor=actor)


@transaction.atomic
def create_user(
    data: dict, *, actor: str, with_key: bool = False
) -> tuple[InternalUser, str | None, VirtualKey | None]:
    """A new user; with `with_key`, also a key of theirs (LiteLLM's /user/new does both): (user, raw key, key)."""
    user = InternalUser(user_id=data["user_id"]) if data.get("user_id") else InternalUser()
    _save_holder(user, data, actor=actor, action="created")
    if not with_key:
        return user, None, None
    raw_key, key = generate_key({"user_id": user.user_id}, actor=actor)
    return user, raw_key, key


@transaction.atomic
def update_user(user: InternalUser, data: dict, *, actor: str) -> InternalUser:
    return _save_holder(InternalUser.objects.select_for_update().get(pk=user.pk), data, actor=actor, action="updated")


def delete_users(users: list[InternalUser], *, actor: str) -> list[str]:
    return _delete_with_keys(InternalUser, users, actor=actor)


# -- team members (LiteLLM's /team/member_*): each names a user by user_id or, lacking one, by user_email -----------

ADMIN = "admin"


def _user_named(member: dict) -> InternalUser:
    """The user a member entry names, made if there is none (as LiteLLM's /team/member_add does)."""
    if member.get("user_id"):
        defaults = {"user_email": member.get("user_email") or ""}
        return InternalUser.objects.get_or_create(user_id=member["user_id"], defaults=defaults)[0]
    user = InternalUser.objects.filter(user_email=member["user_email"]).order_by("id").first()
    return user or InternalUser.objects.create(user_email=member["user_email"])


def find_member(team: Team, member: dict) -> InternalUser:
    """The member of `team` that `member` names by user_id or user_email."""
    by = "user_id" if member.get("user_id") else "user_email"
    user = team.members.filter(**{by: member[by]}).order_by("id").first()
    if user is None:
        raise Conflict(f"{member[by]} is not a member of team {team.team_id}.", param=by)
    return user


def _set_role(team: Team, user: InternalUser, role: str) -> None:
    if role == ADMIN:
        team.admin_members.add(user)
    else:
        team.admin_members.remove(user)


def _member_change(team: Team, action: str, *, actor: str, changes: dict) -> None:
    record_change(KeyChange.Kind.TEAM, team.team_id, action=action, actor=actor, changes=_audit(changes))
    _after_commit()


@transaction.atomic
def add_team_members(team: Team, members: list[dict], *, actor: str) -> list[InternalUser]:
    """Add users to a team with their roles; a user already a member refuses the whole request."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    added = []
    for member in members:
        user = _user_named(member)
        if team.members.filter(pk=user.pk).exists():
            raise Conflict(f"User {user.user_id} is already a member of team {team.team_id}.", param="member")
        team.members.add(user)
        _set_role(team, user, member["role"])
        added.append(user)
    _member_change(team, "member_added", actor=actor, changes={"member": members})
    return added


@transaction.atomic
def remove_team_member(team: Team, member: dict, *, actor: str) -> None:
    team = Team.objects.select_for_update().get(pk=team.pk)
    user = find_member(team, member)
    team.members.remove(user)
    team.admin_members.remove(user)
    _member_change(team, "member_deleted", actor=actor, changes={"user_id": user.user_id})


@transaction.atomic
def update_team_member(team: Team, member: dict, *, actor: str) -> InternalUser:
    """Set a member's role in the team."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    user = find_member(team, member)
    _set_role(team, user, member["role"])
    _member_change(team, "member_updated", actor=actor, changes={"user_id": user.user_id, "role": member["role"]})
    return user
