"""Migrations on a database that already holds keys: every key issued before keeps working after."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from keys import services
from keys.auth import authenticate, hash_key

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_SECRET_HASH = [("keys", "0004_spend_epoch")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


@pytest.fixture
def keys_issued_before_secret_hash():
    """Raw keys stored by the schema before `secret_hash`, owned by a user and a team; the database is brought
    forward to the latest schema afterwards."""
    old = migrate(BEFORE_SECRET_HASH).loader.project_state(BEFORE_SECRET_HASH).apps
    old.get_model("keys", "Team").objects.create(team_id="t-old")
    user = old.get_model("keys", "InternalUser").objects.create(user_id="u-old")
    raw_keys = [f"sk-issued-before-secret-hash-{n}" for n in range(3)]
    for raw_key in raw_keys:
        old.get_model("keys", "VirtualKey").objects.create(
            token_hash=hash_key(raw_key), key_hint=services.key_hint(raw_key), user=user, team_id="t-old"
        )
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    return raw_keys


async def test_keys_issued_before_secret_hash_still_authenticate(keys_issued_before_secret_hash):
    for raw_key in keys_issued_before_secret_hash:
        caller = await authenticate(f"Bearer {raw_key}")
        assert (caller.key_hash, caller.team_id, caller.user_id) == (hash_key(raw_key), "t-old", "u-old")


def test_keys_issued_before_secret_hash_can_be_found_and_regenerated(keys_issued_before_secret_hash):
    raw_key = keys_issued_before_secret_hash[0]
    key = services.find_key(raw_key)
    assert key.secret_hash == key.token_hash == hash_key(raw_key)
    new_raw_key, _ = services.regenerate_key(key, {}, actor="t")
    assert services.find_key(new_raw_key).token_hash == hash_key(raw_key)
