"""Organizations (the level above teams) in the admin: read here, changed by the /organization/* API
(keys.organizations), which keeps their change log and caches.

An organization's page answers what finance asks of it: its spend against its budget's, its period, its teams
(linked) and its members with their roles."""

from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html_join

from keys.admin import EMPTY, admin_link, budget_bar, name_over_id, rate_limits
from keys.models import Organization, OrganizationMembership
from pricing.admin_base import ReadOnlyAdmin


class MembershipInline(admin.TabularInline):
    model = OrganizationMembership
    fields = readonly_fields = ["user", "user_role", "created_at"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(ReadOnlyAdmin):
    list_display = ["name", "budget_link", "spend_vs_budget", "limits", "team_count", "member_count"]
    list_select_related = ["budget"]
    search_fields = ["organization_id", "organization_alias"]
    fields = ["organization_id", "organization_alias", "budget_link", "spend_vs_budget", "limits", "budget_reset_at",
              "models", "team_links", "metadata", "created_at", "created_by", "updated_at", "updated_by"]  # fmt: skip
    readonly_fields = fields
    inlines = [MembershipInline]

    def get_queryset(self, request):
        counts = {"team_total": Count("teams", distinct=True), "member_total": Count("memberships", distinct=True)}
        return super().get_queryset(request).annotate(**counts)

    @admin.display(description="organization", ordering="organization_alias")
    def name(self, organization):
        return name_over_id(organization.organization_alias, organization.organization_id)

    @admin.display(description="budget", ordering="budget__budget_id")
    def budget_link(self, organization):
        return admin_link(organization.budget)

    @admin.display(description="spend / budget", ordering="spend")
    def spend_vs_budget(self, organization):
        return budget_bar(organization.spend, organization.max_budget)

    limits = admin.display(description="rpm / tpm / parallel")(staticmethod(rate_limits))

    @admin.display(description="teams", ordering="team_total")
    def team_count(self, organization):
        return organization.team_total

    @admin.display(description="members", ordering="member_total")
    def member_count(self, organization):
        return organization.member_total

    @admin.display(description="teams")
    def team_links(self, organization):
        teams = organization.teams.order_by("team_alias", "team_id")
        return format_html_join(", ", "{}", ((admin_link(team),) for team in teams)) or EMPTY
