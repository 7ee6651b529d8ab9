"""The audit trail: people's changes in the admin and through the management API land in it with who, from where,
before and after; secrets never do; the proxy's own writes leave nothing; the admin shows it read-only, to Admins and
Finance, and exports the filtered list as CSV."""

import csv
import io
import json
from decimal import Decimal

import httpx
import openai
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

import gateway.asgi
from gateway.audit import RequestActor
from gateway.models import AuditEntry, Deployment
from gateway.roles import ADMINS, FINANCE, TEAM_ADMINS
from keys.auth import hash_key
from keys.caller import MASTER, Caller
from keys.models import Customer, VirtualKey
from pricing.audit import Actor, ActorType, acting, command_actor
from pricing.models import CostMapVersion
from pricing.tasks import refresh_cost_map
from pricing.versions import store_fetched_map
from spend.models import SpendLog
from tests.e2e.server import MASTER_KEY
from tests.gateway.test_admin_deployments import FORM as DEPLOYMENT_FORM
from tests.keys.factories import make_key
from tests.polling import wait_until
from tests.pricing.conftest import CostMapServer, entry, raw, small_map

pytestmark = pytest.mark.django_db

PROVIDER_KEY = "sk-provider-audit-secret-0123456789abcdef"


def _login(role: str | None = None, superuser: bool = False) -> Client:
    user = get_user_model().objects.create(username=f"{role or 'root'}-login", is_staff=True, is_superuser=superuser)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def _entries(model: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(model=model).order_by("id"))


@pytest.mark.parametrize(
    ("trusted", "headers", "address"),
    [
        (False, {}, "127.0.0.1"),
        (False, {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}, "127.0.0.1"),
        (True, {"HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.7"}, "198.51.100.7"),
    ],
    ids=["remote-addr", "forwarded-for-untrusted", "forwarded-for-trusted"],
)
def test_an_admin_edit_of_a_deployments_price_records_who_where_before_and_after(settings, trusted, headers, address):
    settings.TOLLGATE_TRUST_X_FORWARDED_FOR = trusted
    admin = _login(superuser=True)
    add = reverse("admin:gateway_deployment_add")
    assert admin.post(add, {**DEPLOYMENT_FORM, "input_cost_per_token": "2.5", "new_api_key": PROVIDER_KEY},
                      **headers).status_code == 302  # fmt: skip
    deployment = Deployment.objects.get(model_id="negotiated-1")

    change = reverse("admin:gateway_deployment_change", args=[deployment.pk])
    response = admin.post(change, {**DEPLOYMENT_FORM, "input_cost_per_token": "3"}, **headers)

    assert response.status_code == 302
    created, updated = _entries("gateway.deployment")
    assert (created.action, created.actor, created.actor_type, created.address) == (
        "created", "root-login", "login", address
    )  # fmt: skip
    assert created.after["input_cost_per_token"] == "0.0000025"  # money as its exact digits
    assert created.after["api_key"] == "[hidden]"
    assert (updated.action, updated.object_id, updated.object_repr) == (
        "updated", str(deployment.pk), "negotiated → openai/gpt-4o"
    )  # fmt: skip
    assert (updated.before, updated.after) == (
        {"input_cost_per_token": "0.0000025"},
        {"input_cost_per_token": "0.000003"},
    )


def test_an_admin_edit_of_a_key_records_its_budget_before_and_after(admin_client):
    _, key = make_key(key_alias="ci-bot", max_budget=Decimal("1"))
    form = {"key_alias": "ci-bot", "team": "", "user": "", "config": "{}", "metadata": "{}", "models_1": "",
            "aliases": "", "initial-config": "{}", "initial-metadata": "{}", "max_budget": "2.5"}  # fmt: skip

    response = admin_client.post(reverse("admin:keys_virtualkey_change", args=[key.pk]), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    (entry,) = _entries("keys.virtualkey")  # the key made in code above is no one's change
    assert (entry.actor, entry.action, entry.object_repr) == ("admin", "updated", "ci-bot")
    assert (entry.before, entry.after) == ({"max_budget": "1"}, {"max_budget": "2.5"})


def test_management_api_changes_are_the_master_keys(client, master_headers):
    def post(path, body):
        response = client.post(path, json.dumps(body), content_type="application/json", **master_headers)
        assert response.status_code == 200, response.content
        return response.json()

    key = post("/key/generate", {"key_alias": "billing", "max_budget": 5})["key"]
    post("/key/update", {"key": key, "max_budget": 7, "blocked": True})
    post("/team/new", {"team_id": "research", "team_alias": "Research"})
    post("/customer/new", {"user_id": "acme"})
    post("/customer/update", {"user_id": "acme", "alias": "Acme Inc."})

    rows = AuditEntry.objects.order_by("id")
    assert {(row.actor, row.actor_type, row.address) for row in rows} == {("master key", "api", "127.0.0.1")}
    assert [(row.model, row.action) for row in rows] == [
        ("keys.virtualkey", "created"),
        ("keys.virtualkey", "updated"),
        ("keys.team", "created"),
        ("keys.customer", "created"),
        ("keys.customer", "updated"),
    ]
    update = rows.filter(model="keys.virtualkey", action="updated").get()
    assert (update.before, update.after) == (
        {"max_budget": "5", "blocked": False},
        {"max_budget": "7", "blocked": True},
    )
    assert rows.filter(model="keys.customer", action="updated").get().after == {"alias": "Acme Inc."}


@pytest.mark.django_db(transaction=True)
async def test_under_the_asgi_server_an_api_change_is_the_keys_from_the_tcp_peers_address():
    transport = httpx.ASGITransport(app=gateway.asgi.application, client=("198.51.100.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.post("/key/generate", json={"key_alias": "served"},
                                   headers={"Authorization": f"Bearer {MASTER_KEY}"})  # fmt: skip

    assert response.status_code == 200
    rows = sync_to_async(lambda: list(AuditEntry.objects.values_list("actor", "address", "model", "object_repr")))
    assert await rows() == [("master key", "198.51.100.3", "keys.virtualkey", "served")]


@pytest.mark.parametrize(
    ("auth", "actor"),
    [
        (MASTER, "master key"),
        (
            Caller(is_master=False, key_hash="1a2b3c4d" * 8, key_alias="deployer", key_hint="sk-...wxyz"),
            "key sk-...wxyz (deployer)",
        ),
        (Caller(is_master=False, key_hash="1a2b3c4d" * 8, key_hint="sk-...wxyz"), "key sk-...wxyz (1a2b3c4d)"),
    ],
    ids=["master-key", "virtual-key-by-alias", "virtual-key-by-hash"],
)
def test_an_api_change_is_attributed_to_the_key_the_authentication_put_on_the_request(rf, auth, actor):
    request = rf.post("/key/update", REMOTE_ADDR="192.0.2.4")
    request.auth = auth  # what DRF does with its authentication's answer

    with acting(RequestActor(request)):
        make_key(key_alias="changed-by-api")

    (entry,) = _entries("keys.virtualkey")
    assert (entry.actor, entry.actor_type, entry.address) == (actor, "api", "192.0.2.4")


def test_no_secret_reaches_the_audit_trail(admin_client, client, master_headers):
    admin_client.post(reverse("admin:gateway_deployment_add"), {**DEPLOYMENT_FORM, "new_api_key": PROVIDER_KEY,
                      "api_base": "https://user:hunter2-pass@llm.example.com/v1?api-key=query-secret-42"})  # fmt: skip
    deployment = Deployment.objects.get()
    rotate = {**DEPLOYMENT_FORM, "new_api_key": PROVIDER_KEY + "-rotated"}
    admin_client.post(reverse("admin:gateway_deployment_change", args=[deployment.pk]), rotate)
    response = client.post("/key/generate", json.dumps({"key_alias": "k"}), content_type="application/json",
                           **master_headers)  # fmt: skip
    raw_key = response.json()["key"]
    regenerated = client.post("/key/regenerate", json.dumps({"key": raw_key}), content_type="application/json",
                              **master_headers).json()["key"]  # fmt: skip
    key = VirtualKey.objects.get()
    with acting(Actor("alice", ActorType.LOGIN)):
        get_user_model().objects.create_user("bob", password="bob-password-Secret-77")
    deployment.refresh_from_db()
    secrets = [PROVIDER_KEY, PROVIDER_KEY + "-rotated", deployment.api_key, raw_key, regenerated, hash_key(raw_key),
               key.secret_hash, "hunter2-pass", "query-secret-42", "bob-password-Secret-77",
               get_user_model().objects.get(username="bob").password, MASTER_KEY]  # fmt: skip

    trail = json.dumps([list(row) for row in AuditEntry.objects.values_list()], default=str)

    assert AuditEntry.objects.filter(model="gateway.deployment", action="updated").get().after["api_key"] == (
        "[hidden, changed]"
    )
    assert AuditEntry.objects.filter(model="keys.virtualkey").count() == 2
    assert AuditEntry.objects.filter(model="auth.user").exists()
    assert [secret[:6] for secret in secrets if secret[-12:] in trail] == []


@pytest.mark.django_db(transaction=True)
async def test_proxy_calls_charging_spend_add_no_audit_rows():
    raw_key, key = await make_key_async(max_budget=Decimal("10"))
    await Deployment.objects.acreate(model_id="mock-1", model_name="demo-model", litellm_model="mock/demo",
                                     base_model="gpt-4o-mini")  # fmt: skip
    transport = httpx.ASGITransport(app=gateway.asgi.application)
    async with openai.AsyncOpenAI(base_url="http://tollgate/v1", api_key=raw_key, max_retries=0,
                                  http_client=httpx.AsyncClient(transport=transport)) as sdk:  # fmt: skip
        for _ in range(3):
            await sdk.chat.completions.create(
                model="demo-model", messages=[{"role": "user", "content": "hi"}], user="new-customer"
            )

    charged = await wait_until_spend(key.pk)

    assert charged > 0
    assert await Customer.objects.filter(end_user_id="new-customer").aexists()  # made by the proxy, on first sight
    assert await AuditEntry.objects.acount() == 0


async def make_key_async(**data):
    return await sync_to_async(make_key)(**data)


async def wait_until_spend(key_pk: int) -> Decimal:
    def spent():
        return SpendLog.objects.count() == 3 and VirtualKey.objects.get(pk=key_pk).spend

    return await sync_to_async(wait_until)(spent, "the three calls charged to the key")


def test_nobody_may_add_change_or_delete_an_audit_entry_not_even_a_superuser(admin_client):
    with acting(Actor("alice", ActorType.LOGIN)):
        make_key(key_alias="audited")
    entry = AuditEntry.objects.get()

    add = admin_client.get(reverse("admin:gateway_auditentry_add"))
    change = admin_client.post(reverse("admin:gateway_auditentry_change", args=[entry.pk]), {"actor": "mallory"})
    delete = admin_client.post(reverse("admin:gateway_auditentry_delete", args=[entry.pk]), {"post": "yes"})
    bulk = admin_client.post(reverse("admin:gateway_auditentry_changelist"),
                             {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})  # fmt: skip

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert bulk.status_code in (200, 302)
    assert list(AuditEntry.objects.values_list("pk", "actor")) == [(entry.pk, "alice")]


def test_the_entry_page_shows_the_changed_fields_before_and_after(admin_client):
    _, key = make_key(key_alias="before-name")
    with acting(Actor("alice", ActorType.LOGIN, "192.0.2.1")):
        key.key_alias = "after-name"
        key.save()

    page = admin_client.get(reverse("admin:gateway_auditentry_change", args=[AuditEntry.objects.get().pk]))

    assert "<tr><th>key_alias</th><td>before-name</td><td>after-name</td></tr>" in page.content.decode()


def test_the_csv_export_streams_the_filtered_list(admin_client):
    with acting(Actor("alice", ActorType.LOGIN, "192.0.2.1")):
        _, key = make_key(key_alias="exported", max_budget=Decimal("0.000000123"))
        key.blocked = True
        key.save()
    with acting(Actor("command import_config", ActorType.COMMAND)):
        Deployment.objects.create(model_name="gpt-4o", litellm_model="openai/gpt-4o")
    listing = admin_client.get(reverse("admin:gateway_auditentry_changelist"), {"actor": "alice"})
    export_url = reverse("admin:gateway_auditentry_export") + "?actor=alice"
    assert export_url in listing.content.decode().replace("&amp;", "&")

    response = admin_client.get(export_url)

    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["actor"], row["address"], row["model"], row["action"]) for row in rows] == [
        ("alice", "192.0.2.1", "keys.virtualkey", "updated"),
        ("alice", "192.0.2.1", "keys.virtualkey", "created"),
    ]
    assert json.loads(rows[0]["after"]) == {"blocked": True}
    assert json.loads(rows[1]["after"])["max_budget"] == "0.000000123"
    assert admin_client.get(reverse("admin:gateway_auditentry_export"), {"at__gte": "not a date"}).status_code == 400


@pytest.mark.parametrize(
    ("role", "status"), [(ADMINS, 200), (FINANCE, 200), (TEAM_ADMINS, 403)], ids=["admins", "finance", "team-admins"]
)
def test_admins_and_finance_read_the_trail_and_team_admins_do_not(role, status):
    with acting(Actor("alice", ActorType.LOGIN)):
        make_key(key_alias="seen")
    login = _login(role)
    entry = AuditEntry.objects.get()

    pages = [reverse("admin:gateway_auditentry_changelist"), reverse("admin:gateway_auditentry_export"),
             reverse("admin:gateway_auditentry_change", args=[entry.pk])]  # fmt: skip

    assert [login.get(page).status_code for page in pages] == [status] * 3
    assert login.post(pages[2], {"actor": "mallory"}).status_code == 403
    # History has only a view permission: no role can be given the power to rewrite it.
    assert set(Permission.objects.filter(content_type__model="auditentry").values_list("codename", flat=True)) == {
        "view_auditentry"
    }


def test_a_change_of_a_logins_groups_records_the_groups_before_and_after():
    user = get_user_model().objects.create(username="carol", is_staff=True)
    with acting(Actor("alice", ActorType.LOGIN)):
        user.groups.add(Group.objects.get(name=FINANCE))

    (entry,) = _entries("auth.user")
    assert (entry.object_repr, entry.before, entry.after) == ("carol", {"groups": []}, {"groups": [FINANCE]})


def test_changes_made_with_no_one_acting_are_not_recorded():
    make_key(key_alias="no-one")
    Deployment.objects.create(model_name="gpt-4o", litellm_model="openai/gpt-4o").delete()

    assert AuditEntry.objects.count() == 0


def test_a_deletion_keeps_the_rows_last_values():
    _, key = make_key(key_alias="doomed", max_budget=Decimal("4.20"))
    with acting(Actor("alice", ActorType.LOGIN)):
        key.delete()

    (entry,) = _entries("keys.virtualkey")
    assert (entry.action, entry.after, entry.before["key_alias"], entry.before["max_budget"]) == (
        "deleted", None, "doomed", "4.2"
    )  # fmt: skip
    assert entry.before["token_hash"] == entry.before["secret_hash"] == "[hidden]"


def test_a_spend_fixed_by_reconcile_is_recorded_as_the_commands(settings):
    _, key = make_key(key_alias="drifted")
    VirtualKey.objects.filter(pk=key.pk).update(spend=Decimal("5"))

    with acting(command_actor(["manage.py", "reconcile_spend", "--fix"])):
        call_command("reconcile_spend", "--fix")

    (entry,) = _entries("keys.virtualkey")
    assert (entry.actor, entry.actor_type, entry.object_repr) == ("command reconcile_spend", "command", "drifted")
    assert (entry.before, entry.after) == ({"spend": "5"}, {"spend": "0"})


@pytest.fixture
def cost_map_server():
    server = CostMapServer()
    yield server
    server.close()


def test_a_cost_map_refresh_is_recorded_as_the_tasks(cost_map_server):
    store_fetched_map(raw(small_map()), "test://small", max_loss_share=Decimal(1))  # no one acting: no row
    old = CostMapVersion.objects.get(status="active")
    changed = {**small_map(), "brand-new": entry(input_price="0.00003", output_price="0.00006")}

    refresh_cost_map.apply(args=[cost_map_server.serve("/map.json", raw(changed))]).get()

    superseded, created = _entries("pricing.costmapversion")
    assert {superseded.actor, created.actor} == {"task refresh_cost_map"}
    assert (superseded.object_id, superseded.before, superseded.after) == (
        str(old.pk), {"status": "active"}, {"status": "superseded"}
    )  # fmt: skip
    assert (created.action, created.after["status"], created.after["diff"]["added"]) == ("created", "active",
                                                                                         ["brand-new"])  # fmt: skip
    assert "raw_json" not in created.after  # megabytes, kept by the version itself


@pytest.mark.parametrize(
    ("argv", "actor"),
    [
        (["manage.py", "import_config", "config.yaml"], "command import_config"),
        (["manage.py", "reconcile_spend", "--fix"], "command reconcile_spend"),
        (["manage.py", "serve"], None),
        (["manage.py"], None),
    ],
)
def test_a_command_people_run_acts_under_its_name_and_a_server_under_none(argv, actor):
    found = command_actor(argv)

    assert (found.name if found else None) == actor
