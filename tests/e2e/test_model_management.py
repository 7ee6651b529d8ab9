"""/model/new, /model/update, /model/delete, /model/info on a two-process server: every process follows within its
sync interval (0.2 s here)."""

from decimal import Decimal

import httpx
import pytest

from tests.e2e.server import GatewayServer
from tests.polling import wait_until

pytestmark = pytest.mark.live

CONFIG = """
model_list:
  - model_name: priced
    litellm_params: {model: mock/house-model, api_key: sk-house-secret-key-1234}
    model_info: {id: priced-1, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with GatewayServer(tmp_path_factory.mktemp("models"), CONFIG, workers=2) as live:
        yield live


def call(server, model="priced") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        headers=server.admin_headers(),
        json={"model": model, "messages": [{"role": "user", "content": "Hello"}]},
        timeout=10,
    )


def expected_cost(response: httpx.Response, input_price: str, output_price: str) -> Decimal:
    usage = response.json()["usage"]
    return usage["prompt_tokens"] * Decimal(input_price) + usage["completion_tokens"] * Decimal(output_price)


def every_process_answers(answered, what: str) -> None:
    """Wait until ten calls in a row, each on a fresh connection (so either process may take it), are answered as
    `answered` says: the process that made the change applies it at once, the other at its next sync."""
    wait_until(lambda: all(answered() for _ in range(10)), what)


def charged_at(server, input_price: str) -> bool:
    response = call(server)
    return Decimal(response.headers["x-litellm-response-cost"]) == expected_cost(response, input_price, "0.000002")


def test_price_update_reaches_every_process(server):
    assert charged_at(server, "0.000001")

    updated = server.api(
        "POST", "/model/update", json={"model_info": {"id": "priced-1", "input_cost_per_token": 0.00001}}
    )
    assert updated.status_code == 200, updated.text

    every_process_answers(lambda: charged_at(server, "0.00001"), "both processes charge the new price")
    assert all(charged_at(server, "0.00001") for _ in range(20))  # and keep to it


def test_new_and_deleted_deployments_follow(server):
    created = server.api(
        "POST",
        "/model/new",
        json={"model_name": "fresh", "litellm_params": {"model": "mock/fresh"}, "model_info": {"id": "fresh-1"}},
    )
    assert created.status_code == 200, created.text
    every_process_answers(lambda: call(server, "fresh").status_code == 200, "both processes serve the new model")

    deleted = server.api("POST", "/model/delete", json={"id": "fresh-1"})
    assert deleted.status_code == 200
    every_process_answers(lambda: call(server, "fresh").status_code == 400, "both processes refuse the deleted model")


def test_model_info_shows_key_hints_and_prices_never_secrets(server):
    info = server.api("GET", "/model/info").json()["data"]

    (priced,) = [item for item in info if item["model_info"]["id"] == "priced-1"]
    assert priced["litellm_params"]["api_key"] == "sk-...1234"
    assert priced["model_info"]["price_source"] == "custom"
    assert "sk-house-secret-key-1234" not in str(info)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/model/new", {"model_name": "x", "litellm_params": {"model": "warp/x"}}, "litellm_params.model"),
        ("/model/new", {"model_name": "x", "litellm_params": {"model": "mock/x", "rpm": -1}}, "litellm_params.rpm"),
        ("/model/new", {"litellm_params": {"model": "mock/x"}}, "model_name"),
        ("/model/update", {"model_info": {}}, "model_info.id"),
        # Bodies of the wrong shape were a 500 (model_info a list, litellm_params a string).
        ("/model/update", {"model_info": ["priced-1"]}, "model_info"),
        ("/model/update", {"model_info": {"id": "priced-1"}, "litellm_params": "mock/x"}, "litellm_params"),
        # Values of the wrong JSON type were read as text (5 → "5").
        ("/model/new", {"model_name": 5, "litellm_params": {"model": "mock/x"}}, "model_name"),
        (
            "/model/new",
            {"model_name": "x", "litellm_params": {"model": "mock/x"}, "model_info": {"id": 7}},
            "model_info.id",
        ),
        # What the columns cannot hold: a 500 on PostgreSQL, or stored past the column's length on SQLite.
        ("/model/new", {"model_name": "x" * 201, "litellm_params": {"model": "mock/x"}}, "model_name"),
        ("/model/new", {"model_name": "x", "litellm_params": {"model": "mock/x", "rpm": 2**31}}, "litellm_params.rpm"),
        ("/model/new", {"model_name": "x", "litellm_params": {"model": "mock/x", "seed": "a\u0000"}}, "litellm_params"),
        (
            "/model/new",
            {"model_name": "x", "litellm_params": {"model": "mock/x"}, "model_info": {"n\u0000": 1}},
            "model_info",
        ),
        (
            "/model/new",
            {"model_name": "x", "litellm_params": {"model": "mock/x", "input_cost_per_token": 1e-21}},
            "litellm_params.input_cost_per_token",
        ),
    ],
)
def test_bad_model_requests_are_400_naming_the_field(server, path, body, field):
    response = server.api("POST", path, json=body)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == field


def test_a_deployment_with_a_timeout_can_be_updated(server):
    created = server.api(
        "POST",
        "/model/new",
        json={
            "model_name": "timed",
            "litellm_params": {"model": "mock/timed", "timeout": 30},
            "model_info": {"id": "timed-1"},
        },
    )
    assert created.status_code == 200, created.text

    # Was 400 "litellm_params.timeout: must be a finite number": the stored timeout came back as a float.
    updated = server.api(
        "PATCH", "/model/update", json={"model_info": {"id": "timed-1", "input_cost_per_token": 0.000001}}
    )

    assert updated.status_code == 200, updated.text
    assert updated.json()["litellm_params"]["timeout"] == 30


def test_model_delete_takes_its_body_on_delete_too(server):
    server.api(
        "POST",
        "/model/new",
        json={"model_name": "gone", "litellm_params": {"model": "mock/gone"}, "model_info": {"id": "gone-1"}},
    )

    deleted = server.api("DELETE", "/model/delete", json={"id": "gone-1"})

    assert deleted.status_code == 200, deleted.text
    assert server.api("DELETE", "/model/delete", json={"id": "gone-1"}).status_code == 404


def test_model_info_refuses_an_id_no_database_can_hold(server):
    response = server.api("GET", "/model/info?litellm_model_id=a%00b")  # a 500 on PostgreSQL

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "litellm_model_id"


def test_management_api_needs_the_master_key(server):
    response = httpx.get(f"{server.url}/model/info", headers={"Authorization": "Bearer sk-wrong"})

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "auth_error"
