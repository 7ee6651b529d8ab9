"""Teams' members with roles (/team/member_add, member_update, member_delete, members_with_roles), /team/block and
/team/unblock as the proxy holds them, and users' LiteLLM fields (user_role, rpm/tpm limits enforced on their keys,
/user/info with their keys and teams), in LiteLLM's request and answer shapes."""

import openai
import pytest

from keys.models import InternalUser
from spend.models import SpendLog
from tests.keys.litellm_client import mock_gateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def gateway():
    async with mock_gateway() as gateway:
        yield gateway


async def ok(answer):
    status, body = await answer
    assert status == 200, body
    return body


def roles(team: dict) -> dict:
    return {member["user_id"]: member["role"] for member in team["members_with_roles"]}


# -- members ------------------------------------------------------------------------------------------------------------


async def test_member_add_takes_one_member_or_a_list_and_shows_their_roles(gateway):
    await ok(gateway.post("/team/new", {"team_id": "research"}))

    one = await ok(
        gateway.post("/team/member_add", {"team_id": "research", "member": {"role": "admin", "user_id": "ana"}})
    )
    many = await ok(
        gateway.post(
            "/team/member_add",
            {
                "team_id": "research",
                "member": [{"role": "user", "user_id": "bo"}, {"role": "user", "user_email": "cy@example.com"}],
            },
        )
    )

    assert one["members_with_roles"] == [{"role": "admin", "user_id": "ana", "user_email": None}]
    assert [user["user_id"] for user in one["updated_users"]] == ["ana"]
    made = await InternalUser.objects.aget(user_email="cy@example.com")
    assert roles(many) == {"ana": "admin", "bo": "user", made.user_id: "user"}
    assert [user["user_email"] for user in many["updated_users"]] == ["", "cy@example.com"]
    info = await ok(gateway.get("/team/info", team_id="research"))
    assert roles(info["team_info"]) == roles(many)
    assert sorted(info["team_info"]["members"]) == sorted(roles(many))


async def test_member_add_finds_an_existing_user_by_email(gateway):
    await ok(gateway.post("/user/new", {"user_id": "dee", "user_email": "dee@example.com", "auto_create_key": False}))
    await ok(gateway.post("/team/new", {"team_id": "ops"}))

    team = await ok(
        gateway.post(
            "/team/member_add", {"team_id": "ops", "member": {"role": "user", "user_email": "dee@example.com"}}
        )
    )

    assert roles(team) == {"dee": "user"}
    assert await InternalUser.objects.acount() == 1


@pytest.mark.parametrize(
    ("member", "param"),
    [
        ({"role": "admin", "user_id": "ana"}, "member"),  # already a member
        ({"role": "owner", "user_id": "new"}, "member.role"),
        ({"role": "user"}, "member.user_id"),
        ([], "member"),
        ({"role": "user", "user_id": "new", "max_budget_in_team": 1}, "member.max_budget_in_team"),
    ],
    ids=["already-member", "unknown-role", "nobody", "empty-list", "unknown-field"],
)
async def test_member_add_refuses_naming_the_field(gateway, member, param):
    await ok(gateway.post("/team/new", {"team_id": "t", "members_with_roles": [{"role": "user", "user_id": "ana"}]}))

    status, answer = await gateway.post("/team/member_add", {"team_id": "t", "member": member})

    assert status == 400, answer
    assert answer["error"]["param"].replace(".0.", ".") == param
    assert roles((await ok(gateway.get("/team/info", team_id="t")))["team_info"]) == {"ana": "user"}


async def test_member_add_to_an_unknown_team_is_404(gateway):
    status, answer = await gateway.post(
        "/team/member_add", {"team_id": "nope", "member": {"role": "user", "user_id": "a"}}
    )

    assert (status, answer["error"]["param"]) == (404, "team_id")


async def test_member_update_changes_a_role_and_member_delete_removes_the_member(gateway):
    await ok(
        gateway.post(
            "/team/new",
            {
                "team_id": "t",
                "members_with_roles": [{"role": "admin", "user_id": "ana"}, {"role": "user", "user_id": "bo"}],
            },
        )
    )

    updated = await ok(gateway.post("/team/member_update", {"team_id": "t", "user_id": "bo", "role": "admin"}))
    demoted = await ok(gateway.post("/team/member_update", {"team_id": "t", "user_id": "ana", "role": "user"}))
    assert updated == {"team_id": "t", "user_id": "bo", "user_email": None, "role": "admin"}
    assert demoted["role"] == "user"
    assert roles((await ok(gateway.get("/team/info", team_id="t")))["team_info"]) == {"ana": "user", "bo": "admin"}

    team = await ok(gateway.post("/team/member_delete", {"team_id": "t", "user_id": "bo"}))
    assert roles(team) == {"ana": "user"}
    # Back by a members list: an admin role does not outlive the membership.
    again = await ok(gateway.post("/team/update", {"team_id": "t", "members": ["ana", "bo"]}))
    assert roles(again) == {"ana": "user", "bo": "user"}


@pytest.mark.parametrize("path", ["/team/member_update", "/team/member_delete"])
async def test_member_update_or_delete_of_someone_not_in_the_team_is_refused(gateway, path):
    await ok(gateway.post("/team/new", {"team_id": "t"}))
    await ok(gateway.post("/user/new", {"user_id": "outsider", "auto_create_key": False}))

    status, answer = await gateway.post(
        path,
        {"team_id": "t", "user_id": "outsider", "role": "admin"}
        if path.endswith("update")
        else {"team_id": "t", "user_id": "outsider"},
    )

    assert (status, answer["error"]["param"]) == (400, "user_id")


async def test_members_replaced_by_team_update_keep_no_stale_admin(gateway):
    await ok(gateway.post("/team/new", {"team_id": "t", "members_with_roles": [{"role": "admin", "user_id": "ana"}]}))

    await ok(gateway.post("/team/update", {"team_id": "t", "members": []}))
    team = await ok(gateway.post("/team/update", {"team_id": "t", "members": ["ana"]}))

    assert roles(team) == {"ana": "user"}


# -- blocking a team ----------------------------------------------------------------------------------------------------


async def test_a_blocked_teams_keys_are_refused_403_until_it_is_unblocked(gateway):
    await ok(gateway.post("/team/new", {"team_id": "t"}))
    made = await ok(gateway.post("/key/generate", {"team_id": "t"}))
    assert not isinstance(await gateway.chat(made["key"]), Exception)

    blocked = await ok(gateway.post("/team/block", {"team_id": "t"}))
    refused = await gateway.chat(made["key"])
    unblocked = await ok(gateway.post("/team/unblock", {"team_id": "t"}))

    assert (blocked["blocked"], unblocked["blocked"]) == (True, False)
    assert isinstance(refused, openai.PermissionDeniedError)
    assert (refused.code, refused.body["type"]) == ("team_blocked", "auth_error")
    assert "Team=t is blocked" in refused.message
    assert not isinstance(await gateway.chat(made["key"]), Exception)
    assert await SpendLog.objects.acount() == 2


async def test_blocking_an_unknown_team_is_404(gateway):
    status, answer = await gateway.post("/team/block", {"team_id": "nope"})

    assert (status, answer["error"]["param"]) == (404, "team_id")


# -- users --------------------------------------------------------------------------------------------------------------


async def test_a_users_rpm_limit_holds_across_all_their_keys(gateway):
    user = await ok(gateway.post("/user/new", {"user_id": "ana", "rpm_limit": 1, "user_role": "internal_user_viewer"}))
    second_key = await ok(gateway.post("/key/generate", {"user_id": "ana"}))

    first = await gateway.chat(user["key"])
    refused = await gateway.chat(second_key["key"])

    assert (user["user_role"], user["rpm_limit"], user["tpm_limit"]) == ("internal_user_viewer", 1, None)
    assert not isinstance(first, Exception)
    assert isinstance(refused, openai.RateLimitError)
    assert "user ana is limited to 1 requests per minute" in refused.message


async def test_a_users_tpm_limit_is_enforced_on_their_keys(gateway):
    user = await ok(gateway.post("/user/new", {"user_id": "bo", "tpm_limit": 1}))

    first = await gateway.chat(user["key"])  # the minute's tokens are counted once used
    refused = await gateway.chat(user["key"])

    assert not isinstance(first, Exception)
    assert isinstance(refused, openai.RateLimitError)
    assert "user bo" in refused.message


async def test_user_update_sets_role_and_limits_and_refuses_an_unknown_role(gateway):
    await ok(gateway.post("/user/new", {"user_id": "cy", "auto_create_key": False}))

    updated = await ok(gateway.post("/user/update", {"user_id": "cy", "user_role": "proxy_admin", "tpm_limit": 50}))
    status, answer = await gateway.post("/user/update", {"user_id": "cy", "user_role": "admin"})

    assert (updated["user_role"], updated["tpm_limit"]) == ("proxy_admin", 50)
    assert (status, answer["error"]["param"]) == (400, "user_role")


async def test_user_info_returns_the_users_keys_and_teams(gateway):
    await ok(gateway.post("/team/new", {"team_id": "t", "members_with_roles": [{"role": "admin", "user_id": "ana"}]}))
    made = await ok(gateway.post("/key/generate", {"user_id": "ana", "key_alias": "ana-key"}))

    info = await ok(gateway.get("/user/info", user_id="ana"))

    assert (info["user_id"], info["user_info"]["user_role"]) == ("ana", "internal_user")
    assert [key["token"] for key in info["keys"]] == [made["token"]]
    assert [(team["team_id"], roles(team)) for team in info["teams"]] == [("t", {"ana": "admin"})]
