"""Money in forms: an input shows the amount's own digits, and the browser lets any amount be typed (step="any")."""

from decimal import Decimal

import pytest
from django import forms

from keys.models import VirtualKey


class BudgetForm(forms.ModelForm):
    class Meta:
        model = VirtualKey
        fields = ["max_budget"]


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (Decimal("0.00049996000000000000"), 'value="0.00049996"'),
        (Decimal("12.50000000000000000000"), 'value="12.5"'),
        (Decimal("0E-20"), 'value="0"'),
        (Decimal("1234567.00000000000000000001"), 'value="1234567.00000000000000000001"'),
    ],
)
def test_a_money_input_shows_the_amounts_own_digits(stored, shown):
    html = str(BudgetForm(instance=VirtualKey(max_budget=stored))["max_budget"])

    assert shown in html
    assert 'step="any"' in html
