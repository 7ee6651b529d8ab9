"""Customers (end users named by a call's `user`) and the budgets they share, in the admin: read here, changed by
the /customer/* and /budget/* API (keys.customer_services), which keeps their change log and caches.

A customer's page answers as a key's does: its spend against its budget's, and (activity_panels) its spend over
time and its last calls."""

from django.contrib import admin
from django.db.models import Count
from django.utils.safestring import mark_safe

from keys.admin import EMPTY, activity_panels, budget_bar, link_column, name_over_id, rate_limits
from keys.models import Budget, Customer
from pricing.admin_base import ReadOnlyAdmin


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ["name", "budget_link", "spend_vs_budget", "blocked", "default_model"]
    list_select_related = ["budget"]
    list_filter = ["blocked"]
    search_fields = ["end_user_id", "alias"]
    fields = ["end_user_id", "alias", "blocked", "budget_link", "spend_vs_budget", "budget_reset_at", "default_model",
              "metadata", "created_at", "updated_at", "activity"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="customer", ordering="end_user_id")
    def name(self, customer):
        return name_over_id(customer.alias, customer.end_user_id)

    budget_link = link_column("budget", "budget__budget_id")

    @admin.display(description="spend / budget", ordering="spend")
    def spend_vs_budget(self, customer):
        return budget_bar(customer.spend, customer.max_budget)

    @admin.display(description="spend over time")
    def activity(self, customer):
        return mark_safe("".join(str(panel("customer", customer.end_user_id)) for panel in activity_panels)) or EMPTY


@admin.register(Budget)
class BudgetAdmin(ReadOnlyAdmin):
    list_display = ["budget_id", "max_budget", "soft_budget", "budget_duration", "limits", "customer_count"]
    search_fields = ["budget_id"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(customer_total=Count("customers"))

    @admin.display(description="customers", ordering="customer_total")
    def customer_count(self, budget):
        return budget.customer_total

    limits = admin.display(description="rpm / tpm / parallel")(staticmethod(rate_limits))
