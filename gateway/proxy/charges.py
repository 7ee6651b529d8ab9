"""Charging a call: its spend log committed and its admission settled, in tasks of their own.

A client can leave at any await of a call. The charge must not leave with it: half done, the log would be written
but the key's reserved worst-case cost and parallel slot never given back.
"""

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal

from gateway import metrics
from gateway.proxy.registry import RoutedDeployment
from pricing.calculator import CostBreakdown, Usage, compute_cost
from spend.ledger import SpendEntry, ledger

logger = logging.getLogger(__name__)

# Tasks nobody awaits any more (their client left): kept here so the event loop cannot garbage-collect them midway.
_background: set[asyncio.Task] = set()


def price_call(deployment: RoutedDeployment, usage: Usage, seconds: float) -> CostBreakdown:
    if not deployment.price.priced:
        logger.warning("call to %s (%s) is unpriced: charged 0", deployment.model_name, deployment.litellm_model)
    return compute_cost(deployment.price.entry, usage, Decimal(str(round(seconds, 6))), billed_at=datetime.now(UTC))


async def _charge_and_settle(entry: SpendEntry, admission, cost: Decimal, tokens: int) -> None:
    metrics.count_charge(entry, getattr(admission, "caller", None))  # the master key's admission has no caller
    # The log's commit and the admission's settlement go at once: the response waits for both, and a call waits
    # half a millisecond less than it did with one after the other. The call has been paid for upstream either way,
    # so its cost stays counted against its budgets even if the ledger then fails to take it. Budgets the database
    # admits count the committed log itself: their settlement waits for it.
    if admission.settles_after_commit:
        try:
            await ledger().charge(entry)
        finally:
            await admission.settle(cost, tokens)
        return
    settled = keep_running(admission.settle(cost, tokens))
    try:
        await ledger().charge(entry)
    except Exception:
        logger.exception("call %s could not be charged", entry.request_id)
        raise
    finally:
        await settled


def keep_running(coroutine) -> asyncio.Task:
    """Run a coroutine to its end whatever happens to the request that started it."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_forget)
    return task


def _forget(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled():
        task.exception()  # already logged where it was raised: retrieved so asyncio does not log it a second time


async def charge(entry: SpendEntry, admission, cost: Decimal, tokens: int) -> None:
    """Charge the call and settle its admission; raises LedgerUnavailable if the charge cannot be kept.

    If the client leaves while this waits, the charge and the settlement still complete."""
    await asyncio.shield(keep_running(_charge_and_settle(entry, admission, cost, tokens)))


def charge_in_background(entry: SpendEntry, admission, cost: Decimal, tokens: int) -> None:
    """Charge a call whose client is gone (or going: nothing may be awaited any more)."""
    keep_running(_charge_and_settle(entry, admission, cost, tokens))
