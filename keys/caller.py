"""What the proxy knows about a caller: its models, aliases, expiry, and the limits of its key, user and team."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from keys.errors import AccessDenied, AuthenticationFailed


@dataclass(frozen=True, slots=True)
class Limits:
    """One key's, user's or team's budget and rate limits as last loaded, with its spend as the database held it."""

    kind: str  # "key", "user" or "team"
    entity_id: str  # token_hash, user_id or team_id
    label: str  # how refusals name it: "key sk-...abcd", "user alice", "team research"
    max_budget: Decimal | None = None
    soft_budget: Decimal | None = None
    spend: Decimal = Decimal(0)
    period: int = 0  # the budget period: budget_reset_at in epoch milliseconds (0: a budget that never resets)
    epoch: int = 0  # moves when spend is set by hand: counters holding an older epoch re-read `spend`
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None

    @property
    def limited(self) -> bool:
        return any(
            value is not None
            for value in (
                self.max_budget,
                self.soft_budget,
                self.rpm_limit,
                self.tpm_limit,
                self.max_parallel_requests,
            )
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the master key, or a virtual key with its user's and team's limits."""

    is_master: bool
    key_hash: str = ""
    key_alias: str = ""
    user_id: str = ""
    team_id: str = ""
    models: frozenset[str] = frozenset()  # the key's models; empty: every model
    aliases: Mapping[str, str] = field(default_factory=dict)  # the key's aliases over its team's model_aliases
    team_models: frozenset[str] = frozenset()
    user_models: frozenset[str] = frozenset()
    key_hint: str = ""
    expires: datetime | None = None
    blocked: bool = False
    key_limits: Limits | None = None
    user_limits: Limits | None = None
    team_limits: Limits | None = None

    def resolve_model(self, requested: str) -> str:
        """The model group a requested name maps to (the key's aliases, then its team's)."""
        return self.aliases.get(requested, requested)

    def _refusing_lists(self, group: str):
        """The model lists that do not name `group`: the deployment group a call reaches, never the name it asked
        for (an alias the key or its team defines must not carry a call past a list that leaves its target out)."""
        for owner, allowed in (("key", self.models), ("team", self.team_models), ("user", self.user_models)):
            if allowed and group not in allowed:
                yield owner, allowed

    def check_model_access(self, group: str, requested: str) -> None:
        for owner, allowed in self._refusing_lists(group):
            reached = f"model {requested!r}" if requested == group else f"model {requested!r} (model group {group!r})"
            raise AccessDenied(
                f"This {owner} may not call {reached}. Allowed models: {', '.join(sorted(allowed))}", param="model"
            )

    def may_use(self, group: str) -> bool:
        return next(self._refusing_lists(group), None) is None

    @property
    def limits(self) -> tuple[Limits, ...]:
        """Every budget and rate limit that applies to a call: the key's, its user's and its team's."""
        return tuple(limits for limits in (self.key_limits, self.user_limits, self.team_limits) if limits is not None)

    def ended_periods(self, now_ms: int) -> list[tuple[str, str]]:
        """The (kind, entity id) of each budget whose period had ended by `now_ms` as these limits know it."""
        return [(limits.kind, limits.entity_id) for limits in self.limits if 0 < limits.period <= now_ms]

    def check_usable(self, now: datetime) -> None:
        """Refuse an expired or blocked key (in that order)."""
        if self.expires is not None and now >= self.expires:
            raise AuthenticationFailed(
                f"Authentication Error - Expired Key. Key expired at {self.expires.isoformat()}; "
                f"current time {now.isoformat()}.",
                code="expired_key",
            )
        if self.blocked:
            raise AuthenticationFailed("Authentication Error - This key is blocked.", code="key_blocked")


MASTER = Caller(is_master=True)
