"""Every CSV export writes what a caller sent as text, never as a live spreadsheet formula (CSV injection)."""

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from spend.exports import csv_cell
from spend.ledger import write_batch
from spend.models import SpendLog
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, make_entry

pytestmark = pytest.mark.django_db

# What a caller chooses (model names, user and team ids, tags), each of the shapes a spreadsheet would evaluate.
FORMULAS = ["=1+1", '=HYPERLINK("http://x")', "@SUM(A1)", "+1", "-1+2", "\t=1", "\r=1"]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_cell_a_spreadsheet_would_evaluate_is_quoted_as_text(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        # Numbers written by us stay numbers, negative ones too: a refund's cost must sum in a spreadsheet.
        (Decimal("-0.5"), "-0.5"),
        (Decimal("1.3E-10"), "0.00000000013"),
        (-3, -3),
        ("gpt-4o", "gpt-4o"),
        ("a=1", "a=1"),
        ("", ""),
        (None, None),
    ],
)
def test_numbers_and_plain_text_are_written_as_they_are(value, cell):
    assert csv_cell(value) == cell


@pytest.fixture
def hostile_logs():
    write_batch(
        [
            make_entry(
                request_id=f"r{index}",
                requested_model=formula,
                model_group=formula,
                user_id=formula,
                team_id=formula,
                request_tags=[formula],
                metadata={"note": formula},
                cost=Decimal("-0.5"),
            )
            for index, formula in enumerate(FORMULAS)
        ]
    )
    rollup_spend(DAY.replace(day=DAY.day + 1))


def _rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))


def _assert_no_formula(rows: list[dict]) -> None:
    assert rows
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), row
            assert not cell.startswith("-") or cell == "-0.5", row


def test_spend_logs_csv(api, hostile_logs):
    rows = _rows(api.get("/spend/logs", {"format": "csv"}))

    _assert_no_formula(rows)
    assert sorted(row["model_group"] for row in rows) == sorted("'" + formula for formula in FORMULAS)
    assert {row["cost"] for row in rows} == {"-0.5"}


@pytest.mark.parametrize("group_by", ["team", "user", "model", "api_key"])
def test_global_spend_report_csv(api, hostile_logs, group_by):
    response = api.get(
        "/global/spend/report",
        {"start_date": "2026-03-01", "end_date": "2026-03-31", "format": "csv", "group_by": group_by},
    )
    rows = _rows(response)

    _assert_no_formula(rows)
    assert sorted(row["model"] for row in rows) == sorted("'" + formula for formula in FORMULAS)


def test_admin_export(admin_client, hostile_logs):
    response = admin_client.post(
        reverse("admin:spend_spendlog_changelist"),
        {"action": "export_csv", "_selected_action": list(SpendLog.objects.values_list("pk", flat=True))},
    )
    rows = _rows(response)

    _assert_no_formula(rows)
    assert len(rows) == len(FORMULAS)
