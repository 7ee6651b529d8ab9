"""Per-process gateway state: the routing table and cooldowns, kept fresh by one background sync loop.

Every TOLLGATE_SYNC_INTERVAL seconds the loop reads the routing version and the active cost-map version (two
tiny queries, off the event loop); when either moved it rebuilds the table and swaps it in whole. A second loop
renews, at the same interval, the leases this process holds on its calls' reservations: apart from the first, so
that a slow database never lets them lapse under calls still in flight.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection, connections

from gateway.models import RoutingVersion
from gateway.proxy.registry import RoutingTable, build_routing_table
from gateway.proxy.router import Cooldowns, RoutingStats
from keys.auth import sync_key_cache
from keys.limits import renew_leases
from pricing import store
from spend.ledger import ledger

logger = logging.getLogger(__name__)


def _read_versions() -> tuple[int, str]:
    routing = RoutingVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0
    return routing, store.active_version_label()


def _load(current: RoutingTable | None) -> RoutingTable | None:
    """A new table if anything it depends on changed, else None (runs on the sync thread).

    Also applies key, user and team changes to this process's key cache: one poll for everything.
    """
    # The sync thread keeps its connection between ticks; after any failure it is dropped, and the next tick
    # opens a fresh one.
    try:
        sync_key_cache()
        routing_version, cost_map_version = _read_versions()
        if current and current.version == routing_version and current.cost_map_version == cost_map_version:
            return None
        return build_routing_table(routing_version, store.load_active_cost_map())
    except Exception:
        connection.close()
        raise


class GatewayState:
    def __init__(self):
        self.table: RoutingTable | None = None
        self.cooldowns = Cooldowns()
        self.stats = RoutingStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollgate-sync")
        self._ready: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self._leases: asyncio.Task | None = None

    async def ready(self) -> "GatewayState":
        if self.table is not None:
            return self
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._first_load())
        await asyncio.shield(self._ready)
        return self

    async def _first_load(self) -> None:
        try:
            self.table = await asyncio.get_running_loop().run_in_executor(self._executor, _load, None)
        except BaseException:
            self._ready = None  # the calls waiting get the error; the next one tries again
            raise
        self._task = asyncio.get_running_loop().create_task(self._sync_forever())
        self._leases = asyncio.get_running_loop().create_task(self._renew_leases_forever())

    async def refresh(self) -> None:
        table = await asyncio.get_running_loop().run_in_executor(self._executor, _load, self.table)
        if table is not None:
            self.table = table
            logger.info("routing table reloaded: version %s, cost map %s", table.version, table.cost_map_version)

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.TOLLGATE_SYNC_INTERVAL)
            try:
                await self.refresh()
            except Exception:
                # Keep serving from the table we have; the next tick tries again.
                logger.exception("routing table refresh failed")

    @staticmethod
    async def _renew_leases_forever() -> None:
        while True:
            await asyncio.sleep(settings.TOLLGATE_SYNC_INTERVAL)
            await renew_leases()  # a Redis that does not answer is noted by the counters, and tried again
            await ledger().sweep_journals()  # the calls of a process that died, charged within a tick or two


_states: dict[asyncio.AbstractEventLoop, GatewayState] = {}


async def gateway_state() -> GatewayState:
    loop = asyncio.get_running_loop()
    state = _states.get(loop)
    if state is None:
        state = _states[loop] = GatewayState()
    return await state.ready()


def close_states() -> None:
    """Stop every event loop's state: its sync thread's database connection, then the thread itself."""
    while _states:
        _loop, closing = _states.popitem()
        for task in (closing._task, closing._leases):
            if task is not None:
                task.cancel()
        closing._executor.submit(connections.close_all).result()  # resolved in that thread
        closing._executor.shutdown()
