"""``manage.py reprice --since DATE [--apply]``: what past calls would cost at today's prices.

Each call since DATE is priced again with its deployment's price as resolved now (custom → base_model → cost map),
and the difference is shown by key and by team. Only with ``--apply`` is anything written, and never an edit: each
call whose charge changes gets an adjustment row (call_type ``adjustment``, cost = the difference, which may be
negative), written through the ledger so that the key's, user's and team's spend move by the same amount in the
same transaction. Running it again charges nothing twice: a call's earlier reprice adjustments count as part of
what it was charged, and an adjustment's request_id is derived from what it corrects.
"""

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal

from django.apps import apps
from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from pricing import store
from pricing.calculator import LOGGED_COUNTS, Usage, compute_cost, format_money
from pricing.deployments import deployments
from pricing.resolve import ResolvedPrice, resolve_deployment_price
from spend.adjustments import ADJUSTMENT
from spend.ledger import SpendEntry, write_batch
from spend.log_rows import price_digest
from spend.models import SpendLog

REASON = "reprice"
_ZERO = Decimal(0)
_BATCH = 500
# What an adjustment copies from the log it corrects: who called, for what, through which deployment.
_COPIED = (
    "requested_model", "model_group", "deployment_id", "provider", "provider_model", "api_base", "key_hash", "user_id",
    "team_id",
)  # fmt: skip
_LOG_FIELDS = (
    "request_id", "call_type", *_COPIED, *LOGGED_COUNTS, "cost", "charged_price", "pricing_source", "end_time", "duration_ms",
)  # fmt: skip


@dataclass
class Totals:
    calls: int = 0
    old: Decimal = _ZERO
    new: Decimal = _ZERO

    @property
    def delta(self) -> Decimal:
        return self.new - self.old

    def add(self, old: Decimal, new: Decimal) -> None:
        self.calls += 1
        self.old += old
        self.new += new


@dataclass
class Repricing:
    total: Totals = field(default_factory=Totals)
    by_key: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    by_team: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    changed: int = 0  # calls whose charge changes: one adjustment each
    pending: list[SpendEntry] | None = None  # adjustments not yet written; None: a dry run keeps none


class Command(BaseCommand):
    help = "Show what calls since DATE would cost at today's prices, by key and team; --apply writes adjustments."

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, type=_since, help="YYYY-MM-DD (or an ISO date and time).")
        parser.add_argument("--apply", action="store_true", help="Write adjustment rows and charge the differences.")

    def handle(self, *args, **options):
        since, apply = options["since"], options["apply"]
        cost_map = store.load_active_cost_map()
        prices = _todays_prices(cost_map)
        repricing = Repricing(pending=[] if apply else None)
        adjusted = _reprice_adjustments(since)
        written = 0
        logs = (
            SpendLog.objects.filter(start_time__gte=since)
            .exclude(call_type=ADJUSTMENT)
            .exclude(status=SpendLog.Status.FAILURE)
            .only(*_LOG_FIELDS)
            .order_by("id")
        )
        for log in logs.iterator(chunk_size=2000):
            _reprice(log, prices, adjusted.get(log.request_id, _ZERO), repricing)
            if apply and len(repricing.pending) >= _BATCH:
                written += _write(repricing.pending)
        if apply:
            written += _write(repricing.pending)
        self._report(since, cost_map.version, repricing, written)

    def _report(self, since: datetime, version: str, repricing: Repricing, written: int) -> None:
        write = self.stdout.write
        total = repricing.total
        write(f"Calls since {since.isoformat()} at today's prices (cost map {version}): {total.calls} repriced")
        for reason, count in sorted(repricing.skipped.items()):
            write(f"  skipped {count}: {reason}")
        key_names = _names("keys.VirtualKey", "token_hash", ("key_alias", "key_hint"), repricing.by_key)
        team_names = _names("keys.Team", "team_id", ("team_alias",), repricing.by_team)
        for title, rows, names in (("key", repricing.by_key, key_names), ("team", repricing.by_team, team_names)):
            write("")
            write(f"{'by ' + title:<40} {'calls':>7} {'old':>22} {'new':>22} {'delta':>22}")
            for entity_id, totals in sorted(rows.items(), key=lambda item: (-abs(item[1].delta), item[0])):
                write(_row(names.get(entity_id) or entity_id or f"(no {title})", totals))
        write("")
        write(_row("total", total))
        if repricing.pending is not None:
            write(f"Wrote {written} adjustment rows; key, user and team spend moved by {format_money(total.delta)}.")
        else:
            write(f"{repricing.changed} calls would get an adjustment. Nothing was written: --apply writes them.")


def _todays_prices(cost_map) -> dict[str, ResolvedPrice]:
    return {
        deployment.model_id: resolve_deployment_price(deployment, cost_map.entries, cost_map.version)
        for deployment in deployments().every_deployment()
    }


def _reprice_adjustments(since: datetime) -> dict[str, Decimal]:
    """What earlier reprices already added to each call (their rows are all newer than the calls they adjust)."""
    adjusted: dict[str, Decimal] = defaultdict(Decimal)
    rows = SpendLog.objects.filter(call_type=ADJUSTMENT, start_time__gte=since).values_list("metadata", "cost")
    for metadata, cost in rows.iterator(chunk_size=2000):
        if isinstance(metadata, dict) and metadata.get("reason") == REASON and metadata.get("adjusts"):
            adjusted[metadata["adjusts"]] += cost
    return adjusted


def _reprice(log: SpendLog, prices: dict[str, ResolvedPrice], adjusted: Decimal, repricing: Repricing) -> None:
    price = prices.get(log.deployment_id)
    if price is None:
        repricing.skipped["no deployment (deleted, or the call never reached one)"] += 1
        return
    old = log.cost + adjusted
    # The same entry has the same digest: the log's own entry need not be read.
    if price_digest(price.snapshot()) == log.charged_price_id and price.source == log.pricing_source:
        new = old  # the same price: pricing it again could only differ by the duration's rounding
    else:
        try:
            seconds = Decimal(log.duration_ms) / 1000
            new = compute_cost(price.entry, Usage.as_logged(log), seconds, billed_at=log.end_time).total
        except (TypeError, ValueError):
            repricing.skipped["today's price cannot price it"] += 1
            return
    repricing.total.add(old, new)
    repricing.by_key[log.key_hash].add(old, new)
    repricing.by_team[log.team_id].add(old, new)
    if new != old:
        repricing.changed += 1
        if repricing.pending is not None:
            repricing.pending.append(_adjustment(log, old, new, price))


def _adjustment(log: SpendLog, old: Decimal, new: Decimal, price: ResolvedPrice) -> SpendEntry:
    now = timezone.now()
    correction = f"{log.request_id}|{format_money(old)}|{format_money(new)}"
    return SpendEntry(
        # The same correction always gets the same id: a second run (or two at once) cannot charge it twice.
        request_id=f"reprice-{hashlib.sha256(correction.encode()).hexdigest()[:40]}",
        call_type=ADJUSTMENT,
        **{name: getattr(log, name) for name in _COPIED},
        start_time=now,
        end_time=now,
        cost=new - old,
        prices=price.snapshot(),
        pricing_source=price.source,
        price_version=price.version,
        metadata={"adjusts": log.request_id, "reason": REASON, "old": format_money(old), "new": format_money(new)},
    )


def _write(entries: list[SpendEntry]) -> int:
    count = len(entries)
    if entries:
        write_batch(entries)
        entries.clear()
    return count


def _names(model_label: str, id_field: str, name_fields: tuple[str, ...], rows: dict) -> dict[str, str]:
    ids = [entity_id for entity_id in rows if entity_id]
    found = apps.get_model(model_label).objects.filter(**{f"{id_field}__in": ids}).values_list(id_field, *name_fields)
    return {entity_id: next((name for name in names if name), entity_id) for entity_id, *names in found}


def _row(name: str, totals: Totals) -> str:
    money = [format_money(value) for value in (totals.old, totals.new, totals.delta)]
    return f"{name[:40]:<40} {totals.calls:>7} {money[0]:>22} {money[1]:>22} {money[2]:>22}"


def _since(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(f"not a date: {value!r}")
        moment = datetime.combine(day, time.min)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment
