"""Soft-budget alerts: one per key and budget period, to settings.TOLLGATE_ALERT_WEBHOOK_URL and the admin's flag."""

import asyncio
import logging
from decimal import Decimal

import httpx
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from keys.caller import Limits
from keys.models import VirtualKey
from pricing.calculator import format_money

logger = logging.getLogger(__name__)

_pending: set[asyncio.Future] = set()


async def soft_budget_crossed(backend, limits: Limits, spend: Decimal) -> None:
    """A call took `limits`' spend to or past its soft budget: alert, unless this period's alert went out already."""
    if limits.kind != "key" or not await backend.claim_alert(limits):
        return
    future = asyncio.get_running_loop().run_in_executor(None, send_soft_budget_alert, limits, spend)
    _pending.add(future)
    future.add_done_callback(_pending.discard)


def send_soft_budget_alert(limits: Limits, spend: Decimal) -> None:
    """Flag the key in the database and POST the alert (runs on a worker thread, never on the event loop)."""
    close_old_connections()
    try:
        VirtualKey.objects.filter(token_hash=limits.entity_id).update(soft_budget_alerted_at=timezone.now())
    finally:
        close_old_connections()
    url = settings.TOLLGATE_ALERT_WEBHOOK_URL
    logger.warning("%s crossed its soft budget %s: spend %s", limits.label, limits.soft_budget, spend)
    if not url:
        return
    payload = {
        "event": "soft_budget_crossed",
        "entity": limits.kind,
        "token": limits.entity_id,
        "label": limits.label,
        "spend": format_money(spend),
        "soft_budget": format_money(limits.soft_budget),
        "max_budget": format_money(limits.max_budget) if limits.max_budget is not None else None,
    }
    try:
        httpx.post(url, json=payload, timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("soft budget alert for %s could not be delivered: %s", limits.label, exc)
