"""A Team admins login sees in the admin only the teams linked to it, their keys and their members (issue 23):
another team's row is not listed, is missing by URL (the admin's redirect to its index), and is not offered as a key's team."""

import pytest
from django.urls import reverse

from gateway.roles import ADMINS, TEAM_ADMINS
from keys.models import TeamAdministrator
from tests.keys.factories import make_key, make_team, make_user
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
    ours, theirs = two_teams["ours"][index], two_teams["theirs"][index]

    listed = client.get(reverse(f"admin:{model}_changelist")).context["cl"].result_list

    assert list(listed) == [ours]
    assert client.get(reverse(f"admin:{model}_change", args=[ours.pk])).status_code == 200
    # Django's admin answers a row outside get_queryset as a missing one: back to the index, "doesn't exist".
    hidden = client.get(reverse(f"admin:{model}_change", args=[theirs.pk]))
    assert (hidden.status_code, hidden.url) == (302, reverse("admin:index"))


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
