"""Money columns that keep every digit on every database.

Here, in the lowest app, because every app above stores money (keys' budgets, spend's ledger, gateway's custom
prices) and may import pricing, while pricing imports none of them.
"""

from decimal import ROUND_HALF_UP, Context, Decimal

from django import forms
from django.db import models

from pricing.calculator import format_money

_PLACES = 20
_DIGITS = 38
# Rounds a 21st decimal place as PostgreSQL's numeric(38, 20) does, so both databases store the same amount.
_STORAGE = Context(prec=_DIGITS, rounding=ROUND_HALF_UP)
_QUANTUM = Decimal(1).scaleb(-_PLACES)


class MoneyField(models.DecimalField):
    """An exact dollar amount, DecimalField(38, 20).

    PostgreSQL stores it as numeric(38, 20). SQLite's NUMERIC keeps only 15 significant digits (1234.00000000013
    would come back as 1234.00000000013 only by luck, and a running total loses its tail), so there the amount is
    stored as fixed-width text, zero-padded so that text order is numeric order for the non-negative amounts the
    ledger holds. SQL arithmetic on it is not exact on SQLite: sums go through ``pricing.money.exact_sum``.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", _DIGITS)
        kwargs.setdefault("decimal_places", _PLACES)
        super().__init__(*args, **kwargs)

    def get_internal_type(self):
        # Not "DecimalField": SQLite's converter for that type reads the value back through a float.
        return "MoneyField"

    def db_type(self, connection):
        if connection.vendor == "sqlite":
            return "text"
        return f"numeric({self.max_digits}, {self.decimal_places})"

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "sqlite":
            return super().get_db_prep_value(value, connection, prepared)
        if not prepared:
            value = self.get_prep_value(value)
        if value is None or hasattr(value, "as_sql"):
            return value
        return sqlite_text(value)

    def from_db_value(self, value, expression, connection):
        if value is None or isinstance(value, Decimal):
            return value
        if isinstance(value, float):
            # SQLite arithmetic on the column (never done by the ledger) yields a float; keep the stored scale.
            return Decimal(repr(value)).quantize(_QUANTUM, context=_STORAGE)
        return Decimal(value)

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": MoneyFormField, **kwargs})


class MoneyFormField(forms.DecimalField):
    """A money input showing the amount's own digits (0.00049996), not the column's 20 places
    (0.00049996000000000000), and accepting any step: a budget of 12.5 is not off a 1e-20 grid."""

    def prepare_value(self, value):
        return format_money(value) if isinstance(value, Decimal) and value.is_finite() else value

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        if "step" in attrs:
            attrs["step"] = "any"
        return attrs


def sqlite_text(value: Decimal) -> str:
    """The stored text: 18 integer digits, the point, 20 places ("000000000000000001.50000000000000000000")."""
    return f"{Decimal(value).quantize(_QUANTUM, context=_STORAGE):0{_DIGITS + 1}.{_PLACES}f}"
