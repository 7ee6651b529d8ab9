"""``manage.py cost``: what a call costs, priced exactly as the gateway prices it.

One call from options (``--explain`` shows the resolution chain and the breakdown), or many as JSON lines
(``--jsonl FILE``, ``-`` for stdin): each ``{"model" | "deployment": ..., "usage": {...}, "seconds": ...}`` line
(and the call's ``"request"`` body, whose ``web_search_options`` or web search tool asks for a search) gets one
line back, in order, ``{"cost": ..., "source": ..., "matched": ..., "breakdown": {...}}`` or
``{"error": ...}``. Costs are JSON numbers written from the Decimal's own digits.
"""

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from gateway.models import Deployment
from pricing import store
from pricing.active import ActiveCostMap
from pricing.calculator import CostBreakdown, Usage, compute_cost, format_money
from pricing.charges import SEARCH_CONTEXT_SIZES, search_context_key
from pricing.resolve import (
    SOURCE_BASE_MODEL,
    SOURCE_COST_MAP,
    SOURCE_CUSTOM,
    SOURCE_UNPRICED,
    ResolvedPrice,
    Step,
    resolve_deployment_price,
    resolve_price,
)

_CHAIN = (SOURCE_CUSTOM, SOURCE_BASE_MODEL, SOURCE_COST_MAP, SOURCE_UNPRICED)
_OUTPUT_CHUNK = 1000


class PricingError(Exception):
    """A line or an option that cannot be priced; the message says why."""


@dataclass(frozen=True)
class Priced:
    price: ResolvedPrice
    subject: str  # what was priced, for --explain
    trace: tuple[Step, ...]


class Pricer:
    """Resolves each model or deployment once, as the gateway's routing table does, then prices usages."""

    def __init__(self, cost_map: ActiveCostMap, billed_at: datetime | None):
        self.cost_map = cost_map
        self.billed_at = billed_at
        self._resolved: dict[tuple[str, str], Priced | PricingError] = {}
        # One query for every deployment, as the routing table reads them: a line never waits on the database.
        self._deployments: dict[str, Deployment] = {}
        self._groups: dict[str, list[Deployment]] = {}
        for deployment in Deployment.objects.order_by("model_name", "id"):
            self._deployments[deployment.model_id] = deployment
            if deployment.enabled:
                self._groups.setdefault(deployment.model_name, []).append(deployment)

    def resolve(self, *, model: str = "", deployment: str = "") -> Priced:
        key = ("deployment", deployment) if deployment else ("model", model)
        found = self._resolved.get(key)
        if found is None:
            try:
                found = self._resolve(model=model, deployment=deployment)
            except PricingError as error:
                found = error
            self._resolved[key] = found
        if isinstance(found, PricingError):
            raise found
        return found

    def cost(self, priced: Priced, usage: Usage, seconds: Decimal | None) -> CostBreakdown:
        try:
            return compute_cost(priced.price.entry, usage, seconds, billed_at=self.billed_at)
        except (TypeError, ValueError) as error:
            raise PricingError(f"{priced.subject}: {error}") from error

    def _resolve(self, *, model: str, deployment: str) -> Priced:
        if deployment:
            found = self._deployments.get(deployment)
            if found is None:
                raise PricingError(f"no deployment with id {deployment!r}")
            return self._deployment_price(found, f"deployment {found.model_id} ({found.litellm_model})")
        if not model:
            raise PricingError('give "model" or "deployment"')
        group = self._groups.get(model)
        if group:
            subject = f"model group {model!r}: deployment {group[0].model_id} ({group[0].litellm_model})"
            if len(group) > 1:
                subject += f", the first of {len(group)} (--deployment ID prices another)"
            return self._deployment_price(group[0], subject)
        trace: list[Step] = []
        price = resolve_price(
            custom={},
            custom_version="",
            base_model="",
            provider="",
            model=model,
            cost_map=self.cost_map.entries,
            cost_map_version=self.cost_map.version,
            trace=trace,
        )
        return Priced(price, f"{model!r} (no model group of that name: a cost-map model name)", tuple(trace))

    def _deployment_price(self, deployment: Deployment, subject: str) -> Priced:
        trace: list[Step] = []
        price = resolve_deployment_price(
            deployment,
            self.cost_map.entries,
            self.cost_map.version,
            custom_version=f"deployment:{deployment.model_id}@{deployment.updated_at.isoformat()}",
            trace=trace,
        )
        return Priced(price, subject, tuple(trace))


# The Usage fields the command takes an option for, each under its own name (--prompt-tokens: prompt_tokens).
USAGE_OPTIONS = (
    "prompt_tokens", "completion_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens", "search_queries",
    "search_context_size", "citation_tokens",
)  # fmt: skip


class Command(BaseCommand):
    help = "Price a call (or JSON lines of calls) exactly as the gateway would, optionally explaining the price."

    def add_arguments(self, parser):
        parser.add_argument("--model", default="", help="A model group, or a cost-map model name.")
        parser.add_argument("--deployment", default="", help="A deployment's model_info.id (instead of --model).")
        parser.add_argument("--prompt-tokens", type=int, default=0, help="Includes cached and cache-write tokens.")
        parser.add_argument("--completion-tokens", type=int, default=0, help="Includes reasoning tokens.")
        parser.add_argument("--cached-tokens", type=int, default=0)
        parser.add_argument("--cache-creation-tokens", type=int, default=0)
        parser.add_argument("--reasoning-tokens", type=int, default=0)
        parser.add_argument("--search-queries", type=int, default=0, help="Web searches the call ran.")
        parser.add_argument(
            "--search-context-size", choices=SEARCH_CONTEXT_SIZES, default="", help="Default: the provider's."
        )
        parser.add_argument("--citation-tokens", type=int, default=0, help="Perplexity's citation tokens.")
        parser.add_argument("--seconds", type=_decimal, default=None, help="Duration, for per-second prices.")
        parser.add_argument("--billed-at", type=_moment, default=None, help="ISO time billed at (default: now).")
        parser.add_argument("--explain", action="store_true", help="Show the resolution chain and the breakdown.")
        parser.add_argument("--jsonl", metavar="FILE", help="Price one JSON object per line of FILE (- for stdin).")

    def handle(self, *args, **options):
        pricer = Pricer(store.load_active_cost_map(), options["billed_at"] or datetime.now(UTC))
        if options["jsonl"]:
            self._price_lines(pricer, options["jsonl"])
            return
        if not options["model"] and not options["deployment"]:
            raise CommandError("give --model NAME or --deployment ID (or --jsonl FILE)")
        try:
            usage = Usage(**{name: options[name] for name in USAGE_OPTIONS})
            priced = pricer.resolve(model=options["model"], deployment=options["deployment"])
            breakdown = pricer.cost(priced, usage, options["seconds"])
        except (PricingError, ValueError) as error:
            raise CommandError(str(error)) from error
        if options["explain"]:
            self._explain(priced, pricer.cost_map, breakdown, usage)
        else:
            self.stdout.write(format_money(breakdown.total))
        if not priced.price.priced:
            self.stderr.write(f"warning: {priced.subject} is unpriced: charged 0")

    def _price_lines(self, pricer: Pricer, path: str) -> None:
        stream = sys.stdin if path == "-" else _open(path)
        try:
            out: list[str] = []
            for line in stream:
                out.append(_price_line(pricer, line))
                if len(out) >= _OUTPUT_CHUNK:
                    self.stdout.write("\n".join(out))
                    out.clear()
            if out:
                self.stdout.write("\n".join(out))
        finally:
            if stream is not sys.stdin:
                stream.close()

    def _explain(self, priced: Priced, cost_map: ActiveCostMap, breakdown: CostBreakdown, usage: Usage) -> None:
        price = priced.price
        write = self.stdout.write
        write(f"pricing {priced.subject}")
        write(f"active cost map: {cost_map.version}")
        write("resolution (first match wins):")
        walked = {step.source: step for step in priced.trace}
        for number, source in enumerate(_CHAIN, start=1):
            step = walked.get(source)
            if step is None:
                write(f"  {number}. {source:<10}  not reached")
                continue
            tried = ", ".join(f"{key} {'found' if found else 'absent'}" for key, found in step.tried)
            verdict = "MATCH" if step.matched else "no"
            write(f"  {number}. {source:<10}  {verdict:<5}  {step.detail}" + (f": {tried}" if tried else ""))
        matched = f" (entry {price.matched})" if price.matched else ""
        write(f"=> source {price.source}{matched}, price version {price.version}")
        prices = {key: value for key, value in price.entry.items() if isinstance(value, Decimal)}
        if prices:
            write("prices (USD): " + ", ".join(f"{key}={format_money(value)}" for key, value in sorted(prices.items())))
        write("breakdown (USD):")
        for name, value in breakdown.as_dict().items():
            if name != "total":
                write(f"  {name:<15} {format_money(value)}" + _charge_detail(name, price.entry, usage))
        write(f"total: {format_money(breakdown.total)}")


def _charge_detail(name: str, entry: Mapping, usage: Usage) -> str:
    """What a provider-specific part was charged for (pricing.charges), or ""."""
    if name == "search" and usage.search_queries:
        key = search_context_key(usage.search_context_size, entry.get("litellm_provider"))
        rate = (entry.get("search_context_cost_per_query") or {}).get(key)
        priced_at = f"{key} = {format_money(rate)}" if isinstance(rate, Decimal) else f"no {key} price"
        return f"  ({usage.search_queries} web search(es), {priced_at} each)"
    if name == "citation" and usage.citation_tokens:
        rate = entry.get("citation_cost_per_token")
        priced_at = f"citation_cost_per_token = {format_money(rate)}" if isinstance(rate, Decimal) else "no price"
        return f"  ({usage.citation_tokens} citation tokens, {priced_at})"
    return ""


def _price_line(pricer: Pricer, line: str) -> str:
    try:
        if not line.strip():
            raise PricingError("an empty line")
        request = json.loads(line, parse_float=Decimal)
        if not isinstance(request, dict):
            raise PricingError("a line must be a JSON object")
        priced = pricer.resolve(model=_text(request, "model"), deployment=_text(request, "deployment"))
        body = request.get("request")
        if body is not None and not isinstance(body, dict):
            raise PricingError('"request" must be an object')
        usage = Usage.from_openai(request.get("usage"), body)
        seconds = request.get("seconds")
        if seconds is not None:
            seconds = _decimal(seconds)
        breakdown = pricer.cost(priced, usage, seconds)
    except (PricingError, ValueError, TypeError) as error:
        return json.dumps({"error": str(error)})
    parts = ", ".join(f'"{name}": {format_money(value)}' for name, value in breakdown.as_dict().items())
    return (
        f'{{"cost": {format_money(breakdown.total)}, "source": "{priced.price.source}", '
        f'"matched": {json.dumps(priced.price.matched)}, "breakdown": {{{parts}}}}}'
    )


def _text(request: dict, key: str) -> str:
    value = request.get(key) or ""
    if not isinstance(value, str):
        raise PricingError(f'"{key}" must be a string')
    return value


def _decimal(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError(f"seconds must be a number, not {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"seconds must be a number, not {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"seconds must be a non-negative number, not {value!r}")
    return number


def _moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("give a timezone (e.g. 2026-03-10T12:00:00+00:00)")
    return moment


def _open(path: str):
    try:
        return open(path, encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from error
