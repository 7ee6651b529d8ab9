"""The audit trail in the admin: read by Admins and Finance (their roles' view permission), never added to, changed or
deleted by anyone, superusers included; filtered by model, action, actor and date, searched, each entry's changed
fields before and after side by side, and the filtered list exported as CSV (streamed)."""

import json

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from gateway.models import AuditEntry
from pricing.admin_base import EMPTY, ReadOnlyAdmin
from spend.exports import csv_response

CSV_FIELDS = ["at", "actor", "actor_type", "address", "model", "object_id", "object_repr", "action", "before", "after"]


def _json(value) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _cell(value) -> str:
    """A field's value on the page: text as it is, anything else as JSON."""
    if value is None:
        return EMPTY
    return value if isinstance(value, str) else _json(value)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    change_list_template = "admin/gateway/auditentry/change_list.html"
    list_display = ("at", "actor", "actor_type", "address", "action", "model", "object_repr")
    list_filter = ("model", "action", "actor_type", "actor", ("at", admin.DateFieldListFilter))
    search_fields = ("actor", "object_repr", "object_id", "address")
    search_help_text = "An actor, an object's name or id, or an address."
    date_hierarchy = "at"
    list_per_page = 100
    fields = ("at", "actor", "actor_type", "address", "action", "model", "object_id", "object_repr", "changes")
    readonly_fields = fields

    @admin.display(description="before → after")
    def changes(self, entry: AuditEntry):
        before, after = entry.before or {}, entry.after or {}
        names = list(dict.fromkeys([*before, *after]))
        if not names:
            return EMPTY
        rows = [(name, _cell(before.get(name)) if entry.before is not None else EMPTY,
                 _cell(after.get(name)) if entry.after is not None else EMPTY) for name in names]  # fmt: skip
        return format_html(
            '<table class="audit-diff"><thead><tr><th>field</th><th>before</th><th>after</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows),
        )

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        return [path("export/", export, name="gateway_auditentry_export"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        export_url = reverse("admin:gateway_auditentry_export")
        if request.GET:
            export_url += "?" + request.GET.urlencode()
        return super().changelist_view(request, {**(extra_context or {}), "export_url": export_url})

    def export_view(self, request):
        """The list as filtered and searched on its page, every row of it, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            entries = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("The filters do not apply to the audit trail.")
        rows = (
            [entry.at.isoformat(), *(getattr(entry, name) for name in CSV_FIELDS[1:-2]),
             _json(entry.before), _json(entry.after)]
            for entry in entries.iterator(chunk_size=2000)
        )  # fmt: skip
        return csv_response("audit_trail.csv", CSV_FIELDS, rows)
