"""Deployments and router settings in the admin: effective prices per 1M tokens and where they come from, recent
volume, provider keys write-only. The model groups and access groups deployments declare are what the key, team
and user forms offer to pick (keys.forms.model_choices: keys may not import gateway)."""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from gateway import admin_audit, secrets  # noqa: F401 (admin_audit registers the audit trail's admin)
from gateway.forms import DeploymentForm
from gateway.models import CUSTOM_PRICE_FIELDS, Deployment, RouterSettings
from gateway.two_factor import TwoFactorLoginForm
from keys import forms as key_forms
from pricing import store
from pricing.admin_base import EMPTY, PER_MILLION, MoneyAdmin, money_html, per_million_html, price_html
from pricing.money import usd
from pricing.resolve import SOURCE_BASE_MODEL, SOURCE_COST_MAP, ResolvedPrice, resolve_deployment_price
from spend.activity import recent_volume

VOLUME_DAYS = 7
# The prices a deployment page shows, by the cost map's names: per token (shown per 1M) or per second.
SHOWN_PRICES = (
    ("input", "input_cost_per_token"),
    ("output", "output_cost_per_token"),
    ("cache read", "cache_read_input_token_cost"),
    ("cache write", "cache_creation_input_token_cost"),
    ("reasoning output", "output_cost_per_reasoning_token"),
    ("input per second", "input_cost_per_second"),
    ("output per second", "output_cost_per_second"),
)


def effective_price(deployment: Deployment) -> ResolvedPrice:
    cost_map = store.load_active_cost_map()
    return resolve_deployment_price(deployment, cost_map.entries, cost_map.version)


def configured_model_names() -> set[str]:
    """Every model group and access group the deployments declare: what a key, team or user may be given."""
    names = set()
    for model_name, model_info in Deployment.objects.values_list("model_name", "model_info"):
        names.add(model_name)
        names.update((model_info or {}).get("access_groups") or ())
    return names


key_forms.model_choices.append(configured_model_names)

# The admin is Tollgate's (its header, page titles and index heading), set here: gateway is the app above all others.
admin.site.site_header = "Tollgate"
admin.site.site_title = "Tollgate admin"
admin.site.index_title = "Keys, spend and deployments"
# Its login asks an account with an authenticator app for its code (gateway/two_factor.py).
admin.site.login_form = TwoFactorLoginForm


@admin.register(Deployment)
class DeploymentAdmin(MoneyAdmin):
    form = DeploymentForm
    list_display = (
        "model_name",
        "litellm_model",
        "input_per_million",
        "output_per_million",
        "price_source",
        "api_key_hint",
        "source",
        "enabled",
        "disabled_reason",
    )
    list_filter = ("enabled", "source", "model_name")
    # Not api_base: a search for part of it would tell, a guess at a time, the credentials it may hold.
    search_fields = ("model_name", "litellm_model", "model_id", "base_model")
    readonly_fields = (
        "disabled_reason",
        "api_key_hint",
        "price_source",
        "input_per_million",
        "output_per_million",
        "price_panel",
        "volume",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        ("What it charges", {"fields": ("price_panel", "volume")}),
        (None, {"fields": ("model_name", "litellm_model", "model_id", "enabled", "disabled_reason", "source")}),
        (
            "Upstream",
            {
                "fields": (
                    "api_base",
                    "api_version",
                    "api_key_hint",
                    "new_api_key",
                    "clear_api_key",
                    "timeout",
                    "extra_params",
                )
            },
        ),
        ("Routing", {"fields": ("rpm", "tpm", "weight")}),
        (
            "Pricing",
            {
                "description": "Custom prices in USD per 1M tokens (or per second). Empty: priced by base_model, "
                "else the cost map.",
                "fields": (
                    "base_model",
                    *CUSTOM_PRICE_FIELDS,
                    "extra_pricing",
                ),
            },
        ),
        ("More", {"fields": ("model_info", "created_at", "updated_at")}),
    )

    @admin.display(description="API key")
    def api_key_hint(self, deployment):
        return secrets.hint(deployment.api_key) or "—"

    @admin.display(description="price source")
    def price_source(self, deployment):
        price = effective_price(deployment)
        return f"{price.source} ({price.matched})" if price.matched else price.source

    def _per_million(self, deployment, field):
        return per_million_html(effective_price(deployment).entry.get(field))

    def _sees_key_hints(self, request) -> bool:
        # A hint is part of a credential: only someone who may replace the key sees which one is set (issue 23).
        return request.user.has_perm("gateway.change_deployment")

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if self._sees_key_hints(request) else tuple(f for f in shown if f != "api_key_hint")

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return fields if self._sees_key_hints(request) else tuple(f for f in fields if f != "api_key_hint")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if not self._sees_key_hints(request):
            fieldsets = tuple(
                (name, {**opts, "fields": tuple(f for f in opts["fields"] if f != "api_key_hint")})
                for name, opts in fieldsets
            )
        return fieldsets if obj is not None else fieldsets[1:]  # a new deployment charges nothing yet

    @admin.display(description="price")
    def price_panel(self, deployment):
        price = effective_price(deployment)
        origin = {SOURCE_COST_MAP: "the cost map", SOURCE_BASE_MODEL: "the cost map, by base_model"}.get(
            price.source, price.source
        )
        rows = [("charged at", format_html("{} {}", origin, f"({price.matched})" if price.matched else ""))]
        if price.matched:
            entries = reverse("admin:pricing_costmapentry_changelist") + "?" + urlencode({"q": price.matched})
            rows.append(("version", format_html('{} (<a href="{}">cost-map entry</a>)', price.version, entries)))
        else:
            rows.append(("version", price.version or EMPTY))
        rows += [
            (label, price_html(name, price.entry.get(name))) for label, name in SHOWN_PRICES if name in price.entry
        ]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description=f"last {VOLUME_DAYS} days")
    def volume(self, deployment):
        cost, calls = recent_volume("model_group", deployment.model_name, VOLUME_DAYS)
        logs = reverse("admin:spend_spendlog_changelist") + "?" + urlencode({"model_group": deployment.model_name})
        return format_html(
            '{} calls, {} in the model group {} (all its deployments; <a href="{}">its logs</a>)',
            calls, money_html(cost), deployment.model_name, logs,
        )  # fmt: skip

    @admin.display(description="input / 1M tokens")
    def input_per_million(self, deployment):
        return self._per_million(deployment, "input_cost_per_token")

    @admin.display(description="output / 1M tokens")
    def output_per_million(self, deployment):
        return self._per_million(deployment, "output_cost_per_token")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        obj.record_price_revision(changed_by=request.user.get_username(), note="admin")
        for name in form.suspicious_prices():
            messages.warning(
                request,
                f"{name} = {usd(form.cleaned_data[name] * PER_MILLION)} per 1M tokens: is it a per-1K price "
                "entered per 1M? Check the unit.",
            )


@admin.register(RouterSettings)
class RouterSettingsAdmin(admin.ModelAdmin):
    list_display = ("routing_strategy", "num_retries", "timeout", "cooldown_time", "allowed_fails")

    def has_add_permission(self, request):
        # One row at most, made by whoever may add it (not Finance: a view-only role adds nothing).
        return super().has_add_permission(request) and not RouterSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False
