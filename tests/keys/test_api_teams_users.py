"""/team/* and /user/*: LiteLLM's shapes, validation, and what deleting takes with it."""

import json
from decimal import Decimal

import pytest

from keys.models import InternalUser, KeyChange, Team, VirtualKey
from tests.keys.factories import make_deployment, make_key, make_team, make_user

pytestmark = pytest.mark.django_db


def test_team_new_info_update_list_delete(api):
    make_deployment("my-free-tier")
    status, team = api.post(
        "/team/new",
        {
            "team_alias": "research",
            "models": ["my-free-tier"],
            "model_aliases": {"gpt-3.5-turbo": "my-free-tier"},
            "max_budget": 100,
            "budget_duration": "1mo",
            "rpm_limit": 60,
            "members": ["alice"],
        },
    )
    assert status == 200, team
    assert (team["team_alias"], team["max_budget"], team["members"]) == ("research", Decimal(100), ["alice"])
    assert team["budget_reset_at"] is not None
    team_id = team["team_id"]
    raw_key, _ = make_key(team_id=team_id)

    status, info = api.get(f"/team/info?team_id={team_id}")
    assert status == 200
    assert info["team_id"] == team_id
    assert info["team_info"]["spend"] == 0
    assert [key["key_name"] for key in info["keys"]] == [f"sk-...{raw_key[-4:]}"]

    status, updated = api.post("/team/update", {"team_id": team_id, "max_budget": None, "tpm_limit": 5000})
    assert status == 200
    assert (updated["max_budget"], updated["tpm_limit"], updated["rpm_limit"]) == (None, 5000, 60)

    status, teams = api.get("/team/list")
    assert [entry["team_id"] for entry in teams] == [team_id]

    status, deleted = api.post("/team/delete", {"team_ids": [team_id]})
    assert status == 200
    assert deleted == {"deleted_teams": [team_id]}
    assert not Team.objects.exists()
    assert not VirtualKey.objects.exists()  # the team's keys go with it
    assert InternalUser.objects.filter(user_id="alice").exists()


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/team/new", {"team_alias": "x", "colour": "red"}, "colour"),
        ("/team/new", {"max_budget": -5}, "max_budget"),
        ("/team/new", {"budget_duration": "fortnight"}, "budget_duration"),
        ("/team/new", {"model_aliases": {"a": "no-such-group"}}, "model_aliases"),
        ("/team/new", {"team_id": "taken"}, "team_id"),
        ("/team/new", {"rpm_limit": -1}, "rpm_limit"),
        ("/team/update", {"max_budget": 1}, "team_id"),
        ("/team/delete", {"team_ids": []}, "team_ids"),
        ("/user/new", {"user_email": "not-an-email"}, "user_email"),
        ("/user/new", {"max_budget": -1}, "max_budget"),
        ("/user/new", {"teams": ["no-such-team"]}, "teams"),
        ("/user/new", {"user_id": "taken"}, "user_id"),
        ("/user/new", {"budget_duration": "1y"}, "budget_duration"),
        ("/user/update", {"user_id": "taken", "spend": -1}, "spend"),
        ("/team/new", {"team_alias": 5}, "team_alias"),
        ("/team/new", {"members": ["alice", 7]}, "members"),
        ("/user/new", {"auto_create_key": "false"}, "auto_create_key"),
        # What the database cannot hold was a 500.
        ("/team/new", {"metadata": {"note": "a\u0000b"}}, "metadata"),
        ("/user/new", {"metadata": {"\udc00": 1}}, "metadata"),
        ("/team/new", {"max_parallel_requests": 2**31}, "max_parallel_requests"),
        ("/user/update", {"user_id": "taken", "budget_duration": "99999999999mo"}, "budget_duration"),
    ],
)
def test_invalid_team_and_user_requests_name_the_field_and_change_nothing(api, path, body, param):
    make_team(team_id="taken")
    make_user(user_id="taken")
    teams, users, changes = Team.objects.count(), InternalUser.objects.count(), KeyChange.objects.count()
    status, response = api.post(path, body)
    assert status == 400, response
    assert response["error"]["param"] == param
    assert (Team.objects.count(), InternalUser.objects.count(), KeyChange.objects.count()) == (teams, users, changes)


@pytest.mark.parametrize(
    ("path", "param"),
    [("/team/info?team_id=nope", "team_id"), ("/user/info?user_id=nope", "user_id"), ("/team/info", "team_id")],
)
def test_unknown_or_missing_ids(api, path, param):
    status, body = api.get(path)
    assert status in (400, 404)
    assert body["error"]["param"] == param


@pytest.mark.parametrize("path", ["/team/new", "/user/new"])
def test_metadata_keeps_fractional_numbers_as_json_numbers(api, path):
    status, body = api.post(path, '{"metadata": {"weight": 0.5, "tags": [2.25]}}')  # a 500 before

    assert status == 200, body
    assert body["metadata"] == {"weight": Decimal("0.5"), "tags": [Decimal("2.25")]}


@pytest.mark.parametrize(
    ("path", "ids"),
    [("/team/new", {}), ("/user/new", {}), ("/organization/new", {}), ("/customer/new", {"user_id": "c"})],
)
def test_an_integer_beyond_64_bits_in_free_form_json_is_refused_not_a_500(api, path, ids):
    status, body = api.post(path, json.dumps({**ids, "metadata": {"n": [2**67]}}))  # a 500 before: stored, unrenderable

    assert status == 400, body
    assert body["error"]["param"] == "metadata"


def test_a_user_page_beyond_any_offset_is_refused(api):
    status, body = api.get("/user/list?page=33371271699941105664&page_size=15")  # a 500 before

    assert status == 400, body
    assert body["error"]["param"] == "page"


def test_user_new_makes_the_user_and_their_key_like_litellm(api):
    team = make_team()
    status, user = api.post(
        "/user/new", {"user_id": "bob", "user_email": "bob@example.com", "max_budget": 20, "teams": [team.team_id]}
    )
    assert status == 200, user
    assert user["key"].startswith("sk-")
    assert (user["user_id"], user["teams"], user["max_budget"]) == ("bob", [team.team_id], Decimal(20))
    assert VirtualKey.objects.get().user_id == "bob"
    status, plain = api.post("/user/new", {"user_id": "carol", "auto_create_key": False})
    assert plain["key"] is None


def test_user_info_update_list_delete(api):
    user = make_user(user_id="dana", max_budget=Decimal("10"))
    make_key(user_id="dana")
    status, info = api.get("/user/info?user_id=dana")
    assert status == 200
    assert (info["user_id"], len(info["keys"]), info["user_info"]["max_budget"]) == ("dana", 1, Decimal(10))

    status, updated = api.post("/user/update", {"user_id": "dana", "budget_duration": "1d", "models": ["gpt-4"]})
    assert status == 200
    assert (updated["budget_duration"], updated["models"]) == ("1d", ["gpt-4"])
    assert updated["budget_reset_at"] is not None

    make_user(user_id="erin")
    status, page = api.get("/user/list?page=1&page_size=1")
    assert (page["total"], page["total_pages"], [u["user_id"] for u in page["users"]]) == (2, 2, ["dana"])

    status, deleted = api.post("/user/delete", {"user_ids": [user.user_id]})
    assert deleted == {"deleted_users": ["dana"]}
    assert not VirtualKey.objects.exists()
    assert api.post("/user/delete", {"user_ids": ["nobody"]})[0] == 404
