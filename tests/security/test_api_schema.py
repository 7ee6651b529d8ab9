"""The management API holds to its OpenAPI schema (/schema/) under schemathesis: with the master key, valid and
invalid input alike, no operation answers 500, none answers 2xx to input its schema calls invalid, and every
answer has a documented status, content type and body. A virtual key gets 401 from every operation but the one that
answers it about itself (GET /key/info).

Runs in-process (WSGI) on the test database, deterministically: each operation's coverage phase (every field's
boundary values and wrong types, missing required fields, unexpected methods and content types) and
EXAMPLES_PER_OPERATION fuzzed examples, positive and negative. Each operation starts from the same few rows, with
ids ("0") that the generated values hit, so lookups find something as well as nothing. The /v1/ model paths and
PATCH /model/update are the same views as /model/* and POST: the schema describes them the same, and they are
fuzzed once. `pytest -s` prints the counts.
"""

import collections
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.models import Deployment
from keys.auth import hash_key
from keys.models import InternalUser, Team, VirtualKey
from spend.ledger import write_batch
from spend.rollups import rollup_spend
from tests.e2e.server import MASTER_KEY
from tests.keys.factories import make_key
from tests.spend.conftest import make_entry

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 10
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 8,
        "headers": {"Authorization": f"Bearer {MASTER_KEY}"},
        "suppress-health-check": ["all"],
        "generation": {
            "mode": "all",
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": False},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# The id hypothesis tries first for a non-empty string.
SEEDED = "0"
DAY = datetime(2000, 1, 1, 12, tzinfo=UTC)

full_schema = schemathesis.openapi.from_wsgi("/schema/", WSGIHandler(), config=CONFIG)
schema = full_schema.exclude(path_regex="^/v1/").exclude(method="PATCH")
OPERATIONS = [(method.upper(), path) for path, item in full_schema.raw_schema["paths"].items() for method in item]
CASES: collections.Counter = collections.Counter()


@pytest.fixture(autouse=True)
def _requests_share_the_test_transaction():
    # As in Django's test client: a request must not close the connection that holds the test's transaction.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def seeded():
    """A team, a user in it, a key (whose raw value is the seeded id), a priced deployment with a timeout, and a
    day of spend with its rollup."""
    team = Team.objects.create(team_id=SEEDED, team_alias="seeded")
    user = InternalUser.objects.create(user_id=SEEDED)
    user.teams.add(team)
    _, key = make_key(user_id=SEEDED, team_id=SEEDED, max_budget=Decimal(5), metadata={"purpose": "seeded"})
    VirtualKey.objects.filter(pk=key.pk).update(token_hash=hash_key(SEEDED), secret_hash=hash_key(SEEDED))
    Deployment.objects.create(
        model_id=SEEDED,
        model_name=SEEDED,
        litellm_model="mock/seeded",
        timeout=30.0,
        input_cost_per_token=Decimal("0.000001"),
    )
    write_batch([make_entry(key_hash=hash_key(SEEDED), user_id=SEEDED, team_id=SEEDED, start_time=DAY)])
    rollup_spend(DAY)


@schema.parametrize()
@pytest.mark.usefixtures("seeded")
def test_management_api_holds_to_its_schema(case):
    CASES[f"{case.meta.phase.name.value} {case.meta.generation.mode.value}"] += 1
    CASES[case.operation.label] += 1
    case.call_and_validate(checks=CHECKS)


def test_the_operations_left_out_are_described_as_the_ones_fuzzed():
    paths = full_schema.raw_schema["paths"]
    twins = [(path, method) for path in paths for method in paths[path] if path.startswith("/v1/") or method == "patch"]
    fuzzed = {(result.ok().path, result.ok().method) for result in schema.get_all_operations()}

    assert len(twins) + len(fuzzed) == len(OPERATIONS)
    for path, method in twins:
        same = (path.removeprefix("/v1"), "post" if method == "patch" else method)
        assert same in fuzzed
        assert {**paths[path][method], "operationId": None} == {**paths[same[0]][same[1]], "operationId": None}


def _rows() -> list[int]:
    return [model.objects.count() for model in (VirtualKey, Team, InternalUser, Deployment)]


# A virtual key reads its own info there (tests/keys/test_api_litellm_fields.py); every other operation is refused.
KEYS_MAY_CALL = {("GET", "/key/info")}


@pytest.mark.parametrize(("method", "path"), [operation for operation in OPERATIONS if operation not in KEYS_MAY_CALL])
def test_a_virtual_key_cannot_manage_anything(method, path):
    raw_key, _ = make_key()
    before = _rows()

    response = Client().generic(method, path, "{}", "application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "auth_error"
    assert _rows() == before


def test_the_schema_generates_without_errors_or_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def teardown_module():
    total = sum(count for name, count in CASES.items() if name.startswith(("coverage", "fuzzing")))
    print(f"\nmanagement API schema: {total} cases: " + ", ".join(f"{name} {n}" for name, n in sorted(CASES.items())))
