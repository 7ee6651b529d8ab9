"""Inputs and outputs of LiteLLM's reporting family (spend.reports), for validation and the OpenAPI schema."""

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from spend import reports
from spend.api.serializers import _day, _money
from spend.reports import default_window


class WindowIn(serializers.Serializer):
    """Local days, both included; without them, the last 30 days as LiteLLM's Last30d* views."""

    start_date = _day(required=False, default=None)
    end_date = _day(required=False, default=None, help_text="Not before start_date.")

    def validate(self, attrs):
        start, end = default_window()
        attrs["start_date"] = attrs["start_date"] or min(start, attrs["end_date"] or start)
        attrs["end_date"] = attrs["end_date"] or max(end, attrs["start_date"])
        if attrs["end_date"] < attrs["start_date"]:
            raise ValidationError({"end_date": ["must not be before start_date"]})
        return attrs


class KeysIn(WindowIn):
    limit = serializers.IntegerField(required=False, default=None, min_value=1, help_text="Top n keys; none: all.")


class ModelsIn(WindowIn):
    limit = serializers.IntegerField(required=False, default=10, min_value=1, help_text="Top n models.")


class DailySpendIn(WindowIn):
    api_key = serializers.CharField(required=False, default="", allow_blank=True, help_text="A raw key or its hash.")


class TagsIn(WindowIn):
    tags = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="Comma-separated tags; none or all-tags: every tag."
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        attrs["tags"] = [tag for tag in attrs["tags"].split(",") if tag]
        return attrs


class EndUsersIn(serializers.Serializer):
    """LiteLLM's body: startTime and endTime (local days here), and an optional api_key."""

    startTime = _day(required=False, default=None)
    endTime = _day(required=False, default=None)
    api_key = serializers.CharField(required=False, default="", allow_blank=True, allow_null=True)

    def to_internal_value(self, data):
        # DRF would read a JSON number as a key; the body must say what it means.
        if isinstance(data, dict) and not isinstance(data.get("api_key", ""), str | None):
            raise ValidationError({"api_key": ["Expected a JSON string."]})
        return super().to_internal_value(data)

    def validate(self, attrs):
        window = WindowIn(data={"start_date": attrs["startTime"], "end_date": attrs["endTime"]})
        window.is_valid(raise_exception=True)
        return {**window.validated_data, "api_key": attrs["api_key"] or ""}


class ActivityIn(WindowIn):
    model = serializers.CharField(required=False, default="", allow_blank=True)
    api_key = serializers.CharField(required=False, default="", allow_blank=True, help_text="A raw key or its hash.")
    page = serializers.IntegerField(required=False, default=1, min_value=1, max_value=1_000_000)
    page_size = serializers.IntegerField(required=False, default=50, min_value=1, max_value=1000)


class GlobalSpendOut(serializers.Serializer):
    spend = _money()
    max_budget = _money(help_text="No proxy-wide budget: 0.")


class KeySpendOut(serializers.Serializer):
    api_key = serializers.CharField(help_text="The key's hash.")
    key_alias = serializers.CharField(allow_null=True)
    key_name = serializers.CharField(allow_null=True, help_text="sk-...abcd")
    total_spend = _money()


class ModelSpendOut(serializers.Serializer):
    model = serializers.CharField()
    total_spend = _money()


class TeamTotalOut(serializers.Serializer):
    team_id = serializers.CharField(help_text="The team's alias (LiteLLM's naming).")
    total_spend = _money()


class TeamSpendOut(serializers.Serializer):
    daily_spend = serializers.ListField(child=serializers.DictField(), help_text="date, and spend per team alias.")
    teams = serializers.ListField(child=serializers.CharField())
    total_spend_per_team = TeamTotalOut(many=True)


class EndUserSpendOut(serializers.Serializer):
    end_user = serializers.CharField()
    total_count = serializers.IntegerField()
    total_spend = _money()


class DaySpendOut(serializers.Serializer):
    date = serializers.DateField()
    spend = _money()
    api_key = serializers.CharField(required=False)


class TagSpendOut(serializers.Serializer):
    individual_request_tag = serializers.CharField()
    log_count = serializers.IntegerField()
    total_spend = _money()


class TagTotalOut(serializers.Serializer):
    name = serializers.CharField()
    spend = _money()
    log_count = serializers.IntegerField()


class GlobalTagsOut(serializers.Serializer):
    spend_per_tag = TagTotalOut(many=True)


def _metric(name: str) -> serializers.Field:
    return _money() if name == "spend" else serializers.IntegerField()


# A day's (or a breakdown's) metrics, named and ordered as spend.reports computes them, so the two cannot drift.
METRIC_NAMES = (*(name for name, _ in reports.METRICS), *reports.DERIVED_METRICS)
MetricsOut = type("MetricsOut", (serializers.Serializer,), {name: _metric(name) for name in METRIC_NAMES})
_MetricTotalsOut = type(
    "_MetricTotalsOut", (serializers.Serializer,), {reports.total_name(name): _metric(name) for name in METRIC_NAMES}
)


class BreakdownItemOut(serializers.Serializer):
    metrics = MetricsOut()
    metadata = serializers.DictField()


class BreakdownOut(serializers.Serializer):
    models = serializers.DictField(child=BreakdownItemOut())
    providers = serializers.DictField(child=BreakdownItemOut())
    api_keys = serializers.DictField(child=BreakdownItemOut(), help_text="metadata: key_alias, team_id.")


class ActivityDayOut(serializers.Serializer):
    date = serializers.DateField()
    metrics = MetricsOut()
    breakdown = BreakdownOut()


class ActivityMetadataOut(_MetricTotalsOut):
    """The metrics' totals over every day, and where this page is."""

    page = serializers.IntegerField()
    total_pages = serializers.IntegerField()
    has_more = serializers.BooleanField()


class ActivityOut(serializers.Serializer):
    results = ActivityDayOut(many=True)
    metadata = ActivityMetadataOut()
