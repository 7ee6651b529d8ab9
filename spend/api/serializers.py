"""Input and output serializers of the spend API, in LiteLLM's shapes.

Inputs are query parameters, except /spend/calculate's JSON body. Outputs describe what the selectors render
(their Decimals become JSON numbers with their own digits) for the OpenAPI schema.
"""

from collections.abc import Mapping
from datetime import date, timedelta

from django.core.validators import MaxValueValidator, MinValueValidator
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from pricing.calculator import Usage
from spend import reports, selectors

LOG_LIMIT = 1000
# A day's bounds (spend.periods.day_bounds) are datetimes from its local midnight to the next one, which exist, in
# UTC too, for every day but the first and last a date can name (9999-12-31 has no next midnight).
FIRST_DAY, LAST_DAY = date.min + timedelta(days=1), date.max - timedelta(days=1)


def _day(**kwargs) -> serializers.DateField:
    return serializers.DateField(validators=[MinValueValidator(FIRST_DAY), MaxValueValidator(LAST_DAY)], **kwargs)


class LogsIn(serializers.Serializer):
    api_key = serializers.CharField(required=False, allow_blank=True, default="", help_text="A raw key or its hash.")
    user_id = serializers.CharField(required=False, allow_blank=True, default="")
    team_id = serializers.CharField(required=False, allow_blank=True, default="")
    end_user = serializers.CharField(required=False, allow_blank=True, default="", help_text="A customer's id.")
    request_id = serializers.CharField(required=False, allow_blank=True, default="")
    start_date = _day(required=False, default=None)
    end_date = _day(required=False, default=None)
    summarize = serializers.BooleanField(
        required=False, default=True, help_text="With start_date and end_date: totals per day instead of the logs."
    )
    limit = serializers.IntegerField(required=False, default=LOG_LIMIT, min_value=1, max_value=100_000)


class ReportIn(serializers.Serializer):
    start_date = _day()
    end_date = _day(help_text="Not before start_date.")
    group_by = serializers.ChoiceField(choices=[*selectors.REPORT_GROUPS, *reports.DAY_GROUPS], default="team")

    def validate(self, attrs):
        if attrs["end_date"] < attrs["start_date"]:
            raise ValidationError({"end_date": ["must not be before start_date"]})
        return attrs


def _count(**kwargs):
    return serializers.IntegerField(min_value=0, allow_null=True, required=False, **kwargs)


class PromptTokensDetails(serializers.Serializer):
    cached_tokens = _count()
    audio_tokens = _count()
    cache_write_tokens = _count()
    cache_creation_tokens = _count()


class CompletionTokensDetails(serializers.Serializer):
    reasoning_tokens = _count()
    audio_tokens = _count()


class UsageIn(serializers.Serializer):
    """OpenAI's usage (chat, embeddings; input_tokens for the Responses API), with LiteLLM's cache mirrors. Missing
    or null counts are 0; Usage.from_openai reads it."""

    prompt_tokens = _count()
    completion_tokens = _count()
    input_tokens = _count()
    output_tokens = _count()
    cache_read_input_tokens = _count()
    cache_creation_input_tokens = _count()
    prompt_cache_hit_tokens = _count()
    prompt_tokens_details = PromptTokensDetails(allow_null=True, required=False)
    completion_tokens_details = CompletionTokensDetails(allow_null=True, required=False)


def _bad_count(usage: Mapping, shape: serializers.Serializer) -> str | None:
    """The first count of `usage` that is not a non-negative integer (null is 0), named by its path."""
    for name, field in shape.fields.items():
        value = usage.get(name)
        if value is None:
            continue
        if isinstance(field, serializers.Serializer):
            if not isinstance(value, Mapping):
                return f"{name} must be an object"
            if problem := _bad_count(value, field):
                return f"{name}.{problem}"
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name} must be a non-negative integer, not {value!r}"
    return None


@extend_schema_field(UsageIn)
class UsageField(serializers.DictField):
    """A usage object, taken as sent for Usage.from_openai to read. Every count in it must be a non-negative integer,
    also one that another shadows (cache_write_tokens beside cache_creation_input_tokens)."""

    def to_internal_value(self, data):
        usage = super().to_internal_value(data)
        if problem := _bad_count(usage, UsageIn()):
            raise ValidationError(problem)
        return usage


class CalculateIn(serializers.Serializer):
    """The model and a usage (or a completion_response that carries one)."""

    model = serializers.CharField()
    usage = UsageField(required=False)
    messages = serializers.ListField(required=False)
    completion_response = serializers.DictField(
        required=False, help_text="A chat completion response: its usage is read when there is no usage."
    )

    def to_internal_value(self, data):
        # DRF would read a JSON number as a model name; the body must say what it means.
        if isinstance(data, Mapping) and not isinstance(data.get("model", ""), str):
            raise ValidationError({"model": ["Expected a JSON string."]})
        return super().to_internal_value(data)

    def validate(self, attrs):
        usage = attrs.get("usage") or (attrs.get("completion_response") or {}).get("usage")
        if not isinstance(usage, dict):
            raise ValidationError({"usage": ["send usage, or a completion_response that carries one"]})
        try:
            attrs["parsed_usage"] = Usage.from_openai(usage)
        except ValueError as exc:
            raise ValidationError({"usage": [str(exc)]}) from None
        return attrs


def _money(**kwargs):
    return serializers.DecimalField(max_digits=38, decimal_places=20, coerce_to_string=False, **kwargs)


class CalculateOut(serializers.Serializer):
    model = serializers.CharField()
    cost = _money()
    cost_breakdown = serializers.DictField(child=_money())
    pricing_source = serializers.CharField()
    pricing_entry = serializers.CharField(allow_null=True, help_text="The cost-map entry used.")
    price_version = serializers.CharField()


class LogOut(serializers.Serializer):
    request_id = serializers.CharField()
    call_type = serializers.CharField()
    api_key = serializers.CharField(help_text="The key's hash.")
    spend = _money()
    total_tokens = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    cache_creation_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    startTime = serializers.DateTimeField()
    endTime = serializers.DateTimeField()
    model = serializers.CharField()
    model_group = serializers.CharField()
    model_id = serializers.CharField()
    custom_llm_provider = serializers.CharField()
    api_base = serializers.CharField()
    user = serializers.CharField()
    team_id = serializers.CharField()
    end_user = serializers.CharField(help_text="The customer the call was for: its `user` field or header.")
    status = serializers.CharField()
    error_class = serializers.CharField()
    attempts = serializers.IntegerField()
    pricing_source = serializers.CharField()
    price_version = serializers.CharField()
    cost_breakdown = serializers.DictField(help_text="Exact decimal strings per part.")
    metadata = serializers.DictField()
    request_tags = serializers.ListField()


def _amounts():
    return serializers.DictField(child=_money())


class DaySummaryOut(serializers.Serializer):
    startTime = serializers.DateField()
    spend = _money()
    requests = serializers.IntegerField()
    models = _amounts()
    users = _amounts()
    api_keys = _amounts()


SPEND_LOGS_OUT = PolymorphicProxySerializer(
    component_name="SpendLogsItem",
    serializers=[LogOut, DaySummaryOut],
    resource_type_field_name=None,
    many=True,
)


class ReportDetailOut(serializers.Serializer):
    model = serializers.CharField(required=False)
    provider = serializers.CharField(required=False, help_text="With group_by=model, instead of model.")
    spend = _money()
    requests = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class ReportGroupOut(serializers.Serializer):
    """One team, user, model, customer, tag or organization on one day; its spend split by model (by provider for a
    model)."""

    team_id = serializers.CharField(required=False)
    team_name = serializers.CharField(required=False)
    user = serializers.CharField(required=False)
    model = serializers.CharField(required=False)
    customer = serializers.CharField(required=False)
    tag = serializers.CharField(required=False)
    organization = serializers.CharField(required=False, help_text="The organization_id (Tollgate's own group_by).")
    total_spend = _money()
    metadata = ReportDetailOut(many=True)


class ReportDayOut(serializers.Serializer):
    """One day, with group_by=team, user, model, customer, tag or organization: its groups under teams, users, models,
    customers, tags or organizations."""

    group_by_day = serializers.DateField()
    teams = ReportGroupOut(many=True, required=False)
    users = ReportGroupOut(many=True, required=False)
    models = ReportGroupOut(many=True, required=False)
    customers = ReportGroupOut(many=True, required=False)
    tags = ReportGroupOut(many=True, required=False)
    organizations = ReportGroupOut(many=True, required=False)


class ReportKeyModelOut(serializers.Serializer):
    model = serializers.CharField()
    total_cost = _money()
    total_input_tokens = serializers.IntegerField()
    total_output_tokens = serializers.IntegerField()


class ReportKeyOut(ReportKeyModelOut):
    """One key over the whole range, with group_by=api_key."""

    model = None
    api_key = serializers.CharField(help_text="The key's hash.")
    model_details = ReportKeyModelOut(many=True)


SPEND_REPORT_OUT = PolymorphicProxySerializer(
    component_name="SpendReportItem",
    serializers=[ReportDayOut, ReportKeyOut],
    resource_type_field_name=None,
    many=True,
)
