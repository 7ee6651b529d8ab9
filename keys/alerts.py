"""Budget alerts: a holder's soft budget crossed, or its max_budget reached, told once per holder and budget period.

Every kind of budget holder the limits check (keys, users, teams, customers, and any kind added to them) alerts the
same way. A settled call whose spend is at or past the holder's soft_budget sends `soft_budget_crossed`; at or past
its max_budget, or refused by it, `budget_reached` (a budget refuses the call that could take it past its max
before the spend gets there: that refusal is when a budget is reached, in practice).

Each alert is claimed before it is sent, so that one process sends it: in Redis (`SET NX`, shared by every process
and kept across restarts) while the counters live there, else by a file made with O_EXCL in the spool directory
(keys.limits_local: every process on the machine and its restarts; without Redis one machine is all there is).
A budget's next period is a new claim, so it alerts again.

Delivery runs on a worker thread, never on the event loop: mailed with Django's email backend to
TOLLGATE_ALERT_EMAILS, and POSTed to TOLLGATE_ALERT_WEBHOOK_URL as JSON whose `text` a Slack (or Mattermost, Teams
workflow, Discord /slack) incoming webhook shows as it is. A key's soft-budget alert also flags it in the admin.
An alert names its holder as refusals do (a key by its alias or its sk-...abcd hint) and never carries a secret or
a key's hash; a delivery that fails is logged without its address, which for a Slack webhook is itself a secret.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import close_old_connections
from django.utils import timezone

from keys.caller import Limits
from keys.models import VirtualKey
from pricing.calculator import format_money

logger = logging.getLogger(__name__)

SOFT_BUDGET_CROSSED = "soft_budget_crossed"
BUDGET_REACHED = "budget_reached"

_pending: set[asyncio.Future] = set()


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as it is told: what happened to which holder, with the money as exact decimal strings."""

    event: str
    limits: Limits
    spend: Decimal

    @property
    def period_ends(self) -> datetime | None:
        return datetime.fromtimestamp(self.limits.period / 1000, UTC) if self.limits.period else None

    @property
    def subject(self) -> str:
        what = "crossed its soft budget" if self.event == SOFT_BUDGET_CROSSED else "reached its budget"
        return f"Tollgate: {self.limits.label} {what}"

    @property
    def text(self) -> str:
        limits = self.limits
        if self.event == SOFT_BUDGET_CROSSED:
            told = f"has spent ${format_money(self.spend)}, past its soft budget of ${format_money(limits.soft_budget)}"
            if limits.max_budget is not None:
                told += f" (max_budget ${format_money(limits.max_budget)})"
        else:
            told = (
                f"has spent ${format_money(self.spend)} of its max_budget ${format_money(limits.max_budget)}: "
                "calls it cannot afford are refused"
            )
        ends = self.period_ends
        period = f" until the budget resets at {ends:%Y-%m-%d %H:%M} UTC" if ends else ""
        return f"Tollgate: {limits.label} {told}{period}."

    def payload(self) -> dict:
        limits = self.limits
        ends = self.period_ends
        return {
            "text": self.text,  # what a Slack-compatible webhook shows
            "event": self.event,
            "holder_type": limits.kind,
            "holder": limits.label,
            "spend": format_money(self.spend),
            "soft_budget": format_money(limits.soft_budget) if limits.soft_budget is not None else None,
            "max_budget": format_money(limits.max_budget) if limits.max_budget is not None else None,
            "budget_period_ends": ends.isoformat() if ends else None,
        }


async def spend_settled(backend, limits: Limits, spend: Decimal) -> None:
    """A call took `limits`' spend to `spend`: alert for each of its budgets it is at or past."""
    if limits.max_budget is not None and spend >= limits.max_budget:
        await _alert(backend, Alert(BUDGET_REACHED, limits, spend))
    if limits.soft_budget is not None and spend >= limits.soft_budget:
        await _alert(backend, Alert(SOFT_BUDGET_CROSSED, limits, spend))


async def budget_refused(backend, limits: Limits, spend: Decimal) -> None:
    """`limits`' max_budget refused a call."""
    await _alert(backend, Alert(BUDGET_REACHED, limits, spend))


async def _alert(backend, alert: Alert) -> None:
    try:
        if not await backend.claim_alert(alert.limits, alert.event):
            return
    except OSError as exc:  # the claim's folder cannot be written: the call is charged all the same
        logger.warning("budget alert for %s not sent: its claim failed (%s)", alert.limits.label, exc)
        return
    future = asyncio.get_running_loop().run_in_executor(None, send_alert, alert)
    _pending.add(future)
    future.add_done_callback(_pending.discard)


def send_alert(alert: Alert) -> None:
    """Flag a key's soft-budget alert in the database, mail the alert and POST it (a worker thread)."""
    limits = alert.limits
    logger.warning("%s", alert.text)
    if alert.event == SOFT_BUDGET_CROSSED and limits.kind == "key":
        close_old_connections()
        try:
            VirtualKey.objects.filter(token_hash=limits.entity_id).update(soft_budget_alerted_at=timezone.now())
        finally:
            close_old_connections()
    if settings.TOLLGATE_ALERT_EMAILS:
        try:
            send_mail(alert.subject, alert.text, None, settings.TOLLGATE_ALERT_EMAILS)
        except Exception as exc:  # a mail server down must not lose the webhook, nor fail the call's settlement
            logger.warning("budget alert for %s could not be mailed: %s", limits.label, type(exc).__name__)
    url = settings.TOLLGATE_ALERT_WEBHOOK_URL
    if url:
        try:
            httpx.post(url, json=alert.payload(), timeout=5).raise_for_status()
        except httpx.HTTPStatusError as exc:
            logger.warning("budget alert for %s: the webhook answered %s", limits.label, exc.response.status_code)
        except httpx.HTTPError as exc:
            logger.warning("budget alert for %s could not be delivered: %s", limits.label, type(exc).__name__)
