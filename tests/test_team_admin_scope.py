"""A Team admins login sees in the admin only the teams linked to it, their keys and their members (issue 23):
another team's row is not listed, is missing (404) by URL whether its change, delete or history page is asked for,
and is not offered as a key's team; a key's budget and rate limits stay within its team's own, which only the Admins
set; and the spend overview shows its own teams' spend, another team's drill-down being missing too."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from gateway.roles import ADMINS, TEAM_ADMINS
from keys.models import TeamAdministrator, VirtualKey
from spend.ledger import write_batch
from tests.keys.factories import make_key, make_team, make_user
from tests.spend.conftest import make_entry
from tests.test_roles import login_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_teams():
    ours, theirs = make_team(team_alias="research"), make_team(team_alias="sales")
    our_user, their_user = make_user(user_email="ann@example.com"), make_user(user_email="bob@example.com")
    our_user.teams.add(ours)
    their_user.teams.add(theirs)
    _, our_key = make_key(team_id=ours.team_id, key_alias="research-app")
    _, their_key = make_key(team_id=theirs.team_id, key_alias="sales-app")
    return {"ours": (ours, our_user, our_key), "theirs": (theirs, their_user, their_key)}


PAGES = [("keys_team", 0), ("keys_internaluser", 1), ("keys_virtualkey", 2)]


@pytest.mark.parametrize(("model", "index"), PAGES, ids=[m for m, _ in PAGES])
def test_a_team_admin_sees_only_its_teams_rows(client, two_teams, model, index):
    person = login_as(client, TEAM_ADMINS)
    TeamAdministrator.objects.create(user=person, team=two_teams["ours"][0])
    ours = two_teams["ours"][index]

    listed = client.get(reverse(f"admin:{model}_changelist")).context["cl"].result_list

    assert list(listed) == [ours]
    assert client.get(reverse(f"admin:{model}_change", args=[ours.pk])).status_code == 200


@pytest.mark.parametrize("page", ["change", "delete", "history"])
@pytest.mark.parametrize(("model", "index"), PAGES, ids=[m for m, _ in PAGES])
def test_another_teams_row_is_missing_by_url_not_forbidden(client, two_teams, model, index, page):
    person = login_as(client, TEAM_ADMINS)
    TeamAdministrator.objects.create(user=person, team=two_teams["ours"][0])
    theirs = two_teams["theirs"][index]
    url = reverse(f"admin:{model}_{page}", args=[theirs.pk])

    assert client.get(url).status_code == 404
    assert client.post(url, {"post": "yes", "team_alias": "taken"}).status_code == 404
    assert type(theirs).objects.filter(pk=theirs.pk).exists()


def test_a_members_page_shows_a_team_admin_only_its_teams_and_keeps_the_others(client, two_teams):
    person = login_as(client, TEAM_ADMINS)
    ours, their_team = two_teams["ours"][0], two_teams["theirs"][0]
    TeamAdministrator.objects.create(user=person, team=ours)
    member = two_teams["ours"][1]
    member.teams.add(their_team)
    make_key(team_id=their_team.team_id, user_id=member.user_id, key_alias="sales-bot")
    url = reverse("admin:keys_internaluser_change", args=[member.pk])

    page = client.get(url)
    listed = client.get(reverse("admin:keys_internaluser_changelist"))
    saved = client.post(url, {"user_email": "ann@research.example", "teams": [ours.pk], "models_1": "",
                              "budget_duration": "", "metadata": "{}", "keys-TOTAL_FORMS": "0",
                              "keys-INITIAL_FORMS": "0"})  # fmt: skip

    assert list(page.context["adminform"].form.fields["teams"].queryset) == [ours]
    assert "sales" not in page.content.decode()  # neither the other team nor the member's key in it
    assert "sales" not in listed.content.decode()  # nor in the list's teams column
    assert [user.key_total for user in listed.context["cl"].result_list] == [0]  # nor the other team's key counted
    assert saved.status_code == 302
    member.refresh_from_db()
    assert member.user_email == "ann@research.example"
    assert set(member.teams.all()) == {ours, their_team}


@pytest.mark.parametrize("model", ["keys_team", "keys_virtualkey"])
def test_an_admin_asking_for_a_missing_row_gets_djangos_redirect(client, model):
    login_as(client, ADMINS)

    response = client.get(reverse(f"admin:{model}_change", args=[987654]))

    assert (response.status_code, response.url) == (302, reverse("admin:index"))


def test_a_team_admin_is_offered_only_its_teams_for_a_key(client, two_teams):
    person = login_as(client, TEAM_ADMINS)
    TeamAdministrator.objects.create(user=person, team=two_teams["ours"][0])
    key = two_teams["ours"][2]

    form = client.get(reverse("admin:keys_virtualkey_change", args=[key.pk])).context["adminform"].form

    assert list(form.fields["team"].queryset) == [two_teams["ours"][0]]


def test_admins_see_every_team(client, two_teams):
    login_as(client, ADMINS)

    assert len(client.get(reverse("admin:keys_team_changelist")).context["cl"].result_list) == 2


@pytest.mark.parametrize(("role", "shown"), [(ADMINS, True), (TEAM_ADMINS, False)], ids=str)
def test_only_admins_see_who_administers_a_team(client, two_teams, role, shown):
    person = login_as(client, role)
    team = two_teams["ours"][0]
    TeamAdministrator.objects.create(user=person, team=team)

    page = client.get(reverse("admin:keys_team_change", args=[team.pk])).content.decode()

    assert ("team administrators (logins)" in page.lower()) is shown


def key_form(key, **changes) -> dict:
    """The key's change form as the admin posts it, with `changes`."""
    data = {
        "key_alias": key.key_alias, "team": key.team.team_id, "user": "", "expires_0": "", "expires_1": "",
        "models_1": "", "aliases": "", "budget_duration": "", "config": "{}", "metadata": "{}",
        "max_budget": "", "soft_budget": "", "rpm_limit": "", "tpm_limit": "", "max_parallel_requests": "",
    }  # fmt: skip
    return {**data, **{name: "" if value is None else str(value) for name, value in changes.items()}}


@pytest.fixture
def capped(client, two_teams):
    """A Team admin of a team whose budget is $50, 60 rpm and 1000 tpm."""
    person = login_as(client, TEAM_ADMINS)
    team, _, key = two_teams["ours"]
    team.max_budget, team.rpm_limit, team.tpm_limit = Decimal("50"), 60, 1000
    team.save()
    TeamAdministrator.objects.create(user=person, team=team)
    return key


@pytest.mark.parametrize(
    ("field", "value", "refusal"),
    [
        ("max_budget", "50.01", "At most the team's own budget (research: $50.00)"),
        ("max_budget", None, "At most the team's own budget (research: $50.00)"),
        ("rpm_limit", 61, "At most the team's own rpm limit (research: 60)"),
        ("tpm_limit", 1001, "At most the team's own tpm limit (research: 1000)"),
    ],
)
def test_a_team_admin_cannot_give_a_key_more_than_its_team_has(client, capped, field, value, refusal):
    within = {"max_budget": "50", "rpm_limit": 60, "tpm_limit": 1000}
    url = reverse("admin:keys_virtualkey_change", args=[capped.pk])

    refused = client.post(url, key_form(capped, **{**within, field: value}))
    saved = client.post(url, key_form(capped, **within))

    assert refused.status_code == 200
    assert refusal in refused.context["adminform"].form.errors[field][0]
    assert saved.status_code == 302
    capped.refresh_from_db()
    assert (capped.max_budget, capped.rpm_limit, capped.tpm_limit) == (Decimal("50"), 60, 1000)


def test_a_team_admin_makes_keys_for_its_team_within_its_limits(client, capped):
    add = reverse("admin:keys_virtualkey_add")
    form = {**key_form(capped, max_budget="10", rpm_limit=60, tpm_limit=1000), "key_alias": "new-app"}

    over = client.post(add, {**form, "max_budget": "51"})
    no_team = client.post(add, {**form, "team": ""})
    made = client.post(add, form)

    assert "At most the team's own budget" in over.context["adminform"].form.errors["max_budget"][0]
    assert "Choose one of your teams" in no_team.context["adminform"].form.errors["team"][0]
    assert made.status_code == 200 and "The new key" in made.content.decode()  # its secret, shown once
    assert VirtualKey.objects.get(key_alias="new-app").team == capped.team


def test_an_admin_is_not_capped_and_a_team_admin_cannot_raise_its_teams_limits(client, capped, django_user_model):
    team = capped.team
    team_page = client.get(reverse("admin:keys_team_change", args=[team.pk])).context["adminform"].form

    assert {"max_budget", "rpm_limit", "tpm_limit"}.isdisjoint(team_page.fields)  # shown read-only
    login_as(client, ADMINS, username="root")
    url = reverse("admin:keys_virtualkey_change", args=[capped.pk])
    assert client.post(url, key_form(capped, max_budget="500", rpm_limit=600)).status_code == 302


@pytest.fixture
def spend_of_two_teams(two_teams):
    now = timezone.now()
    ours, theirs = two_teams["ours"][0], two_teams["theirs"][0]
    write_batch([
        make_entry(team_id=ours.team_id, key_hash=two_teams["ours"][2].token_hash, cost=Decimal("1.25"), start_time=now),
        make_entry(team_id=theirs.team_id, key_hash=two_teams["theirs"][2].token_hash, cost=Decimal("7"),
                   start_time=now - timedelta(seconds=1)),
    ])  # fmt: skip
    return two_teams


OVERVIEW = "/admin/spend/spendlog/overview/"


def test_a_team_admin_sees_its_teams_spend_only(client, spend_of_two_teams):
    person = login_as(client, TEAM_ADMINS)
    TeamAdministrator.objects.create(user=person, team=spend_of_two_teams["ours"][0])

    page = client.get(OVERVIEW, {"stack": "team"})
    exported = client.get(OVERVIEW, {"stack": "team", "format": "csv"})

    assert page.status_code == 200
    assert {row.name: row.cost for row in page.context["table"]} == {"research": Decimal("1.25")}
    assert page.context["totals"]["exact_cost"] == Decimal("1.25")
    assert [budget["name"] for budget in page.context["budgets"]] == ["research"]
    assert all(row.logs_url == "" for row in page.context["table"])  # the ledger's list is not theirs to open
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert [(row["team"], row["cost_usd"]) for row in rows] == [("research", "1.25")]


@pytest.mark.parametrize(("narrow", "index"), [("team", 0), ("key", 2), ("user", 1)])
def test_another_teams_drill_down_is_missing(client, spend_of_two_teams, narrow, index):
    person = login_as(client, TEAM_ADMINS)
    TeamAdministrator.objects.create(user=person, team=spend_of_two_teams["ours"][0])
    ids = {"team": lambda team: team.team_id, "key": lambda key: key.token_hash, "user": lambda user: user.user_id}
    ours, theirs = spend_of_two_teams["ours"][index], spend_of_two_teams["theirs"][index]

    assert client.get(OVERVIEW, {narrow: ids[narrow](ours)}).status_code == 200
    assert client.get(OVERVIEW, {narrow: ids[narrow](theirs)}).status_code == 404
    assert client.get(OVERVIEW, {narrow: ids[narrow](theirs), "format": "csv"}).status_code == 404
