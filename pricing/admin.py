"""The cost map in the admin: its entries (search, filters, prices per 1M tokens), its versions with their diffs,
a "refresh now" button, and the read-only history of deployments' custom pricing."""

from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import FloatField
from django.db.models.functions import Cast
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from pricing.admin_base import EMPTY, ReadOnlyAdmin, deployment_link, money_html, price_html
from pricing.calculator import format_money
from pricing.models import CostMapEntry, CostMapVersion, PriceRevision
from pricing.tasks import refresh_cost_map

# A diff can name thousands of models; the page shows this many of each kind and counts the rest.
_DIFF_ROWS_SHOWN = 500


def _price_column(field: str, description: str):
    """A price per 1M tokens, kept as exact text: money to read, sorted as a number."""

    @admin.display(description=description, ordering=Cast(field, FloatField()))
    def show(self, entry):
        value = getattr(entry, field)
        return EMPTY if value is None else money_html(Decimal(value))

    return show


@admin.register(CostMapEntry)
class CostMapEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "model_name",
        "provider",
        "mode",
        "input_price",
        "output_price",
        "cache_read_price",
        "cache_write_price",
        "version",
    )
    list_filter = ("provider", "mode")
    search_fields = ("model_name",)
    list_select_related = ("version",)
    list_per_page = 100
    # The list's columns, every price the entry holds as people read it, and the whole entry as the map gave it.
    fields = (*list_display, "price_list", "entry")
    readonly_fields = fields
    input_price = _price_column("input_per_million", "input / 1M tokens")
    output_price = _price_column("output_per_million", "output / 1M tokens")
    cache_read_price = _price_column("cache_read_per_million", "cache read / 1M")
    cache_write_price = _price_column("cache_write_per_million", "cache write / 1M")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("version__raw_json", "version__diff")

    @admin.display(description="prices")
    def price_list(self, entry):
        prices = [(name, price_html(name, Decimal(value))) for name, value in sorted(entry.entry.items())
                  if "cost" in name and isinstance(value, str | int) and _is_number(value)]  # fmt: skip
        if not prices:
            return EMPTY
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", prices))


@admin.register(CostMapVersion)
class CostMapVersionAdmin(ReadOnlyAdmin):
    change_list_template = "admin/pricing/costmapversion/change_list.html"
    list_display = (
        "id",
        "status",
        "source",
        "created_at",
        "entry_count",
        "added_count",
        "removed_count",
        "changed_count",
        "short_sha",
        "failure_reason",
    )
    list_filter = ("status", "source")
    fields = (
        "status",
        "source",
        "sha256",
        "created_at",
        "activated_at",
        "checked_at",
        "failure_reason",
        "entry_count",
        "added_count",
        "removed_count",
        "changed_count",
        "raw_link",
        "diff_table",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        # The raw map is megabytes per version: the pages never load it.
        return super().get_queryset(request).defer("raw_json")

    def get_urls(self):
        return [
            path("refresh/", self.admin_site.admin_view(self.refresh_view), name="pricing_costmapversion_refresh"),
            path("<int:pk>/raw/", self.admin_site.admin_view(self.raw_view), name="pricing_costmapversion_raw"),
            *super().get_urls(),
        ]

    @admin.display(description="sha256")
    def short_sha(self, version):
        return version.sha256[:12]

    @admin.display(description="raw JSON")
    def raw_link(self, version):
        if version.status == CostMapVersion.Status.FAILED:
            return "—"
        return format_html('<a href="{}">download</a>', reverse("admin:pricing_costmapversion_raw", args=[version.pk]))

    @admin.display(description="changes")
    def diff_table(self, version):
        diff = version.diff or {}
        added, removed, changed = diff.get("added", []), diff.get("removed", []), diff.get("changed", {})
        rows = [
            (model, name, _shown(change.get("old")), _shown(change.get("new")))
            for model, fields in list(changed.items())[:_DIFF_ROWS_SHOWN]
            for name, change in fields.items()
        ]
        return format_html(
            "<p><strong>Added ({}):</strong> {}</p><p><strong>Removed ({}):</strong> {}</p>"
            "<p><strong>Changed prices ({} models):</strong></p>"
            "<table><thead><tr><th>model</th><th>field</th><th>old</th><th>new</th></tr></thead><tbody>{}</tbody></table>"
            "{}",
            len(added),
            _model_list(added),
            len(removed),
            _model_list(removed),
            len(changed),
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
            _more(len(changed)),
        )

    def refresh_view(self, request):
        """Run the refresh task: in this process when Celery runs eagerly (no broker), else on a worker."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("pricing.change_costmapversion"):
            raise PermissionDenied
        result = refresh_cost_map.delay()
        if not result.ready():
            self.message_user(request, "Cost map refresh queued: a worker runs it now.", messages.INFO)
        else:
            outcome = result.get()
            level = messages.ERROR if outcome["result"] == "failed" else messages.SUCCESS
            self.message_user(request, f"Cost map refresh: {outcome['result']}. {outcome['message']}", level)
        return HttpResponseRedirect(reverse("admin:pricing_costmapversion_changelist"))

    def raw_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = get_object_or_404(CostMapVersion.objects.exclude(status=CostMapVersion.Status.FAILED), pk=pk)
        response = HttpResponse(version.raw_json, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="cost-map-{version.pk}-{version.sha256[:12]}.json"'
        return response


@admin.register(PriceRevision)
class PriceRevisionAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "deployment", "model_name", "price_summary", "base_model", "changed_by", "note")
    search_fields = ("model_id", "model_name", "changed_by")
    list_filter = ("changed_by",)
    date_hierarchy = "changed_at"
    fields = ("model_id", "model_name", "prices", "base_model", "changed_by", "changed_at", "note")
    readonly_fields = fields

    @admin.display(description="deployment", ordering="model_id")
    def deployment(self, revision):
        return deployment_link(revision.model_id)

    @admin.display(description="custom prices")
    def price_summary(self, revision):
        if not revision.prices:
            return "none (base_model / cost map)"
        return format_html_join(
            ", ",
            "{}: {}",
            ((name, price_html(name, Decimal(str(value)))) for name, value in sorted(revision.prices.items())),
        )


def _is_number(value) -> bool:
    try:
        return Decimal(str(value)).is_finite()
    except ArithmeticError:
        return False


def _shown(value) -> str:
    """A value of a cost map's diff: its exact digits in plain notation when it is a number (never 2.5E-7)."""
    if value is None:
        return EMPTY
    try:
        return format_money(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        return str(value)


def _model_list(models: list[str]) -> str:
    shown = ", ".join(models[:_DIFF_ROWS_SHOWN])
    return f"{shown} … and {len(models) - _DIFF_ROWS_SHOWN} more" if len(models) > _DIFF_ROWS_SHOWN else shown or "—"


def _more(count: int) -> str:
    return f"… and {count - _DIFF_ROWS_SHOWN} more models" if count > _DIFF_ROWS_SHOWN else ""
