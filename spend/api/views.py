"""LiteLLM's spend endpoints: /spend/logs, /global/spend/report, /spend/calculate (master key; CSV with ?format=csv)."""

from datetime import date, datetime

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import api_view, renderer_classes
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings

from pricing.calculator import compute_cost
from spend import reports, selectors
from spend.api import serializers as s
from spend.exports import LOG_CSV_FIELDS, csv_response
from spend.pricing_lookup import price_of_model


class CSVRenderer(BaseRenderer):
    """Lets content negotiation accept ?format=csv; the CSV itself is streamed by the view."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else str(data).encode()


_RENDERERS = [*api_settings.DEFAULT_RENDERER_CLASSES, CSVRenderer]
AS_OF_HEADER = "X-Tollgate-As-Of"


# Error statuses each operation declares; the schema gives them OpenAI's error body (gateway.api.schema).
INVALID = OpenApiResponse(description="Invalid input; `param` names the field.")
NO_FORMAT = OpenApiResponse(description="`format` is neither json nor csv.")
CSV = OpenApiResponse(OpenApiTypes.STR, description="With ?format=csv: the same rows as CSV.")
# DRF's own ?format=, which an empty value leaves to the Accept header.
FORMAT = OpenApiParameter("format", enum=["", "json", "csv"], description="csv: the rows as CSV; empty: JSON.")


def _wants_csv(request) -> bool:
    return getattr(request.accepted_renderer, "format", None) == "csv"


def _json_or_csv(query_input, json_output):
    """A GET endpoint that answers JSON, or CSV with ?format=csv: its method, renderers and schema."""

    def decorate(view):
        responses = {(200, "application/json"): json_output, (200, "text/csv"): CSV, 400: INVALID, 404: NO_FORMAT}
        endpoint = api_view(["GET"])(renderer_classes(_RENDERERS)(view))
        return extend_schema(parameters=[query_input, FORMAT], responses=responses)(endpoint)

    return decorate


def answer(request, report: reports.Report, name: str):
    """A report as JSON, or its rows as CSV with ?format=csv; either way with the moment it is as of."""
    if _wants_csv(request):
        response = csv_response(f"{name}.csv", report.columns, report.rows)
    else:
        response = Response(report.body)
    response[AS_OF_HEADER] = report.as_of.isoformat()
    return response


def _query(query_input, request) -> dict:
    query = query_input(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


@_json_or_csv(s.LogsIn, s.SPEND_LOGS_OUT)
def spend_logs(request):
    params = _query(s.LogsIn, request)
    summarize, limit = params.pop("summarize"), params.pop("limit")
    query = selectors.LogFilter(**params)
    # A request id names one call: its log, not a summary of it.
    if summarize and query.start_date and query.end_date and not query.request_id and not _wants_csv(request):
        return Response(selectors.daily_log_summary(query))
    logs = selectors.spend_logs(query)
    if _wants_csv(request):
        return csv_response(
            "spend_logs.csv", LOG_CSV_FIELDS, logs.values_list(*LOG_CSV_FIELDS).iterator(chunk_size=2000)
        )
    return Response([selectors.log_as_litellm(log) for log in logs.values(*selectors.LOG_FIELDS)[:limit]])


@_json_or_csv(s.ReportIn, s.SPEND_REPORT_OUT)
def global_spend_report(request):
    query = _query(s.ReportIn, request)
    start, end, group_by = (query[name] for name in ("start_date", "end_date", "group_by"))
    if group_by in reports.DAY_GROUPS:
        return answer(request, reports.day_group_report(start, end, group_by), f"spend_report_{group_by}_{start}_{end}")
    if _wants_csv(request):
        response, as_of = _report_csv(start, end, group_by)
    else:
        report, as_of = selectors.spend_report(start, end, group_by)
        response = Response(report)
    # Every call committed by this moment is counted (LiteLLM's body has no room for it).
    response[AS_OF_HEADER] = as_of.isoformat()
    return response


def _report_csv(start: date, end: date, group_by: str) -> tuple[StreamingHttpResponse, datetime]:
    column = selectors.REPORT_GROUPS[group_by]
    rows, as_of = selectors.current_totals(start, end, ["day", column, "model_group"])
    rows.sort(key=lambda row: (row["day"], row[column], row["model_group"]))
    header = ["day", group_by, "model", "spend", "requests", "failed_requests", "prompt_tokens", "completion_tokens"]
    return csv_response(
        f"spend_report_{group_by}_{start}_{end}.csv",
        header,
        (
            [row["day"].isoformat(), row[column], row["model_group"], row["cost"], row["requests"],
             row["failed_requests"], row["prompt_tokens"], row["completion_tokens"]]
            for row in rows
        ),
    ), as_of  # fmt: skip


@extend_schema(request=s.CalculateIn, responses={200: s.CalculateOut, 400: INVALID})
@api_view(["POST"])
def spend_calculate(request):
    body = s.CalculateIn(data=request.data)
    body.is_valid(raise_exception=True)
    model, usage = body.validated_data["model"], body.validated_data["parsed_usage"]
    price = price_of_model(model)
    try:
        cost = compute_cost(price.entry, usage)
    except ValueError as exc:
        raise ValidationError({"model": [f"{model} cannot be priced from usage alone: {exc}"]}) from None
    return Response(
        {
            "model": model,
            "cost": cost.total,
            "cost_breakdown": cost.as_dict(),
            "pricing_source": price.source,
            "pricing_entry": price.matched or None,
            "price_version": price.version,
        }
    )
