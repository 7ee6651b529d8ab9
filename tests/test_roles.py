"""The three roles (issue 23) as a person logged into the admin meets them: Admins change anything, Finance reads
every Tollgate page and changes nothing (not even by typing a URL or posting a form), Team admins reach keys, teams
and users only. The groups come with the migrations and follow every migrate (models added later included)."""

import io
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.urls import reverse

from gateway.models import Deployment
from gateway.roles import ADMINS, FINANCE, TEAM_ADMINS, sync_roles
from keys.models import Team, TeamAdministrator
from keys.roles import teams_administered_by
from tests.keys.factories import make_key, make_team, make_user
from tests.spend.conftest import make_log

pytestmark = pytest.mark.django_db


def login_as(client, role: str, username: str = "person"):
    user = get_user_model().objects.create(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.fixture
def rows():
    team = make_team(team_alias="research", max_budget=Decimal("50"))
    user = make_user(user_email="ann@example.com")
    _, key = make_key(team_id=team.team_id, key_alias="research-app")
    deployment = Deployment.objects.create(model_name="gpt-4o", litellm_model="openai/gpt-4o", api_key="sk-role-test")
    return {"team": team, "user": user, "key": key, "deployment": deployment}


def codenames(role: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=role).permissions.values_list("content_type__app_label", "codename")
    }


def test_the_migrations_make_the_three_roles():
    every = {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")}
    finance = codenames(FINANCE)

    assert codenames(ADMINS) == every
    assert {
        "spend.view_spendlog",
        "spend.view_dailyspend",
        "gateway.view_deployment",
        "pricing.view_costmapentry",
    } <= finance
    assert {"keys.view_virtualkey", "keys.view_team", "keys.view_internaluser", "pricing.view_pricerevision"} <= finance
    assert {name.split(".")[1].split("_")[0] for name in finance} == {"view"}
    assert {name.split(".")[0] for name in finance} == {"gateway", "keys", "pricing", "spend"}
    assert codenames(TEAM_ADMINS) == {
        "keys.add_virtualkey",
        "keys.view_virtualkey",
        "keys.change_virtualkey",
        "keys.view_team",
        "keys.change_team",
        "keys.view_internaluser",
        "keys.change_internaluser",
        "keys.view_teamadministrator",
    }


def test_a_model_added_later_joins_the_roles_and_a_permission_given_by_hand_is_taken_back():
    widget = ContentType.objects.create(app_label="spend", model="widget")
    Permission.objects.create(content_type=widget, codename="view_widget", name="Can view widget")
    Permission.objects.create(content_type=widget, codename="change_widget", name="Can change widget")
    Group.objects.get(name=FINANCE).permissions.add(Permission.objects.get(codename="change_deployment"))

    out = io.StringIO()
    call_command("sync_roles", stdout=out)

    assert "spend.view_widget" in codenames(FINANCE)
    assert "spend.change_widget" not in codenames(FINANCE)
    assert {"spend.change_widget", "spend.view_widget"} <= codenames(ADMINS)
    assert "gateway.change_deployment" not in codenames(FINANCE)
    assert f"{FINANCE}: {len(codenames(FINANCE))} permissions" in out.getvalue()


PAGES = [
    "admin:gateway_deployment_changelist",
    "admin:keys_virtualkey_changelist",
    "admin:keys_team_changelist",
    "admin:keys_internaluser_changelist",
    "admin:keys_keychange_changelist",
    "admin:pricing_costmapentry_changelist",
    "admin:pricing_costmapversion_changelist",
    "admin:spend_spendlog_changelist",
    "admin:spend_dailyspend_changelist",
]


def test_finance_reads_every_page(client, rows):
    login_as(client, FINANCE)

    statuses = {name: client.get(reverse(name)).status_code for name in PAGES}
    team_page = client.get(reverse("admin:keys_team_change", args=[rows["team"].pk]))

    assert statuses == dict.fromkeys(PAGES, 200)
    assert team_page.status_code == 200
    assert 'name="_save"' not in team_page.content.decode()  # read-only: no save button


@pytest.mark.parametrize(
    ("row", "url"),
    [
        ("team", "admin:keys_team_change"),
        ("key", "admin:keys_virtualkey_change"),
        ("deployment", "admin:gateway_deployment_change"),
    ],
)
def test_finance_changes_nothing_by_url_or_post(client, rows, row, url):
    login_as(client, FINANCE)
    obj = rows[row]
    model = type(obj)
    before = model.objects.filter(pk=obj.pk).values().get()
    label = f"admin:{model._meta.app_label}_{model._meta.model_name}"

    add_page = client.get(reverse(f"{label}_add"))
    delete_page = client.get(reverse(f"{label}_delete", args=[obj.pk]))
    posted = client.post(reverse(url, args=[obj.pk]), {"team_alias": "renamed", "key_alias": "x", "model_name": "y"})
    deleted = client.post(reverse(f"{label}_delete", args=[obj.pk]), {"post": "yes"})

    assert (add_page.status_code, delete_page.status_code, posted.status_code, deleted.status_code) == (403,) * 4
    assert model.objects.filter(pk=obj.pk).values().get() == before


def test_team_admins_reach_keys_teams_and_users_only(client, rows):
    login_as(client, TEAM_ADMINS)
    reachable = {
        name: client.get(reverse(name)).status_code
        for name in [
            "admin:keys_virtualkey_changelist",
            "admin:keys_team_changelist",
            "admin:keys_internaluser_changelist",
            "admin:gateway_deployment_changelist",
            "admin:spend_spendlog_changelist",
            "admin:pricing_costmapentry_changelist",
            "admin:auth_user_changelist",
        ]
    }

    assert reachable == {
        "admin:keys_virtualkey_changelist": 200,
        "admin:keys_team_changelist": 200,
        "admin:keys_internaluser_changelist": 200,
        "admin:gateway_deployment_changelist": 403,
        "admin:spend_spendlog_changelist": 403,
        "admin:pricing_costmapentry_changelist": 403,
        "admin:auth_user_changelist": 403,
    }
    assert client.get(reverse("admin:keys_team_add")).status_code == 403


def test_admins_change_anything(client, rows):
    login_as(client, ADMINS)

    assert client.get(reverse("admin:gateway_deployment_add")).status_code == 200
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200


def test_a_team_admin_administers_the_teams_linked_to_its_login(client):
    person = login_as(client, TEAM_ADMINS)
    research, _ = make_team(team_alias="research"), make_team(team_alias="sales")
    TeamAdministrator.objects.create(user=person, team=research)
    other = get_user_model().objects.create(username="other", is_staff=True)

    assert list(teams_administered_by(person)) == [research]
    assert list(teams_administered_by(other)) == []
    assert Team.objects.count() == 2


def test_sync_roles_is_idempotent():
    first = sync_roles()

    assert sync_roles() == first
    assert Group.objects.filter(name__in=[ADMINS, FINANCE, TEAM_ADMINS]).count() == 3


def registered() -> dict[str, str]:
    """Every model the admin shows, as app.model: its URL names' prefix."""
    return {
        f"{model._meta.app_label}.{model._meta.model_name}": f"admin:{model._meta.app_label}_{model._meta.model_name}"
        for model in admin.site._registry
    }


def login_role(client, role: str | None):
    if role:
        return login_as(client, role)
    user = get_user_model().objects.create(username="staff-only", is_staff=True)  # staff, but in no role
    client.force_login(user)
    return user


# What each role opens (200; everything else is 403): the lists, adding a key, a team's page, the spend overview,
# its CSV, and the spend logs' CSV export action.
OPENS = {
    ADMINS: ("every list", {"add a key", "a team's page", "overview", "overview CSV", "spend logs CSV"}),
    FINANCE: ("every list of Tollgate's apps", {"a team's page", "overview", "overview CSV", "spend logs CSV"}),
    TEAM_ADMINS: ("keys, teams and users", {"add a key", "a team's page", "overview", "overview CSV"}),
    None: ("no list", set()),
}
LISTS = {
    "every list": lambda label: True,
    "every list of Tollgate's apps": lambda label: label.split(".")[0] in {"gateway", "keys", "pricing", "spend"},
    "keys, teams and users": lambda label: label in {"keys.virtualkey", "keys.team", "keys.internaluser"},
    "no list": lambda label: False,
}


@pytest.mark.parametrize("role", list(OPENS), ids=str)
def test_each_role_opens_what_it_may_and_is_refused_the_rest(client, rows, role):
    person = login_role(client, role)
    TeamAdministrator.objects.create(user=person, team=rows["team"])  # a Team admin's own team; others ignore it
    log = make_log(team_id=rows["team"].team_id)
    lists = {label: client.get(reverse(f"{name}_changelist")).status_code for label, name in registered().items()}
    pages = {
        "add a key": client.get(reverse("admin:keys_virtualkey_add")),
        "a team's page": client.get(reverse("admin:keys_team_change", args=[rows["team"].pk])),
        "overview": client.get(reverse("admin:spend_overview")),
        "overview CSV": client.get(reverse("admin:spend_overview"), {"format": "csv"}),
        "spend logs CSV": client.post(
            reverse("admin:spend_spendlog_changelist"), {"action": "export_csv", "_selected_action": [log.pk]}
        ),
    }
    opened = {name for name, page in pages.items() if page.status_code == 200}
    index_links_overview = reverse("admin:spend_overview") in client.get(reverse("admin:index")).content.decode()
    lists_named, pages_opened = OPENS[role]

    assert lists == {label: 200 if LISTS[lists_named](label) else 403 for label in lists}
    assert opened == pages_opened
    assert index_links_overview is ("overview" in opened)
    assert {page.status_code for name, page in pages.items() if name not in opened} <= {403}
    assert all(pages[name]["Content-Type"].startswith("text/csv") for name in opened if name.endswith("CSV"))


@pytest.mark.parametrize("label", sorted(registered()))
def test_finance_reaches_no_add_change_or_delete_form_by_url(client, label):
    login_as(client, FINANCE)
    name = registered()[label]

    statuses = [
        client.get(reverse(f"{name}_add")).status_code,
        client.post(reverse(f"{name}_add"), {}).status_code,
        client.post(reverse(f"{name}_change", args=["1"]), {}).status_code,
        client.get(reverse(f"{name}_delete", args=["1"])).status_code,
        client.post(reverse(f"{name}_delete", args=["1"]), {"post": "yes"}).status_code,
    ]

    assert statuses == [403] * 5


def test_finance_is_offered_no_action_that_changes_things_and_cannot_post_one(client, rows):
    login_as(client, FINANCE)
    offered = {}
    for label, name in registered().items():
        page = client.get(reverse(f"{name}_changelist"))
        if page.status_code == 200 and page.context.get("action_form"):
            offered[label] = {value for value, _ in page.context["action_form"].fields["action"].choices if value}

    key = rows["key"]
    blocked = client.post(
        reverse("admin:keys_virtualkey_changelist"), {"action": "block", "_selected_action": [key.pk]}
    )
    key.refresh_from_db()

    assert {label: actions for label, actions in offered.items() if actions - {"export_csv"}} == {}
    assert offered["spend.spendlog"] == {"export_csv"}
    assert blocked.status_code == 200 and key.blocked is False  # the list again, as if no action were asked for


@pytest.mark.parametrize(("role", "shown"), [(FINANCE, False), (ADMINS, True)], ids=str)
def test_a_provider_key_hint_is_shown_only_to_who_may_change_deployments(client, rows, role, shown):
    login_as(client, role)
    pages = [
        client.get(reverse("admin:gateway_deployment_changelist")),
        client.get(reverse("admin:gateway_deployment_change", args=[rows["deployment"].pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        assert ("sk-...test" in page.content.decode()) is shown
        assert "sk-role-test" not in page.content.decode()
