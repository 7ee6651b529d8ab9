"""The per-process key cache behind `authenticate`: no database query for a known key, none for an unknown one.

The set of every valid secret hash is loaded once, with the few keys whose secret is no longer their first (a
regenerated key's identity, `token_hash`, stays the hash of its first secret); a key's state (its `Caller`) is
loaded off the event loop the first time it is used and kept, under its secret hash. `sync()` runs on the gateway's
sync thread every TOLLGATE_SYNC_INTERVAL seconds: one query for the `KeyChange` rows it has not seen (they name
keys by identity), and one more to reload the keys they touch, which tells it each one's current secret. Services
also run it when their transaction commits, so a change made through this process applies at once.
"""

import asyncio
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal

from django.db import close_old_connections

from keys.budgets import period_of
from keys.caller import Caller, Limits
from keys.model_budgets import model_limits
from keys.models import InternalUser, KeyChange, Organization, Team, VirtualKey
from keys.routes import allowed_routes

# Hashes the valid set held but the database did not (a key deleted a moment ago): refused without a query.
_MISSING_LIMIT = 10_000
# How often an unknown key may make this process look for keys created elsewhere.
_CATCH_UP_SECONDS = 0.1
# Special entries of a `models` list that mean "every model".
_ALL_MODELS = {"all-proxy-models", "*"}


def _model_set(models: list | None) -> frozenset[str]:
    names = frozenset(str(name) for name in models or ())
    return frozenset() if names & _ALL_MODELS else names


def limits_of(kind: str, entity_id: str, label: str, row, soft_budget: Decimal | None = None) -> Limits:
    """A key's, user's or team's limits, from its row."""
    return Limits(
        kind=kind,
        entity_id=entity_id,
        label=label,
        max_budget=row.max_budget,
        soft_budget=soft_budget,
        spend=row.spend,
        period=period_of(row.budget_reset_at),
        epoch=row.spend_epoch,
        rpm_limit=getattr(row, "rpm_limit", None),
        tpm_limit=getattr(row, "tpm_limit", None),
        max_parallel_requests=getattr(row, "max_parallel_requests", None),
    )


def key_limits(key: VirtualKey) -> Limits:
    return limits_of("key", key.token_hash, f"key {key.key_alias or key.key_hint}", key, key.soft_budget)


def user_limits(user: InternalUser) -> Limits:
    return limits_of("user", user.user_id, f"user {user.user_id}", user)


def team_limits(team: Team) -> Limits:
    return limits_of("team", team.team_id, f"team {team.team_alias or team.team_id}", team)


def organization_limits(organization: Organization) -> Limits:
    label = f"organization {organization.organization_alias or organization.organization_id}"
    return limits_of("organization", organization.organization_id, label, organization, organization.soft_budget)


# The Caller field naming the owner a user's, team's or organization's change reaches the keys through.
_OWNER_FIELDS = {KeyChange.Kind.USER: "user_id", KeyChange.Kind.ORGANIZATION: "organization_id"}
# What a key's state is read with: its user, its team, and the team's organization with that one's budget.
_CALLER_RELATIONS = ("user", "team", "team__organization__budget")


def caller_for(key: VirtualKey) -> Caller:
    """The proxy's view of a key row (with its user, team and team's organization selected)."""
    user: InternalUser | None = key.user
    team: Team | None = key.team
    organization: Organization | None = team.organization if team else None
    aliases = {**(team.model_aliases if team else {}), **(key.aliases or {})}
    per_model, unstarted = model_limits(key, f"key {key.key_alias or key.key_hint}")
    return Caller(
        is_master=False,
        key_hash=key.token_hash,
        key_alias=key.key_alias,
        user_id=user.user_id if user else "",
        team_id=team.team_id if team else "",
        models=_model_set(key.models),
        aliases=aliases,
        team_models=_model_set(team.models) if team else frozenset(),
        user_models=_model_set(user.models) if user else frozenset(),
        organization_id=organization.organization_id if organization else "",
        organization_models=_model_set(organization.models) if organization else frozenset(),
        key_hint=key.key_hint,
        expires=key.expires,
        blocked=key.blocked,
        team_blocked=bool(team and team.blocked),
        allowed_routes=allowed_routes(key.allowed_routes),
        enforced_params=tuple(key.enforced_params or ()),
        reads_spend=(key.permissions or {}).get("get_spend_routes") is True,
        key_limits=key_limits(key),
        user_limits=user_limits(user) if user else None,
        team_limits=team_limits(team) if team else None,
        organization_limits=organization_limits(organization) if organization else None,
        tags=tuple(str(tag) for tag in key.tags or ()),
        model_limits=per_model,
        unstarted_models=unstarted,
    )


def load_caller(secret_hash: str) -> Caller | None:
    """The key whose current secret hashes to `secret_hash`, or None."""
    key = VirtualKey.objects.select_related(*_CALLER_RELATIONS).filter(secret_hash=secret_hash).first()
    return caller_for(key) if key is not None else None


def load_callers(token_hashes) -> dict[str, tuple[str, Caller]]:
    """Keys by identity: each one's current secret hash and its state."""
    keys = VirtualKey.objects.select_related(*_CALLER_RELATIONS).filter(token_hash__in=list(token_hashes))
    return {key.token_hash: (key.secret_hash, caller_for(key)) for key in keys}


def _with_fresh_connection(function, *args):
    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()


class KeyCache:
    def __init__(self):
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tollgate-keys")
        self.loaded = False
        self.valid: set[str] = set()  # secret hashes
        self.renamed: dict[str, str] = {}  # identity -> secret hash, for keys whose secret is not their first
        self.callers: dict[str, Caller] = {}  # by secret hash
        self.customers: OrderedDict[str, object] = OrderedDict()  # keys.customers' states, by end_user_id
        self.tags: dict[str, Limits] | None = None  # every tag holder's limits (keys.holders), None: to be read
        self.missing: OrderedDict[str, None] = OrderedDict()
        self.last_change_id = 0
        self.generation = 0  # moves whenever a change is applied: a load that raced it is not kept
        self._loading: dict[str, Future] = {}
        self._first_load: Future | None = None
        self._catch_up: Future | None = None
        self._catch_up_at = 0.0

    # -- the event loop side ------------------------------------------------------------------------------------

    async def caller(self, secret_hash: str) -> Caller | None:
        caller = self.callers.get(secret_hash)
        if caller is not None:
            return caller
        if not self.loaded:
            await self._wait_for(self._start_first_load())
        if secret_hash in self.missing:
            return None
        if secret_hash not in self.valid:
            # Perhaps a key another process made a moment ago: one look at the change log, shared by every
            # unknown key that arrives meanwhile and at most one per _CATCH_UP_SECONDS, so a flood of wrong keys
            # costs a handful of queries a second, never one each.
            await self._wait_for(self._start_catch_up())
            if secret_hash not in self.valid or secret_hash in self.missing:
                return None
        return await self._wait_for(self._start_key_load(secret_hash))

    def _start_catch_up(self) -> Future:
        with self._lock:
            now = time.monotonic()
            if self._catch_up is None or (self._catch_up.done() and now - self._catch_up_at >= _CATCH_UP_SECONDS):
                self._catch_up_at = now
                self._catch_up = self.submit(self.sync)
            return self._catch_up

    async def run(self, function, *args):
        """Run a database call for the event loop on this cache's threads."""
        return await self._wait_for(self.submit(function, *args))

    @staticmethod
    async def _wait_for(future: Future):
        return await asyncio.shield(asyncio.wrap_future(future))

    def _start_first_load(self) -> Future:
        with self._lock:
            if self._first_load is None or (self._first_load.done() and not self.loaded):
                self._first_load = self.submit(self.load_all)
            return self._first_load

    def _start_key_load(self, secret_hash: str) -> Future:
        with self._lock:
            future = self._loading.get(secret_hash)
            if future is None:
                future = self._loading[secret_hash] = self.submit(self._load_key, secret_hash)
            return future

    def submit(self, function, *args) -> Future:
        """Run a database read on a worker thread (tests replace this to run it inline, where queries are counted)."""
        return self._executor.submit(_with_fresh_connection, function, *args)

    # -- loads (worker or sync thread) ----------------------------------------------------------------------------

    def load_all(self) -> None:
        """Read the valid secret hashes; changes logged from the moment before are applied by the next sync."""
        last_change = KeyChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
        valid, renamed = set(), {}
        for token_hash, secret_hash in VirtualKey.objects.values_list("token_hash", "secret_hash"):
            valid.add(secret_hash)
            if secret_hash != token_hash:
                renamed[token_hash] = secret_hash
        with self._lock:
            if self.loaded:
                return
            self.valid, self.renamed = valid, renamed
            self.callers.clear()
            self.missing.clear()
            self.last_change_id = last_change
            self.generation += 1
            self.loaded = True

    def _load_key(self, secret_hash: str) -> Caller | None:
        generation = self.generation
        try:
            caller = load_caller(secret_hash)
            with self._lock:
                if caller is None:
                    self._remember_missing(secret_hash)
                elif generation == self.generation:
                    self.callers[secret_hash] = caller
            return caller
        finally:
            with self._lock:
                self._loading.pop(secret_hash, None)

    def _remember_missing(self, secret_hash: str) -> None:
        self.missing[secret_hash] = None
        while len(self.missing) > _MISSING_LIMIT:
            self.missing.popitem(last=False)

    def sync(self) -> None:
        """Apply the KeyChange rows not seen yet (one small query when nothing changed).

        Queries run outside `_lock`, which the event loop takes, so a slow database never stalls the loop."""
        with self._sync_lock:
            if not self.loaded:
                self.load_all()
                return
            changes = list(
                KeyChange.objects.filter(id__gt=self.last_change_id)
                .order_by("id")
                .values_list("id", "kind", "entity_id", "deleted")[:5000]
            )
            if not changes:
                return
            with self._lock:
                self.generation += 1
                changed, owned = self._apply(changes)
                cached = {token_hash for token_hash in changed if self.secret_of(token_hash) in self.callers}
            # A key's change may have given it a new secret (regenerated): its row says which.
            reload = changed | owned
            fresh = load_callers(reload) if reload else {}
            with self._lock:
                for token_hash in reload:
                    self._forget(token_hash)
                for token_hash, (secret_hash, caller) in fresh.items():
                    self._learn(token_hash, secret_hash)
                    if token_hash in cached or token_hash in owned:
                        self.callers[secret_hash] = caller
                self.last_change_id = changes[-1][0]

    def secret_of(self, token_hash: str) -> str:
        """The hash of a key's current secret, as far as this process knows, from its identity."""
        return self.renamed.get(token_hash, token_hash)

    def _forget(self, token_hash: str) -> None:
        secret_hash = self.renamed.pop(token_hash, token_hash)
        self.valid.discard(secret_hash)
        self.callers.pop(secret_hash, None)

    def _learn(self, token_hash: str, secret_hash: str) -> None:
        self.valid.add(secret_hash)
        self.missing.pop(secret_hash, None)
        if secret_hash != token_hash:
            self.renamed[token_hash] = secret_hash

    def _apply(self, changes) -> tuple[set[str], set[str]]:
        """Drop deleted keys; return the identities of the keys that changed, and of the cached keys whose user or
        team changed."""
        changed: set[str] = set()
        owned: set[str] = set()
        for _, kind, entity_id, deleted in changes:
            if kind == KeyChange.Kind.CUSTOMER:
                self.customers.pop(entity_id, None)
            elif kind == KeyChange.Kind.TAG:
                self.tags = None  # tag holders are few and read all at once
            elif kind == KeyChange.Kind.KEY_MODEL:
                changed.add(entity_id.partition(":")[0])  # the key's spend on one model: reload the key
            elif kind == KeyChange.Kind.BUDGET:
                # A budget's customers and organizations are not indexed here; budgets change rarely.
                self.customers.clear()
                owned.update(caller.key_hash for caller in self.callers.values() if caller.organization_id)
            elif kind == KeyChange.Kind.KEY:
                if deleted:
                    self._forget(entity_id)
                    changed.discard(entity_id)
                    owned.discard(entity_id)
                else:
                    changed.add(entity_id)
            else:
                owner = _OWNER_FIELDS.get(kind, "team_id")
                owned.update(caller.key_hash for caller in self.callers.values() if getattr(caller, owner) == entity_id)
        return changed, owned

    def clear(self) -> None:
        """Forget everything (tests, and a process that switched databases)."""
        with self._sync_lock, self._lock:
            self.loaded = False
            self.valid = set()
            self.renamed = {}
            self.callers.clear()
            self.customers.clear()
            self.tags = None
            self.missing.clear()
            self.last_change_id = 0
            self.generation += 1
            self._first_load = None


_cache = KeyCache()


def key_cache() -> KeyCache:
    return _cache
