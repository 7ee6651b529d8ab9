"""Reads for the management API and the admin: keys, users and teams with the live spend enforcement sees."""

from keys.auth import hash_key
from keys.cache import key_limits, team_limits, user_limits
from keys.limits import live_spend
from keys.model_budgets import model_limits
from keys.models import InternalUser, Team, VirtualKey


def key_identity(raw_key: str) -> str | None:
    """The identity (token_hash) of the key whose current secret is `raw_key`, or None: one indexed query."""
    return VirtualKey.objects.filter(secret_hash=hash_key(raw_key)).values_list("token_hash", flat=True).first()


def key_with_spend(key: VirtualKey) -> VirtualKey:
    """The key with its live spend, and its live spend on each model group it has a budget for (model_spend)."""
    key.live_spend = live_spend(key_limits(key))
    per_model, _ = model_limits(key, "")
    key.model_spend = {
        model: live_spend(limits) for model, limits in per_model.items() if limits.max_budget is not None
    }
    return key


def team_with_spend(team: Team) -> Team:
    """The team with its live spend and its members, each with its role (LiteLLM's members_with_roles)."""
    team.live_spend = live_spend(team_limits(team))
    members = team.members.all()
    admins = {user.pk for user in team.admin_members.all()}
    team.member_ids = [user.user_id for user in members]
    team.members_with_roles = [
        {
            "role": "admin" if user.pk in admins else "user",
            "user_id": user.user_id,
            "user_email": user.user_email or None,
        }
        for user in members
    ]
    return team


def user_with_spend(user: InternalUser) -> InternalUser:
    user.live_spend = live_spend(user_limits(user))
    user.team_ids = [team.team_id for team in user.teams.all()]
    return user


# What team_with_spend reads of each team: prefetch them for a list of teams.
TEAM_MEMBERS = ("members", "admin_members")


def team_info(team: Team) -> dict:
    keys = [key_with_spend(key) for key in VirtualKey.objects.filter(team=team)]
    return {"team_id": team.team_id, "team_info": team_with_spend(team), "keys": keys}


def user_info(user: InternalUser) -> dict:
    keys = [key_with_spend(key) for key in VirtualKey.objects.filter(user=user)]
    teams = [team_with_spend(team) for team in user.teams.prefetch_related(*TEAM_MEMBERS)]
    return {"user_id": user.user_id, "user_info": user_with_spend(user), "keys": keys, "teams": teams}


def key_page(filters: dict, page: int, size: int) -> tuple[list[VirtualKey], int]:
    keys = VirtualKey.objects.filter(**filters).order_by("-created_at", "-id")
    total = keys.count()
    return list(keys[(page - 1) * size : page * size]), total


def user_page(page: int, size: int) -> tuple[list[InternalUser], int]:
    users = InternalUser.objects.prefetch_related("teams").order_by("user_id")
    total = users.count()
    return list(users[(page - 1) * size : page * size]), total
