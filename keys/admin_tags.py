"""Tag holders and keys' per-model spend in the admin: read here, changed by the /tag/* API (keys.tag_services) and
by a key's model_max_budget, which keep their change log and caches."""

from django.contrib import admin

from keys.admin import admin_link, budget_bar, rate_limits
from keys.model_budgets import model_budget_limit
from keys.models import KeyModelSpend, Tag
from pricing.admin_base import ReadOnlyAdmin


@admin.register(Tag)
class TagAdmin(ReadOnlyAdmin):
    list_display = ["name", "spend_vs_budget", "budget_duration", "budget_reset_at", "limits", "created_at"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "spend_vs_budget", "soft_budget", "budget_duration", "budget_reset_at",
              "limits", "metadata", "created_by", "created_at", "updated_at"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="spend / budget", ordering="spend")
    def spend_vs_budget(self, tag):
        return budget_bar(tag.spend, tag.max_budget)

    limits = admin.display(description="rpm / tpm / parallel")(staticmethod(rate_limits))


@admin.register(KeyModelSpend)
class KeyModelSpendAdmin(ReadOnlyAdmin):
    """A key's spend on each model group it has a budget for (its model_max_budget): set on the key."""

    list_display = ["key_link", "model", "spend_vs_budget", "budget_reset_at"]
    list_select_related = ["key"]
    search_fields = ["model", "key__key_alias"]
    fields = ["key_link", "model", "spend_vs_budget", "budget_reset_at", "created_at"]
    readonly_fields = fields

    @admin.display(description="key", ordering="key__key_alias")
    def key_link(self, spend):
        return admin_link(spend.key)

    @admin.display(description="spend / budget", ordering="spend")
    def spend_vs_budget(self, spend):
        return budget_bar(spend.spend, model_budget_limit(spend.key, spend.model))
