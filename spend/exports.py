"""CSV out of the ledger: streamed row by row (a year of logs never sits in memory), money with every digit.

Every cell passes through `csv_cell`. Model names, user and team ids and tags are the caller's to choose, and a
spreadsheet opening the file would run a cell such as `=HYPERLINK(...)` as a formula (CSV injection): text that
starts like a formula is written with a leading `'`, as OWASP advises, which spreadsheets read as "this is text".
Numbers we write ourselves (money as Decimal, counts) stay numbers, negative ones too, so that they still add up.
"""

import csv
from decimal import Decimal

from django.http import StreamingHttpResponse

from pricing.calculator import format_money
from spend.selectors import LOG_FIELDS

LOG_CSV_FIELDS = [field for field in LOG_FIELDS if field not in ("cost_breakdown", "metadata")]
# What makes a spreadsheet read a cell as a formula (tab and carriage return: in some, before one of the others).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value):
        return value


def csv_cell(value):
    """A value as a CSV cell: money with its own digits, numbers as they are, text never a formula."""
    if isinstance(value, Decimal):
        return format_money(value)
    if value is None or isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_response(filename: str, header: list[str], rows) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([csv_cell(name) for name in header])
        for row in rows:
            yield writer.writerow([csv_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
