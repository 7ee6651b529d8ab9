"""What the budget and rate counter backends (in-process, Redis) share: the question and the answer."""

from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from keys.caller import Limits


@dataclass(slots=True)
class Check:
    """One entity's part in an admission: its limits and what this call reserves on it."""

    limits: Limits
    worst_case_cost: Decimal


@dataclass(slots=True)
class Verdict:
    """What a backend answered: admitted with each entity's live usage, or refused by one entity's limit."""

    refused: str = ""  # "", "budget", "rpm", "tpm" or "parallel"
    entity: int = 0  # index into the checks of the refusing entity
    spend: list[Decimal] = field(default_factory=list)  # live spend per entity (admitted), or the refuser's
    reserved: Decimal = Decimal(0)  # reserved by calls in flight on the refusing entity
    requests: list[int] = field(default_factory=list)  # requests this minute per entity, this one included
    tokens: list[int] = field(default_factory=list)  # tokens this minute per entity, this call's estimate included


def reservation_seconds() -> float:
    return settings.TOLLGATE_RESERVATION_SECONDS


def rate_refusal(limits: Limits, requests: int, tokens: int, in_flight: int) -> str:
    """Which rate limit a new call would break, given this minute's usage and the calls in flight ("" for none)."""
    if limits.rpm_limit is not None and requests >= limits.rpm_limit:
        return "rpm"
    if limits.tpm_limit is not None and tokens >= limits.tpm_limit:
        return "tpm"
    if limits.max_parallel_requests is not None and in_flight >= limits.max_parallel_requests:
        return "parallel"
    return ""
