"""With a replica configured (DATABASE_REPLICA_URL), reports read the ledger from it, and everything that must see
its own writes reads and writes the primary: the ledger, budgets (/key/info), the rollup, reconcile and retention.

The replica here is a second database holding the ledger's tables (a second SQLite file, or a second PostgreSQL
database), configured under the alias the setting makes. It holds other rows than the primary, so an answer shows
which database it was read from.
"""

import copy
from decimal import Decimal

import orjson
import pytest
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from spend import tasks
from spend.ledger import write_batch
from spend.models import DailySpend, DailyTagSpend, RollupState, SpendLog
from spend.routers import REPLICA
from tests.spend.conftest import DAY, MASTER_KEY, charged_entry, entry_fields, make_entry

pytestmark = pytest.mark.django_db(databases=["default", REPLICA])
WINDOW = {"start_date": "2026-03-10", "end_date": "2026-03-11"}
# The ledger's tables a report reads.
LEDGER_TABLES = (SpendLog, DailySpend, DailyTagSpend, RollupState)
REPLICA_COST, PRIMARY_COST = Decimal("7.77"), Decimal("1.11")


def _with_their_targets(models) -> list:
    """The models and those their foreign keys point to, each after its targets."""
    ordered = []

    def visit(model):
        if model in ordered:
            return
        for field in model._meta.concrete_fields:
            if field.is_relation and field.related_model is not model:
                visit(field.related_model)
        ordered.append(model)

    for model in models:
        visit(model)
    return ordered


@pytest.fixture(scope="module", autouse=True)
def replica_database(django_db_setup, django_db_blocker, tmp_path_factory):
    primary = connections["default"]
    replica = copy.deepcopy(primary.settings_dict)
    with django_db_blocker.unblock():
        if primary.vendor == "sqlite":
            replica["NAME"] = str(tmp_path_factory.mktemp("replica") / "replica.sqlite3")
        else:
            replica["NAME"] = f"{primary.settings_dict['NAME']}_replica"
            with primary._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{replica["NAME"]}"')
                cursor.execute(f'CREATE DATABASE "{replica["NAME"]}"')
        replica["TEST"] = {**replica["TEST"], "NAME": replica["NAME"], "MIRROR": None}
        connections.settings[REPLICA] = replica  # settings.DATABASES itself: what DATABASE_REPLICA_URL would add
        with connections[REPLICA].schema_editor() as editor:
            for model in _with_their_targets(LEDGER_TABLES):
                editor.create_model(model)
    yield
    with django_db_blocker.unblock():
        connections[REPLICA].close()
        del connections[REPLICA]
        del connections.settings[REPLICA]
        if primary.vendor != "sqlite":
            with primary._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{replica["NAME"]}" WITH (FORCE)')


@pytest.fixture
def both_ledgers():
    """The replica holds a call of 7.77 (rolled up) and one of 0 that is not; the primary, one of 1.11."""
    common = {"key_hash": "a" * 64, "team_id": "t1", "user_id": "u1", "end_user": "acme", "request_tags": ["prod"]}
    SpendLog.objects.using(REPLICA).create(**entry_fields(request_id="on-replica", cost=REPLICA_COST, **common))
    SpendLog.objects.using(REPLICA).create(**entry_fields(request_id="tail", cost=Decimal(0), **common))
    last = SpendLog.objects.using(REPLICA).get(request_id="on-replica").id
    RollupState.objects.using(REPLICA).create(pk=1, last_log_id=last)
    rollup = {"day": DAY.date(), "requests": 1, "prompt_tokens": 10, "completion_tokens": 5, "cost": REPLICA_COST}
    DailySpend.objects.using(REPLICA).create(
        **{name: common[name] for name in ("key_hash", "team_id", "user_id", "end_user")},
        model_group="gpt-4o", provider="openai", **rollup,
    )  # fmt: skip
    DailyTagSpend.objects.using(REPLICA).create(
        tag="prod", model_group="gpt-4o", **{k: v for k, v in rollup.items() if k != "day"}, day=DAY.date()
    )
    write_batch([make_entry(request_id="on-primary", cost=PRIMARY_COST, **common)])


REPORTS = [
    ("/global/spend", WINDOW),
    ("/global/spend/report", {**WINDOW, "group_by": "team"}),
    ("/global/spend/report", {**WINDOW, "group_by": "api_key", "format": "csv"}),
    ("/global/spend/keys", WINDOW),
    ("/global/spend/teams", WINDOW),
    ("/global/spend/models", WINDOW),
    ("/global/spend/logs", WINDOW),
    ("/global/spend/tags", WINDOW),
    ("/spend/tags", WINDOW),
    ("/spend/logs", WINDOW),
    ("/spend/logs", {**WINDOW, "format": "csv"}),
    ("/user/daily/activity", WINDOW),
    ("/admin/spend/spendlog/overview/", {"start": "2026-03-10", "end": "2026-03-11"}),
    ("/admin/spend/spendlog/overview/", {"start": "2026-03-10", "end": "2026-03-11", "format": "csv"}),
    ("/admin/spend/spendlog/", {}),
    ("/admin/spend/dailyspend/", {}),
]


@pytest.mark.parametrize(("url", "params"), REPORTS)
def test_reports_read_the_replica(admin_client, both_ledgers, url, params):
    admin_client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {MASTER_KEY}"
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        response = admin_client.get(url, params)
        body = b"".join(response.streaming_content) if response.streaming else response.content  # CSV: read as sent

    assert response.status_code == 200, body[:500]
    assert b"7.77" in body
    assert b"1.11" not in body
    assert len(on_replica) >= 1


def test_spend_logs_filtered_by_key_read_the_replica(api, both_ledgers):
    response = api.get("/spend/logs", {**WINDOW, "api_key": "a" * 64, "summarize": "false"})

    assert sorted(log["request_id"] for log in orjson.loads(response.content)) == ["on-replica", "tail"]


@pytest.fixture
def gateway_urls(settings):
    settings.ROOT_URLCONF = "gateway.urls"


def test_the_ledger_budgets_rollup_reconcile_and_retention_stay_on_the_primary(payers, retention, api, gateway_urls):
    key, _, _ = payers
    retention(1)
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        write_batch([charged_entry(key, cost=Decimal("0.25")), charged_entry(key, start_time=timezone.now())])
        info = api.get("/key/info", {"key": key.token_hash})
        call_command("rollup_spend")
        call_command("reconcile_spend")
        tasks.prune_spend_logs()

    assert on_replica.captured_queries == []
    assert Decimal(str(orjson.loads(info.content)["info"]["spend"])) == Decimal("0.25013")
    assert SpendLog.objects.count() == 1  # the old one pruned, on the primary
    assert DailySpend.objects.count() == 2
    assert SpendLog.objects.using(REPLICA).count() == 0


def test_a_row_read_from_the_replica_is_saved_to_the_primary():
    RollupState.objects.create(pk=1, last_log_id=1)
    RollupState.objects.using(REPLICA).create(pk=1, last_log_id=5)
    state = RollupState.objects.using(REPLICA).get(pk=1)

    state.last_log_id = 9
    state.save()

    assert RollupState.objects.get(pk=1).last_log_id == 9
    assert RollupState.objects.using(REPLICA).get(pk=1).last_log_id == 5
