"""Which deployment serves a call: the order `router_settings.routing_strategy` gives a model group's deployments,
and cooldowns for failing deployments.

The strategies are LiteLLM's four: simple-shuffle (weighted random), least-busy (fewest calls in flight),
usage-based-routing (fewest tokens this minute, skipping a deployment at its rpm/tpm) and latency-based-routing
(lowest recent latency). What they read, RoutingStats, is kept per process, as cooldowns are: see its docstring.
"""

import random
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

_FAIL_WINDOW_SECONDS = 60.0
ROUTING_STRATEGIES = ("simple-shuffle", "least-busy", "usage-based-routing", "latency-based-routing")
# LiteLLM's lowest-latency defaults: latencies older than an hour are forgotten, at most 10 kept per deployment, and
# a deployment within 0 % of the fastest shares its traffic (routing_strategy_args may change the first and last).
_LATENCY_TTL_SECONDS = 3600.0
_LATENCY_WINDOW = 10
_LATENCY_BUFFER = 0.0


@dataclass(frozen=True, slots=True)
class RouterConfig:
    num_retries: int = 2
    timeout: float = 600.0
    cooldown_time: float = 5.0
    allowed_fails: int = 3
    fallbacks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    routing_strategy: str = "simple-shuffle"
    routing_strategy_args: Mapping[str, float] = field(default_factory=dict)


def weighted_order(deployments: Sequence, rng: random.Random = random._inst) -> list:
    """All deployments in a random order, earlier positions drawn by weight (else rpm, else tpm, else uniform)."""
    if len(deployments) < 2:
        return list(deployments)
    weights = [_weight(deployment) for deployment in deployments]
    if not any(weights):
        order = list(deployments)
        rng.shuffle(order)
        return order
    # Efraimidis-Spirakis: sort by u^(1/w), a weighted shuffle in one pass; weight 0 goes last.
    keyed = [
        (rng.random() ** (1.0 / weight) if weight else -rng.random(), index) for index, weight in enumerate(weights)
    ]
    keyed.sort(reverse=True)
    return [deployments[index] for _key, index in keyed]


def _weight(deployment) -> float:
    for value in (deployment.weight, deployment.rpm, deployment.tpm):
        if value:
            return float(value)
    return 0.0


class Cooldowns:
    """Per-process failure memory: a deployment failing allowed_fails times within a minute rests cooldown_time s."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._failures: dict[str, deque] = {}
        self._until: dict[str, float] = {}

    def record_failure(self, model_id: str, config: RouterConfig) -> None:
        now = self._clock()
        failures = self._failures.setdefault(model_id, deque())
        failures.append(now)
        while failures and failures[0] < now - _FAIL_WINDOW_SECONDS:
            failures.popleft()
        if len(failures) >= max(config.allowed_fails, 1):
            self._until[model_id] = now + config.cooldown_time
            failures.clear()

    def record_success(self, model_id: str) -> None:
        self._failures.pop(model_id, None)

    def cooling(self, model_id: str) -> bool:
        until = self._until.get(model_id)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[model_id]
            return False
        return True

    def available(self, deployments: Iterable) -> list:
        """Deployments not cooling down; all of them if every one is (better a try than a certain failure)."""
        deployments = list(deployments)
        warm = [deployment for deployment in deployments if not self.cooling(deployment.model_id)]
        return warm or deployments


class NoCapacity(Exception):
    """usage-based-routing: every deployment of the group is at its rpm or tpm for this minute."""

    def __init__(self, seconds_left: float):
        super().__init__("every deployment is at its rpm or tpm limit for this minute")
        self.seconds_left = seconds_left


class RoutingStats:
    """What the strategies read, per deployment: calls in flight, requests and tokens sent this clock minute, and
    the latest latencies.

    Kept in this process, not in Redis, as the cooldowns are. least-busy counts this process's calls by
    definition (LiteLLM's does too). For usage and latency, sharing them would cost a Redis round trip on every
    call's routing and tie routing to Redis being up; each process instead sees its own share of the traffic, so
    with W worker processes a deployment's rpm/tpm is respected per process (up to W times the limit in all),
    which keys' own limits, shared in Redis, do not suffer. Tokens are counted when a call is sent, as its
    estimated prompt plus the max_tokens it asks for: a burst spreads over the deployments at once instead of all
    going to the one that looked idle until the first answers came back.
    """

    def __init__(self, clock=time.monotonic, wall_clock=time.time):
        self._clock = clock
        self._wall_clock = wall_clock
        self._in_flight: dict[str, int] = {}
        self._minute = -1
        self._requests: dict[str, int] = {}
        self._tokens: dict[str, int] = {}
        self._latencies: dict[str, deque] = {}

    def _this_minute(self) -> None:
        minute = int(self._wall_clock() // 60)
        if minute != self._minute:
            self._minute = minute
            self._requests.clear()
            self._tokens.clear()

    def started(self, model_id: str, tokens: int) -> None:
        self._this_minute()
        self._in_flight[model_id] = self._in_flight.get(model_id, 0) + 1
        self._requests[model_id] = self._requests.get(model_id, 0) + 1
        self._tokens[model_id] = self._tokens.get(model_id, 0) + tokens

    def finished(self, model_id: str) -> None:
        """The call left the deployment: answered, failed, or (a stream) closed."""
        left = self._in_flight.get(model_id, 0) - 1
        if left > 0:
            self._in_flight[model_id] = left
        else:
            self._in_flight.pop(model_id, None)

    def answered(self, model_id: str, seconds: float) -> None:
        """The deployment took `seconds` to answer (a stream: to start), or to fail: a timeout counts as slow."""
        latencies = self._latencies.get(model_id)
        if latencies is None:
            latencies = self._latencies[model_id] = deque(maxlen=_LATENCY_WINDOW)
        latencies.append((self._clock(), seconds))

    def in_flight(self, model_id: str) -> int:
        return self._in_flight.get(model_id, 0)

    def used(self, model_id: str) -> tuple[int, int]:
        """(requests, tokens) sent to the deployment this clock minute."""
        self._this_minute()
        return self._requests.get(model_id, 0), self._tokens.get(model_id, 0)

    def seconds_left_in_minute(self) -> float:
        return 60 - self._wall_clock() % 60

    def latency(self, model_id: str, ttl: float) -> float:
        """The mean of the deployment's latencies of the last `ttl` seconds; 0 for one not measured (so it is tried
        first, and measured)."""
        now = self._clock()
        recent = [seconds for at, seconds in self._latencies.get(model_id, ()) if now - at <= ttl]
        return sum(recent) / len(recent) if recent else 0.0


def strategy_order(
    config: RouterConfig, deployments: Sequence, stats: RoutingStats, tokens: int, rng: random.Random = random._inst
) -> list:
    """Every deployment of a group, in the order the strategy tries them (the first is the pick, the rest are the
    retries). Ties are broken at random, so equal deployments share the traffic."""
    strategy = config.routing_strategy
    if strategy == "simple-shuffle":
        return weighted_order(deployments, rng)
    shuffled = list(deployments)
    rng.shuffle(shuffled)
    if strategy == "least-busy":
        return sorted(shuffled, key=lambda deployment: stats.in_flight(deployment.model_id))
    if strategy == "usage-based-routing":
        return _by_usage(shuffled, stats, tokens)
    return _by_latency(shuffled, stats, config.routing_strategy_args, rng)


def _by_usage(deployments: list, stats: RoutingStats, tokens: int) -> list:
    """Fewest tokens this minute first; a deployment this call would take past its rpm or tpm is left out."""
    within: list[tuple[int, object]] = []
    for deployment in deployments:
        requests, used = stats.used(deployment.model_id)
        if deployment.rpm is not None and requests + 1 > deployment.rpm:
            continue
        if deployment.tpm is not None and used + tokens > deployment.tpm:
            continue
        within.append((used, deployment))
    if not within:
        raise NoCapacity(stats.seconds_left_in_minute())
    within.sort(key=lambda pair: pair[0])
    return [deployment for _used, deployment in within]


def _by_latency(deployments: list, stats: RoutingStats, args: Mapping, rng: random.Random) -> list:
    """Fastest first; those within `lowest_latency_buffer` (a fraction) of the fastest come first in random order."""
    ttl = float(args.get("ttl", _LATENCY_TTL_SECONDS))
    buffer = float(args.get("lowest_latency_buffer", _LATENCY_BUFFER))
    timed = sorted(((stats.latency(d.model_id, ttl), d) for d in deployments), key=lambda pair: pair[0])
    bound = timed[0][0] * (1 + buffer)
    near = [deployment for latency, deployment in timed if latency <= bound]
    rng.shuffle(near)
    return near + [deployment for latency, deployment in timed if latency > bound]
