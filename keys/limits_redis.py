"""Budget and rate counters in Redis, shared by every server process: each admission is one atomic Lua script.

Per key, user or team there are three Redis hashes: the spend view (`period`, `spend`), the calls in flight
(admission id -> "reserved:deadline", so a process that dies holding one lets it lapse) and this minute's window
(`r` requests, `t` tokens). Money is counted in whole picodollars (1e-12 USD) so Redis adds it exactly as integers;
reservations round up and budgets round down, so the rounding never lets a call through.
"""

import asyncio
import logging
import time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import redis
from django.conf import settings

from keys.caller import Limits
from keys.counting import Verdict, reservation_seconds
from keys.redis_link import RedisLink, Script

logger = logging.getLogger(__name__)

_PICO = Decimal(10) ** 12
_RETRY_AFTER_FAILURE = 1.0  # seconds before a process that lost Redis tries it again
_TIMEOUT = 0.5  # seconds for Redis to connect or answer before the process counts alone
_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)

# Shared by the scripts: the spend view of an entity for a caller that loaded `period` and `seed` from the database.
# The view starts from the database's spend when it is created or a newer period begins; after that only settled
# calls move it. (Never "the higher of the two": a call's log can commit before it settles here, so a seed read in
# between may already hold that call, and settling would count it twice.)
_VIEW = """
local function view(e, period, seed)
  local stored = redis.call('HMGET', e, 'period', 'spend')
  local held = tonumber(stored[1])
  if held == nil or tonumber(period) > held then
    redis.call('HSET', e, 'period', period, 'spend', seed)
    return seed, period
  end
  return stored[2], stored[1]
end
"""

_LIVE_SPEND = (
    _VIEW
    + """
local spend, period = view(KEYS[1], ARGV[1], ARGV[2])
return {spend, period}
"""
)

# KEYS: per entity (view, in flight, window). ARGV: now_ms, admission id, deadline_ms, estimated tokens, n, then per
# entity: budget units ('' none), worst-case units, period, seed units, rpm, tpm, max parallel ('' none).
_ADMIT = Script(
    _VIEW
    + """
local now, id, deadline, est, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local spends, reqs, toks = {}, {}, {}
for i = 1, n do
  local e, a, w = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local b = 5 + (i-1)*7
  local limit, worst = ARGV[b+1], ARGV[b+2]
  local spend = view(e, ARGV[b+3], ARGV[b+4])
  local reserved, in_flight = 0, 0
  local held = redis.call('HGETALL', a)
  for j = 1, #held, 2 do
    local cost, expiry = string.match(held[j+1], '^(%d+):(%d+)$')
    if tonumber(expiry) < now then
      redis.call('HDEL', a, held[j])
    else
      reserved = reserved + tonumber(cost)
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
  local rpm, tpm, par = ARGV[b+5], ARGV[b+6], ARGV[b+7]
  if rpm ~= '' and r >= tonumber(rpm) then return {'rpm', i, spend, '0'} end
  if tpm ~= '' and t >= tonumber(tpm) then return {'tpm', i, spend, '0'} end
  if par ~= '' and in_flight >= tonumber(par) then return {'parallel', i, spend, '0'} end
  spends[i], reqs[i], toks[i] = spend, r + 1, t + est
end
local result = {'ok'}
for i = 1, n do
  local a, w = KEYS[3*i-1], KEYS[3*i]
  local b = 5 + (i-1)*7
  local reserve = '0'
  if ARGV[b+1] ~= '' then reserve = ARGV[b+2] end
  redis.call('HSET', a, id, reserve .. ':' .. deadline)
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

_ALERT_MARKER_SECONDS = 40 * 24 * 3600


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
        """Close this loop's connections (tests, shutdown)."""
        link = self._links.pop(asyncio.get_running_loop(), None)
        if link is not None:
            await link.close()

    async def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> CountersUnavailable:
        if time.monotonic() >= self._down_until:
            logger.warning("Redis limits unavailable (%s): using per-process limits until it is back", exc)
        self._down_until = time.monotonic() + _RETRY_AFTER_FAILURE
        return CountersUnavailable(str(exc))

    # -- keys ------------------------------------------------------------------------------------------------------

    def _keys(self, limits: Limits, minute: int) -> list[str]:
        entity = f"{limits.kind}:{limits.entity_id}"
        return [f"{self.prefix}spend:{entity}", f"{self.prefix}flight:{entity}", f"{self.prefix}rate:{entity}:{minute}"]

    # -- the counters ----------------------------------------------------------------------------------------------

    async def admit(self, admission, now: float) -> Verdict:
        keys: list[str] = []
        args: list = [int(now * 1000), admission.admission_id, int((now + reservation_seconds()) * 1000)]
        args += [admission.estimated_tokens, len(admission.checks)]
        for check in admission.checks:
            limits = check.limits
            keys += self._keys(limits, admission.minute)
            budget = limits.max_budget
            args += [
                "" if budget is None else to_units(budget, ROUND_FLOOR),
                to_units(check.worst_case_cost, ROUND_CEILING),
                limits.period,
                to_units(limits.spend, ROUND_FLOOR),
                "" if limits.rpm_limit is None else limits.rpm_limit,
                "" if limits.tpm_limit is None else limits.tpm_limit,
                "" if limits.max_parallel_requests is None else limits.max_parallel_requests,
            ]
        try:
            reply = await self._link().run(_ADMIT, keys, args)
        except _ERRORS as exc:
            raise self._failed(exc) from exc
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

    async def claim_alert(self, limits: Limits) -> bool:
        marker = f"{self.prefix}alerted:{limits.kind}:{limits.entity_id}:{limits.period}"
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
            spend, period = script(
                keys=self._keys(limits, 0)[:1], args=[limits.period, to_units(limits.spend, ROUND_FLOOR)]
            )
        except _ERRORS as exc:
            self._failed(exc)
            return None
        if int(period) != limits.period:
            return from_units(spend)
        return self._exact(limits, spend)


_counters: dict[tuple[str, str], RedisCounters] = {}


def redis_counters() -> RedisCounters:
    """The counters for settings.REDIS_URL and TOLLGATE_LIMITS_PREFIX (one instance per pair)."""
    prefix = getattr(settings, "TOLLGATE_LIMITS_PREFIX", "tollgate:limits:")
    counters = _counters.get((settings.REDIS_URL, prefix))
    if counters is None:
        counters = _counters[(settings.REDIS_URL, prefix)] = RedisCounters(settings.REDIS_URL, prefix)
    return counters
