"""The spend ledger in the admin: read-only logs with the filters finance needs, CSV export, and the overview."""

from django.contrib import admin
from django.db.models import QuerySet
from django.urls import path, reverse

from pricing.admin_base import ReadOnlyAdmin
from pricing.resolve import SOURCE_BASE_MODEL, SOURCE_COST_MAP, SOURCE_CUSTOM, SOURCE_UNPRICED
from spend import dashboard
from spend.exports import LOG_CSV_FIELDS, csv_response
from spend.models import BudgetReset, DailySpend, SpendLog
from spend.paginator import EstimatedCountPaginator


def rollup_values_filter(field: str, label: str) -> type[admin.SimpleListFilter]:
    """A filter whose choices come from the daily rollups: a DISTINCT over the raw logs would scan all of them."""

    class RollupValuesFilter(admin.SimpleListFilter):
        title = label
        parameter_name = field

        def lookups(self, request, model_admin):
            values = DailySpend.objects.order_by(field).values_list(field, flat=True).distinct()[:200]
            return [(value, value[:16] + "…" if len(value) > 20 else value) for value in values if value]

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    return RollupValuesFilter


class PricingSourceFilter(admin.SimpleListFilter):
    """Fixed choices: a DISTINCT over the raw logs would scan all of them."""

    title = "pricing source"
    parameter_name = "pricing_source"

    def lookups(self, request, model_admin):
        return [(source, source) for source in (SOURCE_CUSTOM, SOURCE_BASE_MODEL, SOURCE_COST_MAP, SOURCE_UNPRICED)]

    def queryset(self, request, queryset):
        return queryset.filter(pricing_source=self.value()) if self.value() else queryset


@admin.register(SpendLog)
class SpendLogAdmin(ReadOnlyAdmin):
    list_display = ("start_time", "request_id", "team_id", "key", "user_id", "model_group", "provider", "status",
                    "cost", "pricing_source")  # fmt: skip
    list_filter = (
        ("start_time", admin.DateFieldListFilter),
        rollup_values_filter("team_id", "team"),
        rollup_values_filter("key_hash", "key"),
        rollup_values_filter("model_group", "model"),
        "status",
        PricingSourceFilter,
    )
    search_fields = ("=request_id",)
    # Newest first by id: a walk down the primary key stops after a page even under a filter; ordering by
    # start_time (and id, to be deterministic) would sort every matching row first.
    ordering = ("-id",)
    sortable_by = ()
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    date_hierarchy = None
    actions = ["export_csv"]

    @admin.display(description="key")
    def key(self, log: SpendLog) -> str:
        return log.key_hash[:12]

    @admin.action(description="Export selected spend logs as CSV")
    def export_csv(self, request, queryset: QuerySet):
        rows = queryset.values_list(*LOG_CSV_FIELDS).iterator(chunk_size=2000)
        return csv_response("spend_logs.csv", LOG_CSV_FIELDS, rows)

    def get_urls(self):
        overview = self.admin_site.admin_view(dashboard.overview)
        return [path("overview/", overview, name="spend_overview"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "overview_url": reverse("admin:spend_overview")}
        return super().changelist_view(request, extra_context)


@admin.register(DailySpend)
class DailySpendAdmin(ReadOnlyAdmin):
    list_display = ("day", "team_id", "key_hash", "user_id", "model_group", "provider", "requests",
                    "failed_requests", "unpriced_requests", "cost")  # fmt: skip
    list_filter = (("day", admin.DateFieldListFilter), "provider")
    search_fields = ("=team_id", "=key_hash", "=user_id", "model_group")


@admin.register(BudgetReset)
class BudgetResetAdmin(ReadOnlyAdmin):
    list_display = ("reset_at", "kind", "entity_id", "period_spend", "scheduled_at", "next_reset_at", "log_watermark")
    list_filter = ("kind",)
    search_fields = ("=entity_id",)
