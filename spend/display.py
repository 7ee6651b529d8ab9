"""Money for people: the one place the dashboard rounds (the ledger and the API never do)."""

from decimal import ROUND_HALF_UP, Decimal

from pricing.calculator import format_money

CENT = Decimal("0.01")
SIGNIFICANT = 4  # digits kept of an amount under a cent


def usd(amount: Decimal) -> str:
    """$1,234.57; amounts under a cent keep four significant digits ($0.0001235, $0.000007325) in plain notation,
    so they never show as $0.00 nor as $7.325e-6."""
    amount = Decimal(amount)
    if amount and abs(amount) < CENT:
        digits = Decimal(1).scaleb(amount.adjusted() - SIGNIFICANT + 1)
        return f"${format_money(amount.quantize(digits, rounding=ROUND_HALF_UP))}"
    return f"${amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"
