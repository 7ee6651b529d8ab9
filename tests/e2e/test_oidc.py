"""Single sign-on end to end (issue 23): a live server configured only by OIDC_* variables, a fake identity provider
on loopback (discovery, authorization code with PKCE, token, JWKS, userinfo), and a client that follows the
redirects the way a browser does, from "Sign in with SSO" to the admin, signed in with the role its claims give."""

import httpx
import pytest

from tests.e2e.server import GatewayServer
from tests.fakes.oidc import FakeIdentityProvider

pytestmark = pytest.mark.live

CLIENT_ID = "tollgate-e2e"
CLIENT_SECRET = "oidc-client-secret-5b8e1f0c2a7d4936"
CONFIG = """
model_list:
  - model_name: demo
    litellm_params: {model: mock/demo}
"""


@pytest.fixture(scope="module")
def idp():
    with FakeIdentityProvider(CLIENT_ID, CLIENT_SECRET) as provider:
        yield provider


@pytest.fixture(scope="module")
def server(tmp_path_factory, idp):
    env = {
        "OIDC_ISSUER": idp.url,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_ROLE_CLAIM": "roles",
        "OIDC_ROLE_MAP": "billing=Finance,ops=Admins,leads=Team admins",
        "OIDC_TEAM_CLAIM": "teams",
    }
    with GatewayServer(tmp_path_factory.mktemp("oidc"), CONFIG, env=env) as live:
        yield live


@pytest.fixture(autouse=True)
def _fresh_provider_state(idp):
    idp.audience = CLIENT_ID
    idp.token_requests.clear()


@pytest.fixture
def browser(server):
    with httpx.Client(base_url=server.url, follow_redirects=True, timeout=30) as client:
        yield client


def sign_in_with_sso(browser, idp, person: dict) -> httpx.Response:
    """Click "Sign in with SSO" on the login page and follow every redirect (to the provider and back)."""
    idp.person = person
    login_page = browser.get("/admin/login/?next=/admin/")
    assert 'href="/oidc/authenticate/?next=/admin/"' in login_page.text
    assert "Sign in with SSO" in login_page.text
    return browser.get("/oidc/authenticate/?next=/admin/")


def groups_of(server, username: str) -> list[str]:
    return [
        name
        for (name,) in server.query(
            "SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id "
            "JOIN auth_user u ON u.id = ug.user_id WHERE u.username = %s ORDER BY g.name",
            username,
        )
    ]


def test_a_finance_person_signs_in_with_sso_and_reads_but_cannot_change(server, idp, browser):
    person = {"sub": "u-1", "email": "Fran@Example.com", "roles": ["billing", "unrelated"], "given_name": "Fran"}

    landed = sign_in_with_sso(browser, idp, person)

    assert landed.status_code == 200
    assert str(landed.url) == f"{server.url}/admin/"
    assert idp.token_requests == [{"client": True, "code": True, "redirect_uri": True, "pkce": True}]
    assert groups_of(server, "fran@example.com") == ["Finance"]
    assert server.query("SELECT is_staff, is_superuser FROM auth_user WHERE username = %s", "fran@example.com") == [
        (True, False)
    ]
    assert browser.get("/admin/spend/spendlog/").status_code == 200
    assert browser.get("/admin/gateway/deployment/add/").status_code == 403


def test_a_team_admin_gets_the_teams_its_claims_name(server, idp, browser):
    team = server.api("POST", "/team/new", json={"team_alias": "research"}).json()

    landed = sign_in_with_sso(
        browser, idp, {"sub": "u-2", "email": "lee@example.com", "roles": "leads", "teams": ["research", "nonexistent"]}
    )

    assert landed.status_code == 200
    assert groups_of(server, "lee@example.com") == ["Team admins"]
    assert server.query(
        "SELECT t.team_id FROM keys_teamadministrator a JOIN keys_team t ON t.id = a.team_id "
        "JOIN auth_user u ON u.id = a.user_id WHERE u.username = %s",
        "lee@example.com",
    ) == [(team["team_id"],)]


def test_a_person_whose_claims_give_no_role_is_refused(server, idp, browser):
    landed = sign_in_with_sso(browser, idp, {"sub": "u-3", "email": "max@example.com", "roles": ["marketing"]})

    assert str(landed.url) == f"{server.url}/admin/login/?sso=refused"
    assert "did not give this account a role in Tollgate" in landed.text
    assert server.query("SELECT username FROM auth_user WHERE username = %s", "max@example.com") == []
    assert str(browser.get("/admin/").url).startswith(f"{server.url}/admin/login/")  # no session


def test_an_id_token_made_for_another_client_is_refused(server, idp, browser):
    idp.audience = "some-other-app"

    landed = sign_in_with_sso(browser, idp, {"sub": "u-4", "email": "eve@example.com", "roles": ["ops"]})

    assert idp.token_requests == [{"client": True, "code": True, "redirect_uri": True, "pkce": True}]
    assert str(landed.url) == f"{server.url}/admin/login/?sso=refused"
    assert server.query("SELECT username FROM auth_user WHERE username = %s", "eve@example.com") == []
