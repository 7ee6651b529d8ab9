"""Which deployment serves a call: weighted shuffle within a model group, cooldowns for failing deployments."""

import random
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_FAIL_WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RouterConfig:
    num_retries: int = 2
    timeout: float = 600.0
    cooldown_time: float = 5.0
    allowed_fails: int = 3
    fallbacks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    routing_strategy: str = "simple-shuffle"


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
