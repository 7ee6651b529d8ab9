"""Choosing a deployment: weighted shuffle and cooldowns."""

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from gateway.proxy.router import Cooldowns, RouterConfig, weighted_order


@dataclass(frozen=True)
class Deployment:
    model_id: str
    weight: int | None = None
    rpm: int | None = None
    tpm: int | None = None


def first_picks(deployments, draws=6000, seed=1) -> Counter:
    rng = random.Random(seed)
    return Counter(weighted_order(deployments, rng)[0].model_id for _ in range(draws))


@pytest.mark.parametrize(
    ("deployments", "shares"),
    [
        ([Deployment("a", weight=3), Deployment("b", weight=1)], {"a": 0.75, "b": 0.25}),
        ([Deployment("a", rpm=900), Deployment("b", rpm=100)], {"a": 0.9, "b": 0.1}),
        ([Deployment("a", tpm=1000), Deployment("b", tpm=1000)], {"a": 0.5, "b": 0.5}),
        ([Deployment("a"), Deployment("b"), Deployment("c")], {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
        # weight wins over rpm when both are set
        ([Deployment("a", weight=1, rpm=1000), Deployment("b", weight=1, rpm=1)], {"a": 0.5, "b": 0.5}),
    ],
)
def test_first_choice_follows_weight_then_rpm_then_tpm_else_uniform(deployments, shares):
    picks = first_picks(deployments)

    for model_id, share in shares.items():
        assert picks[model_id] / 6000 == pytest.approx(share, abs=0.03)


def test_order_contains_every_deployment_once():
    deployments = [Deployment(str(i), weight=i) for i in range(5)]

    order = weighted_order(deployments, random.Random(3))

    assert sorted(d.model_id for d in order) == ["0", "1", "2", "3", "4"]
    assert order[-1].model_id == "0"  # weight 0 is tried last


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_deployment_cools_down_after_allowed_fails_and_recovers():
    clock = Clock()
    cooldowns = Cooldowns(clock)
    config = RouterConfig(allowed_fails=2, cooldown_time=5)
    a, b = Deployment("a"), Deployment("b")

    cooldowns.record_failure("a", config)
    assert cooldowns.available([a, b]) == [a, b]
    cooldowns.record_failure("a", config)
    assert cooldowns.available([a, b]) == [b]
    clock.now += 5.1
    assert cooldowns.available([a, b]) == [a, b]


def test_failures_older_than_a_minute_do_not_count():
    clock = Clock()
    cooldowns = Cooldowns(clock)
    config = RouterConfig(allowed_fails=2, cooldown_time=5)

    cooldowns.record_failure("a", config)
    clock.now += 61
    cooldowns.record_failure("a", config)

    assert not cooldowns.cooling("a")


def test_success_clears_failures():
    cooldowns = Cooldowns(Clock())
    config = RouterConfig(allowed_fails=2)

    cooldowns.record_failure("a", config)
    cooldowns.record_success("a")
    cooldowns.record_failure("a", config)

    assert not cooldowns.cooling("a")


def test_when_every_deployment_cools_down_they_are_all_tried():
    cooldowns = Cooldowns(Clock())
    config = RouterConfig(allowed_fails=1, cooldown_time=60)
    a, b = Deployment("a"), Deployment("b")
    cooldowns.record_failure("a", config)
    cooldowns.record_failure("b", config)

    assert cooldowns.available([a, b]) == [a, b]
