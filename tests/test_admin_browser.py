"""The admin in a real browser at 1280 px: headless Chromium logs in and opens the key list, team list, spend-log
list and a key's, a team's and a deployment's page. What a person came for (name, spend, budget, cost; a page's
usage, chart and price) must lie within the viewport, not behind a horizontal scroll; a screenshot of each page is
kept in test-artifacts/screenshots/."""

import json

import httpx
import pytest

from tests.browser import PAGE_WIDTH, chromium, log_in, needs_chromium
from tests.e2e.server import GatewayServer

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]

CONFIG = """
model_list:
  - model_name: priced-mock
    litellm_params: {model: mock/priced}
    model_info: {id: priced-mock-1, input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}
"""
ADMIN_USER, ADMIN_PASSWORD = "operator", "correct-horse-battery-staple-19"


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory):
    with GatewayServer(tmp_path_factory.mktemp("admin-browser"), CONFIG) as server:
        server.manage(
            "createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "operator@example.com",
            env_extra={"DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        )  # fmt: skip
        server.manage("generate_spend_data", "--logs", "300", "--days", "20", "--teams", "4", "--keys", "12")
        team = server.api("POST", "/team/new", json={"team_alias": "Research and development", "max_budget": 50,
                                                     "rpm_limit": 600, "tpm_limit": 100000}).json()  # fmt: skip
        key = server.api("POST", "/key/generate", json={"team_id": team["team_id"], "key_alias": "nightly-evals",
                                                        "max_budget": 12.5, "soft_budget": 10, "rpm_limit": 60,
                                                        "tpm_limit": 50000, "max_parallel_requests": 4}).json()  # fmt: skip
        for _ in range(5):
            response = httpx.post(
                f"{server.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key['key']}"},
                json={"model": "priced-mock", "messages": [{"role": "user", "content": "What did this cost?"}]},
                timeout=30,
            )
            assert response.status_code == 200, response.text
        yield server


# The viewport's width, the page's own width, and for each selector whether its first element is seen: scrolled
# to mid-screen, the points just inside its left and right edges hit the element itself, not what clips or covers it
# (a table scrolled sideways inside its box, a sidebar over it).
BOXES = """((selectors) => {
    const seen = (element) => {
        // Scrolled vertically only: scrollIntoView would also scroll a clipped table sideways into view.
        window.scrollTo(0, window.scrollY + element.getBoundingClientRect().top - window.innerHeight / 2);
        const box = element.getBoundingClientRect(), y = box.top + Math.min(box.height / 2, 10);
        const edges = [box.left + 2, box.right - 2].map(x => element.contains(document.elementFromPoint(x, y)));
        return {left: Math.round(box.left), right: Math.round(box.right), seen: edges.every(Boolean)};
    };
    const found = Object.fromEntries(selectors.map(s => [s, document.querySelector(s)]));
    return {window: window.innerWidth, width: document.documentElement.clientWidth,
            scroll: document.documentElement.scrollWidth,
            boxes: Object.fromEntries(Object.entries(found).map(([s, e]) => [s, e ? seen(e) : null]))};
})(SELECTORS)"""


def _pk(server: GatewayServer, sql: str, *params) -> int:
    return server.query(sql, *params)[0][0]


def _pages(server: GatewayServer) -> dict[str, tuple[str, list[str]]]:
    """Each page: its path, and the selectors of what must be within the viewport."""
    key = _pk(server, "SELECT id FROM keys_virtualkey WHERE key_alias = %s", "nightly-evals")
    team = _pk(server, "SELECT id FROM keys_team WHERE team_alias = %s", "Research and development")
    deployment = _pk(server, "SELECT id FROM gateway_deployment WHERE model_id = %s", "priced-mock-1")
    return {
        "key-list": ("/admin/keys/virtualkey/", [".column-name", ".column-team_link", ".column-spend_vs_budget",
                                                 ".column-limits", ".column-blocked"]),
        "team-list": ("/admin/keys/team/", [".column-name", ".column-spend_vs_budget", ".column-limits",
                                            ".column-blocked"]),
        "spend-log-list": ("/admin/spend/spendlog/", [".column-start_time", ".column-key_name", ".column-team_name",
                                                      ".column-model_and_provider", ".column-cost_shown", ".column-outcome"]),
        "key-page": (f"/admin/keys/virtualkey/{key}/change/", [".field-usage", ".spend-chart", ".tollgate-recent",
                                                               "#id_max_budget"]),
        "team-page": (f"/admin/keys/team/{team}/change/", [".field-usage", ".spend-chart", "#id_max_budget"]),
        "deployment-page": (f"/admin/gateway/deployment/{deployment}/change/", [".field-price_panel",
                                                                                 ".field-volume"]),
    }  # fmt: skip


def test_admin_pages_show_what_matters_at_1280_px(admin_server, tmp_path):
    pages = _pages(admin_server)
    outside = {}
    with chromium(tmp_path) as browser:
        log_in(browser, admin_server.url, ADMIN_USER, ADMIN_PASSWORD)
        for name, (path, selectors) in pages.items():
            browser.navigate(admin_server.url + path)
            boxes = browser.evaluate(BOXES.replace("SELECTORS", json.dumps(selectors)))
            browser.screenshot_artifact(f"admin-{name}")
            assert boxes["window"] == PAGE_WIDTH
            for selector, box in boxes["boxes"].items():
                if not box or not box["seen"] or box["left"] < 0 or box["right"] > boxes["width"]:
                    outside[f"{name} {selector}"] = box or "missing"
            if boxes["scroll"] > boxes["width"]:
                outside[f"{name} scrolls"] = boxes["scroll"]

    assert outside == {}
