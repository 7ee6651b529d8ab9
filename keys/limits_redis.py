"""Budget and rate counters in Redis, shared by every server process: each admission is one atomic Lua script.

Per key, user or team there are three Redis hashes: the spend view (`period`, `epoch`, `spend`), the calls in
flight (admission id -> "reserved:deadline:owner") and this minute's window (`r` requests, `t` tokens). Money is
counted in whole picodollars (1e-12 USD) so Redis adds it exactly as integers; reservations round up and budgets
round down, so the rounding never lets a call through.

The spend view is a cache of the ledger. It is created only from the database's spend read for that purpose
(`keys.seeds`): when a script finds no view (Redis restarted empty, flushed, evicted it) or an older period or
epoch than the caller's, it answers "seed" and the caller reads the database and asks again.

A reservation is a lease held by its process: each process keeps `alive:<owner>` for TOLLGATE_LEASE_SECONDS and
renews it while it runs, and a reservation whose owner's key has lapsed counts for nothing. A process killed with
calls in flight gives their parallel slots and reserved budget back within seconds (those calls are charged by
the spend journal's sweep, not forgotten).
"""

import asyncio
import logging
import time
import uuid
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import redis
from django.conf import settings

from keys.caller import Limits
from keys.counting import Verdict, reservation_seconds
from keys.redis_link import RedisLink, Script
from keys.seeds import seeds

logger = logging.getLogger(__name__)

_PICO = Decimal(10) ** 12
_RETRY_AFTER_FAILURE = 1.0  # seconds before a process that lost Redis tries it again
_TIMEOUT = 0.5  # seconds for Redis to connect or answer before the process counts alone
_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)

# Shared by the scripts: the spend view of an entity for a caller whose limits hold `period` and `epoch`. Returns
# nil when the view must be (re)made from the database's spend and the caller gave none (`seed` ''); a caller with a
# seed read from the database gets its view made from it. A caller holding an older period or epoch than the view
# uses the view. Within a period and epoch only settled calls move the view (a seed read between a call's commit and
# its settle already holds that call: settling counts it twice, never zero times, until the next seed).
_VIEW = """
local function view(e, period, epoch, seed)
  local stored = redis.call('HMGET', e, 'period', 'epoch', 'spend')
  local held, held_epoch = tonumber(stored[1]), tonumber(stored[2]) or 0
  local p, ep = tonumber(period), tonumber(epoch)
  if held == nil or p > held or (p == held and ep > held_epoch) then
    if seed == '' then return nil end
    redis.call('HSET', e, 'period', period, 'epoch', epoch, 'spend', seed)
    return seed, period
  end
  return stored[3], stored[1]
end
"""

_LIVE_SPEND = (
    _VIEW
    + """
local spend, period = view(KEYS[1], ARGV[1], ARGV[2], '')
if spend == nil then return nil end
return {spend, period}
"""
)

# A reservation still counts: not past its deadline, and its owner process alive. ARGV[6] is the keys' prefix.
_HELD = """
local alive = {}
local function held(value, now)
  local cost, expiry, owner = string.match(value, '^(%d+):(%d+):?(.*)$')
  if tonumber(expiry) < now then return nil end
  if owner ~= '' then
    if alive[owner] == nil then alive[owner] = redis.call('EXISTS', ARGV[6] .. 'alive:' .. owner) == 1 end
    if not alive[owner] then return nil end
  end
  return tonumber(cost)
end
"""

# KEYS: per entity (view, in flight, window), then this process's alive key. ARGV: now_ms, admission id,
# deadline_ms, estimated tokens, n, prefix, owner, lease_ms, then per entity: budget units ('' none), worst-case
# units, period, epoch, seed units ('' none), rpm, tpm, max parallel ('' none).
# Answers {'ok', spend, requests, tokens per entity}, {refusal, entity, spend, reserved} or {'seed', entity}.
_ADMIT = Script(
    _VIEW
    + _HELD
    + """
local now, id, deadline, est, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local owner, lease = ARGV[7], ARGV[8]
redis.call('SET', KEYS[3*n+1], 1, 'PX', lease)
local spends, reqs, toks = {}, {}, {}
for i = 1, n do
  local e, a, w = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local b = 8 + (i-1)*8
  local limit, worst = ARGV[b+1], ARGV[b+2]
  local spend = view(e, ARGV[b+3], ARGV[b+4], ARGV[b+5])
  if spend == nil then return {'seed', i} end
  local reserved, in_flight = 0, 0
  local entries = redis.call('HGETALL', a)
  for j = 1, #entries, 2 do
    local cost = held(entries[j+1], now)
    if cost == nil then
      redis.call('HDEL', a, entries[j])
    else
      reserved = reserved + cost
      in_flight = in_flight + 1
    end
  end
  if limit ~= '' then
    local budget = tonumber(limit)
    if tonumber(spend) >= budget or tonumber(spend) + reserved + tonumber(worst) > budget then
      return {'budget', i, spend, string.format('%.0f', reserved)}
    end
  end
  local used = redis.call('HMGET', w, 'r', 't')
  local r, t = tonumber(used[1]) or 0, tonumber(used[2]) or 0
  local rpm, tpm, par = ARGV[b+6], ARGV[b+7], ARGV[b+8]
  if rpm ~= '' and r >= tonumber(rpm) then return {'rpm', i, spend, '0'} end
  if tpm ~= '' and t >= tonumber(tpm) then return {'tpm', i, spend, '0'} end
  if par ~= '' and in_flight >= tonumber(par) then return {'parallel', i, spend, '0'} end
  spends[i], reqs[i], toks[i] = spend, r + 1, t + est
end
local result = {'ok'}
for i = 1, n do
  local a, w = KEYS[3*i-1], KEYS[3*i]
  local b = 8 + (i-1)*8
  local reserve = '0'
  if ARGV[b+1] ~= '' then reserve = ARGV[b+2] end
  redis.call('HSET', a, id, reserve .. ':' .. deadline .. ':' .. owner)
  redis.call('PEXPIREAT', a, deadline)
  redis.call('HINCRBY', w, 'r', 1)
  if est > 0 then redis.call('HINCRBY', w, 't', est) end
  redis.call('EXPIRE', w, 120)
  table.insert(result, spends[i])
  table.insert(result, reqs[i])
  table.insert(result, toks[i])
end
return result
"""
)

# KEYS: per entity (view, in flight, window of the admission's minute). ARGV: admission id, n, then per entity:
# period, cost units, token delta. Returns each entity's spend after the call ('' when its period has moved on).
_SETTLE = Script(
    """
local id, n = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 1, n do
  local e, a, w = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local b = 2 + (i-1)*3
  redis.call('HDEL', a, id)
  local delta = tonumber(ARGV[b+3])
  if delta ~= 0 and redis.call('EXISTS', w) == 1 then
    if redis.call('HINCRBY', w, 't', delta) < 0 then redis.call('HSET', w, 't', 0) end
  end
  if redis.call('HGET', e, 'period') == ARGV[b+1] then
    if ARGV[b+2] ~= '0' then redis.call('HINCRBY', e, 'spend', ARGV[b+2]) end
    out[i] = redis.call('HGET', e, 'spend')
  else
    out[i] = ''
  end
end
return out
"""
)


# KEYS: the alert's marker. ARGV: seconds it is kept. Truthy when this call set it (the first to claim the alert).
_CLAIM = Script("return redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1])")

# KEYS: this process's alive key. ARGV: the lease in milliseconds.
_RENEW = Script("return redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])")

# KEYS: spend views to drop (made again from the database at their next admission).
_FORGET = Script("return redis.call('DEL', unpack(KEYS))")

_ALERT_MARKER_SECONDS = 40 * 24 * 3600


def _lease_ms() -> int:
    return int(settings.TOLLGATE_LEASE_SECONDS * 1000)


class CountersUnavailable(Exception):
    """Redis did not answer: the caller falls back to this process's counters."""


def to_units(amount: Decimal, rounding: str) -> int:
    return int((amount * _PICO).to_integral_value(rounding=rounding))


def from_units(units: bytes | str | int) -> Decimal:
    return Decimal(int(units)) / _PICO


class RedisCounters:
    def __init__(self, url: str, prefix: str):
        self.url = url
        self.prefix = prefix
        self.owner = uuid.uuid4().hex  # this process, as the holder of its reservations' leases
        self._links: dict[asyncio.AbstractEventLoop, RedisLink] = {}
        self._sync = None
        self._down_until = 0.0

    # -- connections -----------------------------------------------------------------------------------------------

    def _link(self) -> RedisLink:
        """This event loop's link to Redis (asyncio connections belong to the loop that made them)."""
        loop = asyncio.get_running_loop()
        link = self._links.get(loop)
        if link is None:
            link = self._links[loop] = RedisLink(self.url, timeout=_TIMEOUT)
        return link

    def _sync_client(self):
        if self._sync is None:
            client = redis.Redis.from_url(self.url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT)
            self._sync = (client, client.register_script(_LIVE_SPEND))
        return self._sync

    async def close(self) -> None:
        """Close this loop's link and the synchronous client (tests, shutdown); either opens again when next used."""
        link = self._links.pop(asyncio.get_running_loop(), None)
        if link is not None:
            await link.close()
        sync, self._sync = self._sync, None
        if sync is not None:
            sync[0].close()

    async def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> CountersUnavailable:
        if time.monotonic() >= self._down_until:
            logger.warning(
                "Redis limits unavailable (%s): budgets by the database, rate limits per process until it is back", exc
            )
        self._down_until = time.monotonic() + _RETRY_AFTER_FAILURE
        return CountersUnavailable(str(exc))

    # -- keys ------------------------------------------------------------------------------------------------------

    def _keys(self, limits: Limits, minute: int) -> list[str]:
        entity = f"{limits.kind}:{limits.entity_id}"
        return [f"{self.prefix}spend:{entity}", f"{self.prefix}flight:{entity}", f"{self.prefix}rate:{entity}:{minute}"]

    # -- the counters ----------------------------------------------------------------------------------------------

    def _alive_key(self) -> str:
        return f"{self.prefix}alive:{self.owner}"

    async def admit(self, admission, now: float) -> Verdict:
        reply = await self._run_admit(admission, now, seeded=None)
        if reply[0] == b"seed":
            # A view to make from the database: read every entity's state now, then ask again with it.
            seeded = await seeds([check.limits for check in admission.checks])
            reply = await self._run_admit(admission, now, seeded)
        outcome = reply[0].decode()
        if outcome != "ok":
            return Verdict(outcome, int(reply[1]) - 1, [from_units(reply[2])], from_units(reply[3]))
        verdict = Verdict()
        for index in range(len(admission.checks)):
            spend, requests, tokens = reply[1 + 3 * index : 4 + 3 * index]
            verdict.spend.append(self._exact(admission.checks[index].limits, spend))
            verdict.requests.append(int(requests))
            verdict.tokens.append(int(tokens))
        return verdict

    async def _run_admit(self, admission, now: float, seeded: list[Limits] | None) -> list:
        keys: list[str] = []
        args: list = [int(now * 1000), admission.admission_id, int((now + reservation_seconds()) * 1000)]
        args += [admission.estimated_tokens, len(admission.checks), self.prefix, self.owner, _lease_ms()]
        for index, check in enumerate(admission.checks):
            limits = check.limits
            keys += self._keys(limits, admission.minute)
            budget = limits.max_budget
            seed = seeded[index] if seeded else None
            args += [
                "" if budget is None else to_units(budget, ROUND_FLOOR),
                to_units(check.worst_case_cost, ROUND_CEILING),
                seed.period if seed else limits.period,
                seed.epoch if seed else limits.epoch,
                to_units(seed.spend, ROUND_FLOOR) if seed else "",
                "" if limits.rpm_limit is None else limits.rpm_limit,
                "" if limits.tpm_limit is None else limits.tpm_limit,
                "" if limits.max_parallel_requests is None else limits.max_parallel_requests,
            ]
        keys.append(self._alive_key())
        try:
            return await self._link().run(_ADMIT, keys, args)
        except _ERRORS as exc:
            raise self._failed(exc) from exc

    async def forget_views(self, entities: set[tuple[str, str]]) -> bool:
        """Drop the spend views of these (kind, entity id): whether Redis did."""
        keys = [f"{self.prefix}spend:{kind}:{entity_id}" for kind, entity_id in sorted(entities)]
        try:
            await self._link().run(_FORGET, keys, [])
        except _ERRORS as exc:
            self._failed(exc)
            return False
        return True

    async def renew_leases(self) -> None:
        """Keep this process's reservations held (the server's sync loop calls it every tick)."""
        if not await self.available():
            return
        try:
            await self._link().run(_RENEW, [self._alive_key()], [_lease_ms()])
        except _ERRORS as exc:
            self._failed(exc)

    @staticmethod
    def _exact(limits: Limits, units) -> Decimal:
        """The spend in picodollars as a Decimal: the database's own digits when that is all there is."""
        if int(units) == to_units(limits.spend, ROUND_FLOOR):
            return limits.spend
        return from_units(units)

    async def settle(self, admission, actual_cost: Decimal, token_delta: int) -> list[Decimal | None]:
        keys: list[str] = []
        args: list = [admission.admission_id, len(admission.checks)]
        for check in admission.checks:
            keys += self._keys(check.limits, admission.minute)
            args += [check.limits.period, to_units(actual_cost, ROUND_CEILING), token_delta]
        try:
            reply = await self._link().run(_SETTLE, keys, args)
        except _ERRORS as exc:
            # The reservation lapses at its deadline; the database has the charge, and the next reload brings it.
            self._failed(exc)
            return [None] * len(admission.checks)
        return [from_units(spend) if spend else None for spend in reply]

    async def claim_alert(self, limits: Limits, event: str) -> bool:
        marker = f"{self.prefix}alerted:{event}:{limits.kind}:{limits.entity_id}:{limits.period}"
        try:
            return bool(await self._link().run(_CLAIM, [marker], [_ALERT_MARKER_SECONDS]))
        except _ERRORS as exc:
            self._failed(exc)
            return False

    def live_spend_sync(self, limits: Limits) -> Decimal | None:
        """The spend view for the management API (None when Redis is unavailable)."""
        if time.monotonic() < self._down_until:
            return None
        _, script = self._sync_client()
        try:
            view = script(keys=self._keys(limits, 0)[:1], args=[limits.period, limits.epoch])
        except _ERRORS as exc:
            self._failed(exc)
            return None
        if view is None:  # no view as new as these limits: nothing is counted beyond the database's spend
            return limits.spend
        spend, period = view
        if int(period) != limits.period:
            return from_units(spend)
        return self._exact(limits, spend)


_counters: dict[tuple[str, str], RedisCounters] = {}


async def close_redis_counters() -> None:
    """Close the Redis connections each counters instance opened (the server's shutdown)."""
    for counters in list(_counters.values()):
        await counters.close()


def redis_counters() -> RedisCounters:
    """The counters for settings.REDIS_URL and TOLLGATE_LIMITS_PREFIX (one instance per pair)."""
    prefix = settings.TOLLGATE_LIMITS_PREFIX
    counters = _counters.get((settings.REDIS_URL, prefix))
    if counters is None:
        counters = _counters[(settings.REDIS_URL, prefix)] = RedisCounters(settings.REDIS_URL, prefix)
    return counters
