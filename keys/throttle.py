"""The failed-auth throttle: slowing down guessing from one address, on the proxy and the management API alike.

Failed authentications are counted per client address in fixed windows, in this process (a dict) or, with
REDIS_URL, in Redis so that every server process sees the same count. Neither touches the database. After
`TOLLGATE_AUTH_FAILURE_LIMIT` failures within `TOLLGATE_AUTH_FAILURE_WINDOW` seconds, the address gets 429 with a
`retry-after` until the window ends, whether or not the key it sends is right.

An address Redis has reported clean is not asked about again for a quarter of a second unless it fails here
meanwhile. After that, its next call goes through while Redis is asked again beside it: a caller Redis knows as
clean never waits for Redis here, and failures counted by other processes are seen at most a quarter of a second
and one call late. Only an address this process has no clean answer for waits for Redis's.
"""

import asyncio
import logging
import time
from dataclasses import dataclass

import redis
import redis.asyncio
from django.conf import settings

from keys.errors import RateLimited

logger = logging.getLogger(__name__)

_REDIS_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)
_REDIS_PREFIX = "tollgate:authfail:"
# After a Redis error, count in this process alone for this long before trying Redis again.
_REDIS_RETRY_SECONDS = 1.0
# How long a clean answer from Redis for an address stands before Redis is asked again.
_SHARED_CLEAN_SECONDS = 0.25
# The in-process tables are pruned of ended windows past this many addresses, so a spray of addresses cannot grow it.
_MAX_TRACKED_ADDRESSES = 100_000


class AuthThrottled(RateLimited, code="too_many_failed_auth"):
    """Too many failed authentications from one address: a 429 with `retry-after` (a RateLimited to the proxy)."""

    def __init__(self, retry_after: int):
        super().__init__(
            f"Too many failed authentication attempts from this address. Try again in {retry_after} seconds.",
            headers={"retry-after": str(retry_after)},
        )
        self.retry_after = retry_after


@dataclass(slots=True)
class _Window:
    ends: float
    failures: int = 0


class AuthFailureCounter:
    """Failed authentications per address; Redis-backed when a URL is given, with this process as the fallback."""

    def __init__(self, limit: int, window: float, redis_url: str = ""):
        self.limit = limit
        self.window = window
        self.redis_url = redis_url
        self._local: dict[str, _Window] = {}
        self._async_clients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}
        self._sync_client: redis.Redis | None = None
        self._pending: set[asyncio.Task] = set()
        self._redis_down_until: float | None = None  # set while Redis is failing
        self._clean_until: dict[str, float] = {}  # address -> until when Redis's "no failures" answer stands

    # --- this process -------------------------------------------------------------------------------------

    def _local_retry_after(self, address: str, now: float) -> int:
        window = self._local.get(address)
        if window is None or window.ends <= now or window.failures < self.limit:
            return 0
        return max(1, round(window.ends - now))

    def _record_local(self, address: str, now: float) -> None:
        window = self._local.get(address)
        if window is None or window.ends <= now:
            if len(self._local) >= _MAX_TRACKED_ADDRESSES:
                self._local = {key: value for key, value in self._local.items() if value.ends > now}
            window = self._local[address] = _Window(ends=now + self.window)
        window.failures += 1

    # --- Redis --------------------------------------------------------------------------------------------

    def _redis_async(self) -> redis.asyncio.Redis:
        # An asyncio client belongs to the loop it was made on (tests run a loop per test).
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = redis.asyncio.Redis.from_url(self.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            self._async_clients[loop] = client
        return client

    def _redis_sync(self) -> redis.Redis:
        if self._sync_client is None:
            self._sync_client = redis.Redis.from_url(self.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return self._sync_client

    def _retry_after_from(self, failures, ttl_ms) -> int:
        if failures is None or int(failures) < self.limit or ttl_ms is None or int(ttl_ms) <= 0:
            return 0
        return max(1, round(int(ttl_ms) / 1000))

    def _uses_redis(self, now: float) -> bool:
        return bool(self.redis_url) and (self._redis_down_until is None or now >= self._redis_down_until)

    def _asks_redis(self, address: str, now: float) -> bool:
        return self._uses_redis(now) and self._clean_until.get(address, 0.0) <= now

    def _shared_answer(self, address: str, now: float, failures, ttl_ms) -> int:
        self._redis_answered()
        wait = self._retry_after_from(failures, ttl_ms)
        if wait:
            self._clean_until.pop(address, None)  # the next call waits for Redis's answer
        else:
            if len(self._clean_until) >= _MAX_TRACKED_ADDRESSES:
                self._clean_until = {key: until for key, until in self._clean_until.items() if until > now}
            self._clean_until[address] = now + _SHARED_CLEAN_SECONDS
        return wait

    def _redis_unavailable(self, exc: Exception) -> None:
        if self._redis_down_until is None:  # once per outage, not once per request
            logger.warning("Redis unavailable for the failed-auth throttle (%s): counting in this process", exc)
        self._redis_down_until = time.monotonic() + _REDIS_RETRY_SECONDS

    def _redis_answered(self) -> None:
        if self._redis_down_until is not None:
            self._redis_down_until = None
            logger.warning("Redis is back for the failed-auth throttle")

    # --- the interface ------------------------------------------------------------------------------------

    async def retry_after(self, address: str) -> int:
        """Seconds this address must wait before authenticating again; 0 when it may try now."""
        now = time.monotonic()
        local = self._local_retry_after(address, now)
        if local or not self._asks_redis(address, now):
            return local
        if address in self._clean_until:  # clean when Redis last said, and not failed here since
            self._clean_until[address] = now + _SHARED_CLEAN_SECONDS
            self._in_background(self._ask_redis(address, now))
            return 0
        return await self._ask_redis(address, now)

    async def _ask_redis(self, address: str, now: float) -> int:
        try:
            async with self._redis_async().pipeline(transaction=False) as pipe:
                failures, ttl_ms = await pipe.get(_REDIS_PREFIX + address).pttl(_REDIS_PREFIX + address).execute()
        except _REDIS_ERRORS as exc:
            self._redis_unavailable(exc)
            return 0
        return self._shared_answer(address, now, failures, ttl_ms)

    def _in_background(self, work) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def retry_after_sync(self, address: str) -> int:
        """`retry_after` for synchronous code (the management API's views)."""
        now = time.monotonic()
        local = self._local_retry_after(address, now)
        if local or not self._asks_redis(address, now):
            return local
        try:
            with self._redis_sync().pipeline(transaction=False) as pipe:
                failures, ttl_ms = pipe.get(_REDIS_PREFIX + address).pttl(_REDIS_PREFIX + address).execute()
        except _REDIS_ERRORS as exc:
            self._redis_unavailable(exc)
            return 0
        return self._shared_answer(address, now, failures, ttl_ms)

    def record_failure(self, address: str) -> None:
        """Count one failed authentication; on an event loop the Redis write runs as a task of its own."""
        now = time.monotonic()
        self._record_local(address, now)
        self._clean_until.pop(address, None)
        if not self._uses_redis(now):
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._record_redis_sync(address)
            return
        self._in_background(self._record_redis(address))

    def _window_ms(self) -> int:
        return max(1, int(self.window * 1000))

    async def _record_redis(self, address: str) -> None:
        key = _REDIS_PREFIX + address
        try:
            async with self._redis_async().pipeline(transaction=True) as pipe:
                await pipe.set(key, 0, px=self._window_ms(), nx=True).incr(key).execute()
        except _REDIS_ERRORS as exc:
            self._redis_unavailable(exc)

    def _record_redis_sync(self, address: str) -> None:
        key = _REDIS_PREFIX + address
        try:
            with self._redis_sync().pipeline(transaction=True) as pipe:
                pipe.set(key, 0, px=self._window_ms(), nx=True).incr(key).execute()
        except _REDIS_ERRORS as exc:
            self._redis_unavailable(exc)

    async def flush(self) -> None:
        """Wait for Redis writes still under way (tests, and a clean shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        """Finish pending writes and close this loop's Redis connections (tests, shutdown)."""
        await self.flush()
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None


_counter: AuthFailureCounter | None = None


def auth_failures() -> AuthFailureCounter:
    """This process's counter, made from the settings on first use."""
    global _counter
    if _counter is None:
        _counter = AuthFailureCounter(
            limit=settings.TOLLGATE_AUTH_FAILURE_LIMIT,
            window=settings.TOLLGATE_AUTH_FAILURE_WINDOW,
            redis_url=settings.REDIS_URL,
        )
    return _counter


async def close_auth_failures() -> None:
    """Finish the counter's Redis writes and close its connections, if it was made (the server's shutdown)."""
    if _counter is not None:
        await _counter.close()


def reset_auth_failures() -> None:
    """Forget every count of this process and start again from the settings (tests; settings changes)."""
    global _counter
    _counter = None


def forget_shared_auth_failures(redis_url: str) -> None:
    """Delete every address's count in Redis (tests, which fail on purpose from one address)."""
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(_REDIS_PREFIX + "*"):
            client.delete(key)
    finally:
        client.close()


async def check_auth_throttle(client_ip: str) -> None:
    """Raise AuthThrottled when this address failed to authenticate too often lately (call before authenticating)."""
    if settings.TOLLGATE_AUTH_FAILURE_LIMIT <= 0:
        return
    wait = await auth_failures().retry_after(client_ip)
    if wait:
        raise AuthThrottled(wait)


def check_auth_throttle_sync(client_ip: str) -> None:
    """`check_auth_throttle` for synchronous code."""
    if settings.TOLLGATE_AUTH_FAILURE_LIMIT <= 0:
        return
    wait = auth_failures().retry_after_sync(client_ip)
    if wait:
        raise AuthThrottled(wait)


def record_auth_failure(client_ip: str) -> None:
    """Count a failed authentication from this address (call when a key is missing or wrong)."""
    if settings.TOLLGATE_AUTH_FAILURE_LIMIT > 0:
        auth_failures().record_failure(client_ip)


def client_ip(request) -> str:
    """The caller's address: the TCP peer, or behind a trusted proxy the address it appended to X-Forwarded-For.

    Only the right-most X-Forwarded-For entry is taken (the one our own proxy wrote); the others are the client's
    to choose, so trusting them would let anyone pick a fresh address for every guess.
    """
    if settings.TOLLGATE_TRUST_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR") or "unknown"
