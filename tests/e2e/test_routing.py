"""End to end: routing as LiteLLM configs write it, against a live `manage.py serve` and fake upstreams.

Wildcard deployments serve any model of their provider, priced as the model asked for; access groups reach their
members; /health probes each deployment with a real call; settings Tollgate does not apply are reported at start;
and each routing strategy sends traffic where it says.
"""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest

from tests.e2e.server import GatewayServer, free_port, within_one_minute
from tests.fakes.upstream import Behaviour, FakeUpstream

pytestmark = pytest.mark.live

CONFIG = """
model_list:
  - model_name: "openai/*"
    litellm_params: {{model: "openai/*", api_base: "{up}/v1", api_key: sk-wildcard-upstream-8812}}
    model_info: {{id: wild-openai, health_check_model: openai/gpt-4o-mini}}
  - model_name: openai/gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-exact-upstream-8813}}
    model_info: {{id: exact-gpt-4o}}
  - model_name: beta-chat
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{up}/v1", api_key: sk-beta-upstream-8814}}
    model_info: {{id: beta, access_groups: [beta-models]}}
  - model_name: stable-chat
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{up}/v1", api_key: sk-stable-upstream-8815}}
    model_info: {{id: stable}}
  - model_name: broken
    litellm_params: {{model: openai/gpt-4o, api_base: "http://127.0.0.1:{closed}/v1", api_key: sk-broken-8816}}
    model_info: {{id: broken}}
litellm_settings:
  success_callback: ["langfuse"]
"""


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(prompt_tokens=2000, completion_tokens=300) as up:
        yield up


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    config = CONFIG.format(up=upstream.url, closed=free_port())
    with GatewayServer(tmp_path_factory.mktemp("routing"), config) as live:
        yield live


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=20)


def hello(client: openai.OpenAI, model: str):
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Hello"}]
    )


def new_key(server, **body) -> str:
    response = server.api("POST", "/key/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["key"]


def test_a_wildcard_serves_any_model_of_its_provider_priced_and_logged_as_that_model(server, upstream):
    upstream.reset()

    raw = hello(sdk(server, server.master_key), "openai/gpt-4o-mini")

    assert upstream.requests[0].json["model"] == "gpt-4o-mini"
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-wildcard-upstream-8812"
    expected = 2000 * Decimal("1.5E-7") + 300 * Decimal("6E-7")  # gpt-4o-mini's prices
    assert Decimal(raw.headers["x-litellm-response-cost"]) == expected
    ((requested, deployment, provider_model, cost),) = server.query(
        "SELECT requested_model, deployment_id, provider_model, cost FROM spend_spendlog WHERE request_id = %s",
        raw.headers["x-litellm-call-id"],
    )
    assert (requested, deployment, provider_model, Decimal(str(cost))) == (
        "openai/gpt-4o-mini",
        "wild-openai",
        "gpt-4o-mini",
        expected,
    )


def test_an_exact_model_group_wins_over_the_wildcard(server):
    raw = hello(sdk(server, server.master_key), "openai/gpt-4o")

    assert raw.headers["x-litellm-model-id"] == "exact-gpt-4o"


def test_a_key_listing_a_wildcard_may_call_what_it_matches_and_nothing_else(server):
    client = sdk(server, new_key(server, models=["openai/*"]))

    assert hello(client, "openai/gpt-4.1-mini").headers["x-litellm-model-id"] == "wild-openai"
    with pytest.raises(openai.PermissionDeniedError):
        hello(client, "stable-chat")


def test_models_lists_the_known_models_of_the_wildcard(server):
    listed = {model.id for model in sdk(server, server.master_key).models.list()}

    assert {"openai/gpt-4o-mini", "openai/gpt-4.1-mini", "beta-chat", "stable-chat"} <= listed
    assert "openai/*" not in listed


@pytest.mark.parametrize("owner", ["key", "team"])
def test_a_key_or_team_listing_an_access_group_reaches_its_members_only(server, owner):
    if owner == "key":
        key = new_key(server, models=["beta-models"])
    else:
        team = server.api("POST", "/team/new", json={"models": ["beta-models"]})
        assert team.status_code == 200, team.text
        key = new_key(server, team_id=team.json()["team_id"])
    client = sdk(server, key)

    assert hello(client, "beta-chat").headers["x-litellm-model-id"] == "beta"
    with pytest.raises(openai.PermissionDeniedError):
        hello(client, "stable-chat")
    assert {model.id for model in client.models.list()} == {"beta-chat"}


def test_model_info_shows_access_groups(server):
    (beta,) = server.api("GET", "/model/info", params={"litellm_model_id": "beta"}).json()["data"]

    assert beta["model_info"]["access_groups"] == ["beta-models"]


def test_health_probes_every_deployment_and_names_what_is_down(server, upstream):
    upstream.reset()

    body = server.api("GET", "/health").json()

    assert {e["model_id"] for e in body["healthy_endpoints"]} == {"wild-openai", "exact-gpt-4o", "beta", "stable"}
    (down,) = body["unhealthy_endpoints"]
    assert (down["model_id"], down["error"]) == ("broken", "the connection could not be made")
    assert (body["healthy_count"], body["unhealthy_count"]) == (4, 1)
    probes = [request.json for request in upstream.requests]
    assert len(probes) == 4 and all(probe["max_tokens"] == 1 for probe in probes)
    assert "gpt-4o-mini" in {probe["model"] for probe in probes}  # the wildcard, through its health_check_model
    one = server.api("GET", "/health", params={"model": "beta-chat"}).json()
    assert [e["model_id"] for e in one["healthy_endpoints"]] == ["beta"] and one["unhealthy_count"] == 0
    refused = httpx.get(f"{server.url}/health", headers={"Authorization": f"Bearer {new_key(server)}"}, timeout=20)
    assert refused.status_code == 403


def test_settings_tollgate_does_not_apply_are_reported_at_start(server):
    log = server.log()

    assert "config setting litellm_settings.success_callback is not supported by Tollgate: ignored" in log
    assert "not supported, ignored: litellm_settings.success_callback" in log


# --- routing strategies ------------------------------------------------------------------------------------------

STRATEGY_CONFIG = """
model_list:
  - model_name: pool
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{a}/v1", api_key: sk-a-upstream-8820{a_extra}}}
    model_info: {{id: a}}
  - model_name: pool
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{b}/v1", api_key: sk-b-upstream-8821{b_extra}}}
    model_info: {{id: b}}
router_settings:
  routing_strategy: {strategy}
  num_retries: 0
"""


@pytest.fixture(scope="module")
def pair():
    with FakeUpstream() as a, FakeUpstream() as b:
        yield a, b


def strategy_server(tmp_path_factory, pair, strategy: str, a_extra: str = "", b_extra: str = "") -> GatewayServer:
    a, b = pair
    a.reset()
    b.reset()
    config = STRATEGY_CONFIG.format(a=a.url, b=b.url, strategy=strategy, a_extra=a_extra, b_extra=b_extra)
    return GatewayServer(tmp_path_factory.mktemp(strategy), config)


def picked(server, calls: int, *, concurrent: bool = False) -> Counter:
    def call(_index):
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "pool", "messages": [{"role": "user", "content": "Hi"}]},
            headers=server.admin_headers(),
            timeout=20,
        )
        return response.headers.get("x-litellm-model-id") or str(response.status_code)

    if concurrent:
        with ThreadPoolExecutor(calls) as pool:
            return Counter(pool.map(call, range(calls)))
    return Counter(call(index) for index in range(calls))


def test_simple_shuffle_follows_the_weights(tmp_path_factory, pair):
    with strategy_server(tmp_path_factory, pair, "simple-shuffle", ", weight: 9", ", weight: 1") as server:
        shares = picked(server, 40)

    assert shares["a"] >= 28  # 36 expected; an unweighted shuffle gives 20


def test_least_busy_sends_each_call_to_the_deployment_with_fewest_in_flight(tmp_path_factory, pair):
    with strategy_server(tmp_path_factory, pair, "least-busy") as server:
        for upstream in pair:
            upstream.behaviour = Behaviour(first_byte_delay=1.0)  # every call stays in flight a second
        shares = picked(server, 6, concurrent=True)

    assert shares == {"a": 3, "b": 3}  # a shuffle splits 3/3 one time in three


def test_usage_based_routing_spreads_tokens_and_refuses_past_every_rpm(tmp_path_factory, pair):
    with strategy_server(tmp_path_factory, pair, "usage-based-routing", ", rpm: 2", ", rpm: 2") as server:
        within_one_minute()
        first_four = picked(server, 4)
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "pool", "messages": [{"role": "user", "content": "Hi"}]},
            headers=server.admin_headers(),
            timeout=20,
        )

    assert first_four == {"a": 2, "b": 2}  # the fewer tokens this minute; then each is at its rpm of 2
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "no_deployment_capacity"
    assert 0 < int(response.headers["retry-after"]) <= 60
    assert len(pair[0].requests) + len(pair[1].requests) == 4  # the refused call reached no upstream


def test_latency_based_routing_sends_traffic_to_the_faster_deployment(tmp_path_factory, pair):
    slow, _fast = pair
    with strategy_server(tmp_path_factory, pair, "latency-based-routing") as server:
        slow.behaviour = Behaviour(first_byte_delay=0.4)
        measured = picked(server, 2)  # an unmeasured deployment goes first: both are measured once
        shares = picked(server, 8)

    assert measured == {"a": 1, "b": 1}
    assert shares == {"b": 8}
