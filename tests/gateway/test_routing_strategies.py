"""router_settings.routing_strategy: which deployment each strategy picks, with fake clocks and counters, and
what the proxy counts for them."""

import random
from collections import Counter

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from gateway.config_import import ConfigError, apply_config, parse_config
from gateway.models import Deployment as DeploymentRow
from gateway.proxy.router import NoCapacity, RouterConfig, RoutingStats, strategy_order
from gateway.proxy.state import gateway_state
from tests.e2e.server import MASTER_KEY
from tests.fakes.upstream import Behaviour
from tests.gateway.test_router import Clock, Deployment


def stats(wall: float = 60_000.0) -> tuple[RoutingStats, Clock, Clock]:
    clock, wall_clock = Clock(), Clock(wall)
    return RoutingStats(clock, wall_clock), clock, wall_clock


def picks(strategy: str, deployments, routing_stats, draws=200, tokens=0, **args) -> Counter:
    config = RouterConfig(routing_strategy=strategy, routing_strategy_args=args)
    rng = random.Random(7)
    return Counter(strategy_order(config, deployments, routing_stats, tokens, rng)[0].model_id for _ in range(draws))


A, B, C = Deployment("a"), Deployment("b"), Deployment("c")


def test_least_busy_picks_the_deployment_with_fewest_calls_in_flight():
    routing, _clock, _wall = stats()
    for model_id in ("a", "a", "b"):
        routing.started(model_id, 0)

    assert picks("least-busy", [A, B, C], routing) == {"c": 200}
    routing.started("c", 0)
    routing.started("c", 0)
    routing.finished("a")
    routing.finished("a")
    assert picks("least-busy", [A, B, C], routing) == {"a": 200}


def test_least_busy_shares_traffic_between_equally_busy_deployments():
    routing, _clock, _wall = stats()

    shares = picks("least-busy", [A, B], routing, draws=2000)

    assert shares["a"] / 2000 == pytest.approx(0.5, abs=0.05)


def test_a_finished_call_is_no_longer_in_flight_and_never_counts_below_zero():
    routing, _clock, _wall = stats()
    routing.started("a", 0)
    routing.finished("a")
    routing.finished("a")

    assert routing.in_flight("a") == 0


def test_usage_based_routing_picks_the_fewest_tokens_this_minute():
    routing, _clock, _wall = stats()
    routing.started("a", 500)
    routing.started("b", 100)
    routing.started("c", 300)

    order = strategy_order(RouterConfig(routing_strategy="usage-based-routing"), [A, B, C], routing, 10)

    assert [d.model_id for d in order] == ["b", "c", "a"]


def test_usage_based_routing_skips_a_deployment_this_call_would_take_past_its_tpm_or_rpm():
    routing, _clock, _wall = stats()
    tight_tpm, tight_rpm, roomy = Deployment("tpm", tpm=1000), Deployment("rpm", rpm=1), Deployment("roomy")
    routing.started("tpm", 0)  # fewest tokens, and room for 1000
    routing.started("rpm", 0)  # its one request this minute is used
    routing.started("roomy", 400)

    assert picks("usage-based-routing", [tight_tpm, tight_rpm, roomy], routing, tokens=900) == {"tpm": 200}
    assert picks("usage-based-routing", [tight_tpm, tight_rpm, roomy], routing, tokens=1001) == {"roomy": 200}


def test_usage_based_routing_refuses_when_every_deployment_is_at_its_limit_until_the_next_minute():
    routing, _clock, wall = stats(wall=60_000.0 + 45)
    limited = [Deployment("a", rpm=1), Deployment("b", rpm=1)]
    routing.started("a", 0)
    routing.started("b", 0)

    with pytest.raises(NoCapacity) as refused:
        strategy_order(RouterConfig(routing_strategy="usage-based-routing"), limited, routing, 0)
    assert refused.value.seconds_left == pytest.approx(15)
    wall.now += 15  # the next clock minute: its counts start at zero
    assert picks("usage-based-routing", limited, routing, draws=50).total() == 50


def test_latency_based_routing_picks_the_lowest_mean_latency_and_tries_unmeasured_deployments_first():
    routing, _clock, _wall = stats()
    for seconds in (0.5, 0.7):
        routing.answered("a", seconds)
    for seconds in (0.2, 0.4):
        routing.answered("b", seconds)

    assert picks("latency-based-routing", [A, B], routing) == {"b": 200}
    assert picks("latency-based-routing", [A, B, C], routing) == {"c": 200}  # never measured: latency 0


def test_latency_based_routing_forgets_latencies_older_than_its_ttl():
    routing, clock, _wall = stats()
    routing.answered("a", 5.0)  # slow, long ago
    clock.now += 100
    routing.answered("b", 0.3)

    assert picks("latency-based-routing", [A, B], routing, ttl=50) == {"a": 200}
    assert picks("latency-based-routing", [A, B], routing, ttl=500) == {"b": 200}


def test_latency_based_routing_shares_traffic_within_the_lowest_latency_buffer():
    routing, _clock, _wall = stats()
    routing.answered("a", 1.0)
    routing.answered("b", 1.4)
    routing.answered("c", 3.0)

    assert picks("latency-based-routing", [A, B, C], routing) == {"a": 200}
    shared = picks("latency-based-routing", [A, B, C], routing, draws=2000, lowest_latency_buffer=0.5)
    assert set(shared) == {"a", "b"} and shared["a"] / 2000 == pytest.approx(0.5, abs=0.05)


def test_latency_window_keeps_the_latest_ten():
    routing, _clock, _wall = stats()
    for _ in range(10):
        routing.answered("a", 10.0)
    for _ in range(10):
        routing.answered("a", 1.0)

    assert routing.latency("a", ttl=3600) == 1.0


def test_simple_shuffle_follows_weights():
    routing, _clock, _wall = stats()

    shares = picks("simple-shuffle", [Deployment("a", weight=9), Deployment("b", weight=1)], routing, draws=2000)

    assert shares["a"] / 2000 == pytest.approx(0.9, abs=0.03)


def test_every_strategy_keeps_every_deployment_in_its_order_for_retries():
    routing, _clock, _wall = stats()
    for strategy in ("simple-shuffle", "least-busy", "usage-based-routing", "latency-based-routing"):
        order = strategy_order(RouterConfig(routing_strategy=strategy), [A, B, C], routing, 0)
        assert sorted(d.model_id for d in order) == ["a", "b", "c"], strategy


@pytest.mark.parametrize("strategy", ["simple-shuffle", "least-busy", "usage-based-routing", "latency-based-routing"])
def test_each_strategy_is_imported(strategy):
    assert parse_config(f"router_settings:\n  routing_strategy: {strategy}\n").router["routing_strategy"] == strategy


def test_an_unknown_strategy_is_refused_naming_the_known_ones():
    with pytest.raises(ConfigError) as refused:
        parse_config("router_settings:\n  routing_strategy: cost-based-routing\n")

    assert "unknown strategy 'cost-based-routing'" in str(refused.value)
    assert "simple-shuffle, least-busy, usage-based-routing, latency-based-routing" in str(refused.value)
    assert refused.value.line == 2


def test_latency_arguments_are_imported_and_others_reported_unsupported():
    parsed = parse_config(
        "router_settings:\n"
        "  routing_strategy: latency-based-routing\n"
        "  routing_strategy_args: {ttl: 30, lowest_latency_buffer: 0.25, max_latency_list_size: 5}\n"
    )

    assert parsed.router["routing_strategy_args"] == {"ttl": 30.0, "lowest_latency_buffer": 0.25}
    assert parsed.unsupported == ["router_settings.routing_strategy_args.max_latency_list_size"]


def test_a_negative_latency_argument_is_refused():
    with pytest.raises(ConfigError, match="must not be negative"):
        parse_config("router_settings:\n  routing_strategy_args: {ttl: -1}\n")


@pytest.mark.django_db(transaction=True)
async def test_a_call_is_in_flight_until_its_stream_is_closed_and_its_latency_is_kept(upstream):
    await DeploymentRow.objects.acreate(
        model_id="up", model_name="gpt-4o", litellm_model="openai/gpt-4o", api_base=f"{upstream.url}/v1"
    )
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}

    response = await AsyncClient().post("/v1/chat/completions", body, content_type="application/json", headers=headers)
    routing = (await gateway_state()).stats
    assert routing.in_flight("up") == 1  # the answer has started, the stream is still open
    b"".join([part async for part in response.streaming_content])
    assert routing.in_flight("up") == 0
    assert routing.latency("up", ttl=60) > 0
    assert routing.used("up")[0] == 1


@pytest.mark.django_db(transaction=True)
async def test_a_failed_call_is_no_longer_in_flight(upstream):
    await DeploymentRow.objects.acreate(
        model_id="up", model_name="gpt-4o", litellm_model="openai/gpt-4o", api_base=f"{upstream.url}/v1"
    )
    upstream.behaviour = Behaviour(status=400)
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]})
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}

    response = await AsyncClient().post("/v1/chat/completions", body, content_type="application/json", headers=headers)

    assert response.status_code == 400
    assert (await gateway_state()).stats.in_flight("up") == 0


@pytest.mark.django_db(transaction=True)
async def test_the_imported_strategy_and_its_arguments_reach_the_routing_table():
    config = "router_settings:\n  routing_strategy: latency-based-routing\n  routing_strategy_args: {ttl: 60}\n"
    await sync_to_async(apply_config)(parse_config(config))

    table = (await gateway_state()).table

    assert table.config.routing_strategy == "latency-based-routing"
    assert table.config.routing_strategy_args == {"ttl": 60.0}
