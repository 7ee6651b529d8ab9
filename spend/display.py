"""Money for people: the one place the dashboard rounds (the ledger and the API never do)."""

from decimal import ROUND_HALF_UP, Decimal


def usd(amount: Decimal) -> str:
    """$1,234.57; amounts under a cent keep four significant digits ($0.0001235) so they never show as $0.00."""
    amount = Decimal(amount)
    if amount and abs(amount) < Decimal("0.01"):
        return f"${amount:.4g}" if abs(amount) >= Decimal("1e-4") else f"${amount:.3e}"
    return f"${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"
