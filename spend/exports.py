"""CSV out of the ledger: streamed row by row (a year of logs never sits in memory), money with every digit."""

import csv

from django.http import StreamingHttpResponse

from pricing.calculator import format_money
from spend.selectors import LOG_FIELDS

LOG_CSV_FIELDS = [field for field in LOG_FIELDS if field not in ("cost_breakdown", "metadata")]


class _Echo:
    def write(self, value):
        return value


def csv_response(filename: str, header: list[str], rows) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([format_money(value) if hasattr(value, "is_finite") else value for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
