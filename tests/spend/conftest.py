"""Factories for spend tests: spend logs and ledger entries with sensible defaults."""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from spend.ledger import SpendEntry
from spend.models import SpendLog

_sequence = itertools.count(1)
DAY = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (row locks across connections)"
)


def entry_fields(**overrides) -> dict:
    number = next(_sequence)
    start = overrides.pop("start_time", DAY)
    fields = {
        "request_id": f"req-{number}",
        "call_type": "chat",
        "requested_model": "gpt-4o",
        "model_group": "gpt-4o",
        "provider": "openai",
        "provider_model": "gpt-4o",
        "start_time": start,
        "end_time": start + timedelta(seconds=1),
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost": Decimal("0.00013"),
        "pricing_source": "cost_map",
    }
    fields.update(overrides)
    return fields


def make_entry(**overrides) -> SpendEntry:
    return SpendEntry(**entry_fields(**overrides))


def make_log(**overrides) -> SpendLog:
    return SpendLog.objects.create(**entry_fields(**overrides))


@pytest.fixture
def retention(settings):
    def keep(days):
        settings.SPEND_LOG_RETENTION_DAYS = days

    return keep


def make_team(**overrides):
    from keys.models import Team

    return Team.objects.create(**{"team_id": f"team-{next(_sequence)}", **overrides})


def make_user(**overrides):
    from keys.models import InternalUser

    return InternalUser.objects.create(**{"user_id": f"user-{next(_sequence)}", **overrides})


def make_key(**overrides):
    from keys.models import VirtualKey

    number = next(_sequence)
    fields = {"token_hash": f"{number:064x}", "key_hint": f"sk-...{number:04d}", **overrides}
    return VirtualKey.objects.create(secret_hash=fields["token_hash"], **fields)


@pytest.fixture
def payers(db):
    """A key that belongs to a user and a team: every call it makes charges all three."""
    team = make_team(team_alias="Research")
    user = make_user()
    key = make_key(user=user, team=team)
    return key, user, team


def charged_entry(key, **overrides) -> SpendEntry:
    return make_entry(key_hash=key.token_hash, user_id=key.user_id or "", team_id=key.team_id or "", **overrides)


MASTER_KEY = "sk-master-spend-tests"


@pytest.fixture(autouse=True)
def spend_urls(settings):
    settings.ROOT_URLCONF = "tests.spend.urls"
    settings.TOLLGATE_MASTER_KEY = MASTER_KEY


@pytest.fixture
def api(client):
    """A test client that sends the master key."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {MASTER_KEY}"
    return client
