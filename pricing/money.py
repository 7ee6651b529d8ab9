"""Money in one place below every app: exact sums over querysets, and money written for people.

Exact sums: PostgreSQL sums numeric exactly, so the database does the work. SQLite has no exact decimal arithmetic
(its SUM goes through doubles), so there the rows are read and summed as Decimals in Python: the embedded default
serves small installations, where that is cheap.

For people (`usd`): the one place the admin, the overview and the exports round; the ledger and the API never do.
"""

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

from django.db import connections
from django.db.models import Case, Count, Q, QuerySet, Sum, Value, When

from pricing.calculator import format_money

ZERO = Decimal(0)
CENT = Decimal("0.01")
SIGNIFICANT = 4  # digits kept of an amount under a cent


def _exact_in_database(queryset: QuerySet) -> bool:
    return connections[queryset.db].vendor != "sqlite"


def exact_sum(queryset: QuerySet, field: str) -> Decimal:
    """The exact sum of one money column (0 for no rows)."""
    if _exact_in_database(queryset):
        return queryset.aggregate(total=Sum(field))["total"] or ZERO
    return sum(queryset.values_list(field, flat=True), ZERO)


def grouped_totals(
    queryset: QuerySet,
    group_by: Iterable[str],
    money: Iterable[str] = (),
    integers: Iterable[str] = (),
    counts: Mapping[str, Q] | None = None,
    row_count: str | None = "requests",
) -> list[dict]:
    """One dict per group: the group's fields, exact sums of ``money`` and ``integers``, the number of rows (named
    ``row_count``; None: not counted) and one count per ``counts`` entry (rows matching its Q)."""
    group_by, money, integers, counts = list(group_by), list(money), list(integers), dict(counts or {})
    if _exact_in_database(queryset):
        aggregates = {name: Sum(name) for name in money + integers}
        if row_count:
            aggregates[row_count] = Count("pk")
        aggregates.update({name: Count("pk", filter=condition) for name, condition in counts.items()})
        rows = list(queryset.order_by().values(*group_by).annotate(**aggregates))
        for row in rows:
            for name in integers:
                row[name] = int(row[name] or 0)
            for name in money:
                row[name] = row[name] or ZERO
        return rows
    flags = {
        f"_count_{name}": Case(When(condition, then=Value(1)), default=Value(0)) for name, condition in counts.items()
    }
    totals: dict[tuple, dict] = {}
    width = len(group_by)
    for values in queryset.order_by().annotate(**flags).values_list(*group_by, *money, *integers, *flags):
        group = values[:width]
        row = totals.get(group)
        if row is None:
            row = totals[group] = dict(zip(group_by, group, strict=True))
            row.update({name: ZERO for name in money})
            row.update({name: 0 for name in integers})
            row.update({name: 0 for name in counts})
            if row_count:
                row[row_count] = 0
        if row_count:
            row[row_count] += 1
        for name, value in zip(money + integers + list(counts), values[width:], strict=True):
            row[name] += value or 0
    return list(totals.values())


def usd(amount: Decimal) -> str:
    """$1,234.57; amounts under a cent keep four significant digits ($0.0001235, $0.000007325) in plain notation,
    so they never show as $0.00 nor as $7.325e-6."""
    amount = Decimal(amount)
    if amount and abs(amount) < CENT:
        digits = Decimal(1).scaleb(amount.adjusted() - SIGNIFICANT + 1)
        return f"${format_money(amount.quantize(digits, rounding=ROUND_HALF_UP))}"
    return f"${amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"
