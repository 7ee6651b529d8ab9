"""No admin page shows money with more digits than it needs: every registered model holds a row whose every money
column is 0.00049996 or 1234.5 (and a spend log's breakdown and prices too), and every list, change and add page is
read for twenty-place decimals (0.00049996000000000000), exponents (0E-20) and the raw amounts without a $."""

import re
from decimal import Decimal

import pytest

from keys.models import VirtualKey
from pricing.fields import MoneyField
from spend.log_rows import price_digest
from spend.models import ChargedPrice, SpendLog
from tests import test_admin_pages as pages

# The admin pages test's rows, one in every registered model, made as the product makes them.
staff_client, deployment, every_model = pages.staff_client, pages.deployment, pages.every_model
REGISTERED, MODEL_IDS, _url = pages.REGISTERED, pages.MODEL_IDS, pages._url

pytestmark = pytest.mark.django_db

SMALL, LARGE = Decimal("0.00049996"), Decimal("1234.5")
# A decimal with four or more trailing zeros, an exponent as Decimal writes it (0E-20, 1.5E+3).
OVERLONG = re.compile(r"\d\.\d*0{4,}(?![\d])|\dE[-+]\d")
# The amounts as bare numbers outside a title (where the exact value is kept on purpose).
BARE = re.compile(r"(?<![\d.$,])(?:0\.00049996|1234\.5)(?![\d])")


def _money_fields(model) -> list[str]:
    return [field.name for field in model._meta.concrete_fields if isinstance(field, MoneyField)]


@pytest.fixture
def money_everywhere(every_model) -> dict:
    """Every money column of every row set to a small or a large amount (alternating, so both are seen)."""
    for model, _ in REGISTERED:
        names = _money_fields(model)
        if names:
            model.objects.update(**{name: SMALL if index % 2 else LARGE for index, name in enumerate(names)})
    prices = {"input_cost_per_token": "2.5E-7", "output_cost_per_token": "0.000001"}
    charged = ChargedPrice.objects.create(digest=price_digest(prices), entry=prices)
    SpendLog.objects.update(cost=SMALL, cost_breakdown={"input": str(SMALL), "output": "0E-20"}, charged_price=charged)
    return {model: model.objects.order_by("pk").first() for model, _ in REGISTERED}


def _problems(html: str) -> list[str]:
    # Titles and input values keep the exact digits by design; what a person reads must not be overlong.
    text = re.sub(r'(title|value)="[^"]*"', "", html)
    return [match.group(0) for match in OVERLONG.finditer(text)] + [f"bare {m.group(0)}" for m in BARE.finditer(text)]


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=MODEL_IDS)
def test_money_reads_as_money_on_every_page(staff_client, money_everywhere, model, model_admin):
    row = money_everywhere[model]
    pages = {"list": _url(model, "changelist"), "change": _url(model, "change", row.pk), "add": _url(model, "add")}

    found = {}
    for name, url in pages.items():
        response = staff_client.get(url)
        assert response.status_code in (200, 403), (name, response.status_code)
        if response.status_code == 200:
            found[name] = _problems(response.content.decode())

    assert found == {name: [] for name in found}


def test_the_exact_amount_is_on_hover(staff_client, money_everywhere):
    key = money_everywhere[VirtualKey]

    page = staff_client.get(_url(VirtualKey, "change", key.pk)).content.decode()

    assert '<span class="money" title="1234.5">$1,234.50</span>' in page  # its spend, read-only


def test_a_cost_map_entry_lists_its_prices_per_1m_tokens(staff_client):
    from pricing.models import CostMapEntry

    entry = CostMapEntry.objects.get(model_name="gpt-4o", version__status="active")

    page = staff_client.get(_url(CostMapEntry, "change", entry.pk)).content.decode()

    assert (
        '<tr><th>input_cost_per_token</th><td><span class="money" title="0.0000025 per token">$2.50</span>'
        " / 1M tokens</td></tr>"
    ) in page
