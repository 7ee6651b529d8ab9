"""Factories for keys, users, teams and deployments: plain functions with sensible defaults."""

import itertools
from decimal import Decimal

from django.apps import apps

from keys import services
from keys.caller import Caller, Limits
from keys.models import InternalUser, Team, VirtualKey

_sequence = itertools.count(1)


def make_deployment(model_name: str = "gpt-4", litellm_model: str = "openai/gpt-4"):
    return apps.get_model("gateway", "Deployment").objects.create(model_name=model_name, litellm_model=litellm_model)


def make_team(**fields) -> Team:
    fields.setdefault("team_alias", f"team-{next(_sequence)}")
    return Team.objects.create(**fields)


def make_user(**fields) -> InternalUser:
    fields.setdefault("user_id", f"user-{next(_sequence)}")
    return InternalUser.objects.create(**fields)


def make_key(**data) -> tuple[str, VirtualKey]:
    """A key made through the service, as the API makes it: (raw key, stored key)."""
    data.setdefault("duration", "never")
    return services.generate_key(data, actor="test")


def limits(kind: str = "key", entity_id: str = "", **fields) -> Limits:
    entity_id = entity_id or f"{kind}-{next(_sequence)}"
    return Limits(kind=kind, entity_id=entity_id, label=f"{kind} {entity_id}", **fields)


def caller(key: Limits | None = None, user: Limits | None = None, team: Limits | None = None) -> Caller:
    """A virtual-key caller with the given limits, no database needed."""
    key = key or limits("key")
    return Caller(is_master=False, key_hash=key.entity_id, key_limits=key, user_limits=user, team_limits=team)


def money(text: str) -> Decimal:
    return Decimal(text)
