"""What the proxy knows about a caller: its models, aliases, expiry, and the limits of its key, user and team."""

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from keys.errors import AccessDenied, AuthenticationFailed, MissingParam
from keys.routes import route_of


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
    """An authenticated caller: the master key, or a virtual key with its user's, team's and organization's limits."""

    is_master: bool
    key_hash: str = ""
    key_alias: str = ""
    user_id: str = ""
    team_id: str = ""
    models: frozenset[str] = frozenset()  # the key's models; empty: every model
    aliases: Mapping[str, str] = field(default_factory=dict)  # the key's aliases over its team's model_aliases
    team_models: frozenset[str] = frozenset()
    user_models: frozenset[str] = frozenset()
    organization_id: str = ""  # the organization of the key's team
    organization_models: frozenset[str] = frozenset()
    key_hint: str = ""
    expires: datetime | None = None
    blocked: bool = False
    team_blocked: bool = False
    allowed_routes: frozenset[str] = frozenset()  # keys.routes.allowed_routes of the key's list; empty: every route
    enforced_params: tuple[str, ...] = ()  # body params every call must carry; "a.b" is b inside a
    reads_spend: bool = False  # permissions {"get_spend_routes": true}: may read the global spend reports
    key_limits: Limits | None = None
    user_limits: Limits | None = None
    team_limits: Limits | None = None
    organization_limits: Limits | None = None
    tags: tuple[str, ...] = ()  # the key's tags: each of its calls carries them, and pays their budgets
    model_limits: Mapping[str, Limits] = field(default_factory=dict)  # the key's per model group (keys.model_budgets)
    unstarted_models: frozenset[str] = frozenset()  # model groups with a budget whose spend row is not made yet

    def resolve_model(self, requested: str) -> str:
        """The model group a requested name maps to (the key's aliases, then its team's)."""
        return self.aliases.get(requested, requested)

    def _refusing_lists(self, group: str, access_groups: frozenset[str]):
        """The model lists that do not allow `group`: the deployment group a call reaches, never the name it asked
        for (an alias the key or its team defines must not carry a call past a list that leaves its target out)."""
        lists = (
            ("key", self.models),
            ("team", self.team_models),
            ("user", self.user_models),
            ("organization", self.organization_models),
        )
        for owner, allowed in lists:
            if allowed and not _allows(allowed, group, access_groups):
                yield owner, allowed

    def check_model_access(self, group: str, requested: str, access_groups: frozenset[str] = frozenset()) -> None:
        """Refuse a model none of the caller's lists allow. `access_groups`: the access groups of the deployments
        serving `group` (model_info.access_groups), any of which a list may name instead of the group."""
        for owner, allowed in self._refusing_lists(group, access_groups):
            reached = f"model {requested!r}" if requested == group else f"model {requested!r} (model group {group!r})"
            raise AccessDenied(
                f"This {owner} may not call {reached}. Allowed models: {', '.join(sorted(allowed))}", param="model"
            )

    def may_use(self, group: str, access_groups: frozenset[str] = frozenset()) -> bool:
        return next(self._refusing_lists(group, access_groups), None) is None

    @property
    def limits(self) -> tuple[Limits, ...]:
        """Every budget and rate limit that applies to a call: the key's, its user's, its team's and the team's
        organization's."""
        every = (self.key_limits, self.user_limits, self.team_limits, self.organization_limits)
        return tuple(limits for limits in every if limits is not None)

    def limits_for(self, group: str) -> tuple[Limits, ...]:
        """The limits a call to model group `group` is admitted against: `limits`, and the key's for that group."""
        model = self.model_limits.get(group)
        return self.limits if model is None else (*self.limits, model)

    def ended_periods(self, now_ms: int) -> list[tuple[str, str]]:
        """The (kind, entity id) of each budget whose period had ended by `now_ms` as these limits know it."""
        every = (*self.limits, *self.model_limits.values())
        return [(limits.kind, limits.entity_id) for limits in every if 0 < limits.period <= now_ms]

    def check_usable(self, now: datetime) -> None:
        """Refuse an expired key, a blocked one, and a key of a blocked team (in that order)."""
        if self.expires is not None and now >= self.expires:
            raise AuthenticationFailed(
                f"Authentication Error - Expired Key. Key expired at {self.expires.isoformat()}; "
                f"current time {now.isoformat()}.",
                code="expired_key",
            )
        if self.blocked:
            raise AuthenticationFailed("Authentication Error - This key is blocked.", code="key_blocked")
        if self.team_blocked:
            raise AccessDenied(
                f"Team={self.team_id} is blocked. Update via /team/unblock if you're an admin.", code="team_blocked"
            )

    def check_route(self, path: str) -> None:
        """Refuse a path the key's allowed_routes leave out (LiteLLM's words)."""
        if self.allowed_routes and route_of(path) not in self.allowed_routes:
            raise AccessDenied(
                f"Virtual key is not allowed to call this route. Only allowed to call routes: "
                f"{sorted(self.allowed_routes)}. Tried to call route: {path}",
                code="route_not_allowed",
            )

    def check_enforced_params(self, body: Mapping) -> None:
        """Refuse a request body without one of the key's enforced params, naming it (LiteLLM's words)."""
        for param in self.enforced_params:
            value = body
            for part in param.split("."):
                if not isinstance(value, Mapping) or part not in value:
                    raise MissingParam(
                        f"BadRequest please pass param={param} in request body. This is a required param",
                        param=param,
                    )
                value = value[part]


MASTER = Caller(is_master=True)


def _allows(allowed: frozenset[str], group: str, access_groups: frozenset[str]) -> bool:
    """A models list allows a group it names, one of its access groups, or a pattern matching it (`openai/*`
    allows `openai/gpt-4o`, as LiteLLM's key model lists do)."""
    if group in allowed or not access_groups.isdisjoint(allowed):
        return True
    return any(_pattern(entry).fullmatch(group) for entry in allowed if "*" in entry)


@functools.lru_cache(maxsize=1024)
def _pattern(entry: str) -> re.Pattern:
    """A models-list entry with `*` as a regular expression, compiled once per entry, not per call."""
    return re.compile(re.escape(entry).replace(r"\*", ".*"))
