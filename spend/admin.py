"""The spend ledger in the admin: read-only logs with the filters finance needs, CSV export, and the overview.

Keys, teams and users are named (alias, email) and linked, not shown by hash or id (spend.admin_names); money reads
as money (pricing.admin_base). The key and team pages of the keys admin show their spend from here
(``entity_activity``, registered with keys.admin: keys may not import spend).
"""

from decimal import Decimal, InvalidOperation

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from keys import admin as keys_admin
from keys.admin import EntityNamedAdmin
from keys.names import ids_named, names
from pricing.admin_base import ReadOnlyAdmin, deployment_link, money_html, price_html
from pricing.resolve import SOURCE_BASE_MODEL, SOURCE_COST_MAP, SOURCE_CUSTOM, SOURCE_UNPRICED
from spend import dashboard
from spend.activity import entity_activity
from spend.admin_names import COLUMNS, attach_names, name_column
from spend.exports import LOG_CSV_FIELDS, csv_response
from spend.models import BudgetReset, DailySpend, SpendLog
from spend.paginator import EstimatedCountPaginator
from spend.routers import reporting_db

keys_admin.activity_panels.append(entity_activity)

# Filter choices shown at most: the rest are reached by the search box or the overview's links.
_FILTER_CHOICES = 200


def rollup_values_filter(field: str, label: str, kind: str = "") -> type[admin.SimpleListFilter]:
    """A filter whose choices come from the daily rollups (a DISTINCT over the raw logs would scan all of them),
    each named as people know it when ``kind`` names a key, team or user."""

    class RollupValuesFilter(admin.SimpleListFilter):
        title = label
        parameter_name = field

        def lookups(self, request, model_admin):
            values = [
                value
                for value in DailySpend.objects.using(reporting_db())
                .order_by(field)
                .values_list(field, flat=True)
                .distinct()[:_FILTER_CHOICES]
                if value
            ]
            if not kind:
                return [(value, value) for value in values]
            named = names(kind, values)
            return sorted(((value, named[value].label) for value in values), key=lambda choice: choice[1].lower())

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    return RollupValuesFilter


# Logs and rollups filtered by team, key and user, each listed by name.
NAME_FILTERS = tuple(rollup_values_filter(column, kind, kind) for kind, column in COLUMNS.items())


class PricingSourceFilter(admin.SimpleListFilter):
    """Fixed choices: a DISTINCT over the raw logs would scan all of them."""

    title = "pricing source"
    parameter_name = "pricing_source"

    def lookups(self, request, model_admin):
        return [(source, source) for source in (SOURCE_CUSTOM, SOURCE_BASE_MODEL, SOURCE_COST_MAP, SOURCE_UNPRICED)]

    def queryset(self, request, queryset):
        return queryset.filter(pricing_source=self.value()) if self.value() else queryset


class NamedChangeList(ChangeList):
    """A page of rows with their keys', teams' and users' names read in three queries."""

    def get_results(self, request):
        super().get_results(request)
        attach_names(list(self.result_list))


class _NamesAdmin(ReadOnlyAdmin):
    """Rows (logs, rollups) that name a key, a team and a user by id: shown by name, linked to their pages. Read from
    the reports' database (the replica when there is one: spend.routers), as the reports are."""

    key_name = name_column("key", "key")
    team_name = name_column("team", "team")
    user_name = name_column("user", "user")
    customer_name = name_column("customer", "customer")

    def get_queryset(self, request):
        return super().get_queryset(request).using(reporting_db())

    def get_changelist(self, request, **kwargs):
        return NamedChangeList

    def get_object(self, request, object_id, from_field=None):
        row = super().get_object(request, object_id, from_field)
        if row is not None:
            attach_names([row])
        return row


def _money_or_text(value):
    """A price or cost part as stored in JSON (exact decimal text): money when it is a number."""
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@admin.register(SpendLog)
class SpendLogAdmin(_NamesAdmin):
    # Seven columns, Cost always visible at 1280 px: provider and pricing source are folded under the model and the
    # status, the request id is on the log's page (and found by the search box).
    list_display = ("start_time", "key_name", "team_name", "user_name", "model_and_provider", "cost", "outcome")
    list_filter = (
        ("start_time", admin.DateFieldListFilter),
        *NAME_FILTERS,
        rollup_values_filter("model_group", "model"),
        "status",
        PricingSourceFilter,
    )
    search_fields = ("=request_id",)
    search_help_text = "A request id, or a key's alias or hint, a team's alias, a user's email, a customer (exactly)."
    # Newest first, as /spend/logs lists them: a key's, team's, user's or customer's page is a walk down its own
    # (payer, start_time) index, and every page a walk down start_time, each stopping after a page (the partitions
    # in time order on PostgreSQL). By id, a filter on a payer walked the primary key past every other payer's
    # rows (EXPLAIN, 20,000 generated logs: a Merge Append over each partition's primary key removing the other
    # keys' rows by filter), which for a key quiet since last month is the whole month's ledger.
    ordering = ("-start_time", "-id")
    sortable_by = ()
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    date_hierarchy = None
    actions = ["export_csv"]
    fieldsets = (
        (None, {"fields": ("request_id", "start_time", "status", "cost", "cost_parts", "key_name", "team_name",
                           "user_name", "customer_name")}),
        ("Model", {"fields": ("call_type", "requested_model", "model_group", "deployment", "provider",
                              "provider_model", "api_base")}),
        ("Tokens", {"fields": ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_creation_tokens",
                               "reasoning_tokens")}),
        ("Price", {"fields": ("price_table", "pricing_source", "price_version")}),
        ("Timing", {"fields": ("end_time", "duration_ms", "time_to_first_token_ms", "attempts", "error_class")}),
        ("Ids and metadata", {"fields": ("key_hash", "team_id", "user_id", "end_user", "metadata", "request_tags"),
                              "classes": ["collapse"]}),
    )  # fmt: skip

    def get_search_results(self, request, queryset, search_term):
        """A request id, or the logs of the key, team, user or customer so named: each an indexed equality, never
        a LIKE over the ledger."""
        found, duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return found, duplicates
        named = Q()
        for kind, column in COLUMNS.items():
            if ids := ids_named(kind, term):
                named |= Q(**{f"{column}__in": ids})
        return (found | queryset.filter(named)) if named else found, duplicates

    @admin.display(description="model")
    def model_and_provider(self, log: SpendLog):
        return format_html(
            '{}<small class="secondary">{}</small>', log.model_group or log.requested_model, log.provider
        )

    @admin.display(description="deployment")
    def deployment(self, log: SpendLog):
        return deployment_link(log.deployment_id)

    @admin.display(description="status")
    def outcome(self, log: SpendLog):
        return format_html('{}<small class="secondary">{}</small>', log.status, log.pricing_source)

    @admin.display(description="cost breakdown")
    def cost_parts(self, log: SpendLog):
        return _table((part, money_html(amount) if amount is not None else text)
                      for part, text in log.cost_breakdown.items() for amount in [_money_or_text(text)])  # fmt: skip

    @admin.display(description="prices charged")
    def price_table(self, log: SpendLog):
        return _table(
            (name, price_html(name, amount) if amount is not None else text)
            for name, text in log.prices.items()
            for amount in [_money_or_text(text)]
        )

    @admin.action(description="Export selected spend logs as CSV")
    def export_csv(self, request, queryset: QuerySet):
        rows = queryset.values_list(*LOG_CSV_FIELDS).iterator(chunk_size=2000)
        return csv_response("spend_logs.csv", LOG_CSV_FIELDS, rows)

    def get_urls(self):
        # Spend across every key and team, and its CSV exports: for the roles that may read spend logs, and a Team
        # admin's own teams' (issue 23; spend.overview.team_scope refuses anyone else).
        overview = self.admin_site.admin_view(dashboard.overview)
        return [path("overview/", overview, name="spend_overview"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "overview_url": reverse("admin:spend_overview")}
        return super().changelist_view(request, extra_context)


def _table(rows) -> str:
    rows = list(rows)
    if not rows:
        return "—"
    return format_html("<table>{}</table>", format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows))


@admin.register(DailySpend)
class DailySpendAdmin(_NamesAdmin):
    list_display = ("day", "key_name", "team_name", "user_name", "model_group", "cost", "requests",
                    "failed_requests", "unpriced_requests", "provider")  # fmt: skip
    list_filter = (
        ("day", admin.DateFieldListFilter),
        *NAME_FILTERS,
        "provider",
    )
    search_fields = ("=team_id", "=key_hash", "=user_id", "model_group")


@admin.register(BudgetReset)
class BudgetResetAdmin(EntityNamedAdmin):
    list_display = ("reset_at", "entity", "period_spend", "scheduled_at", "next_reset_at", "log_watermark")
    list_filter = ("kind",)
    search_fields = ("=entity_id",)
