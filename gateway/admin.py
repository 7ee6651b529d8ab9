"""Deployments and router settings in the admin: effective prices shown, provider keys write-only."""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages

from gateway import secrets
from gateway.config_import import validate_header_text
from gateway.models import CUSTOM_PRICE_FIELDS, Deployment, RouterSettings
from gateway.providers import unservable_reason
from gateway.proxy.registry import shown_api_base
from pricing import store
from pricing.calculator import format_money
from pricing.resolve import ResolvedPrice, resolve_deployment_price

_PER_MILLION = Decimal(1_000_000)
# A per-token price above this is almost surely a per-1K or per-1M price typed in the wrong field.
_SUSPICIOUS_PER_TOKEN = Decimal("0.001")


def effective_price(deployment: Deployment) -> ResolvedPrice:
    cost_map = store.load_active_cost_map()
    return resolve_deployment_price(deployment, cost_map.entries, cost_map.version)


class DeploymentForm(forms.ModelForm):
    new_api_key = forms.CharField(
        required=False,
        label="API key",
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the stored key. Or write os.environ/NAME to read it from the environment.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored API key")

    class Meta:
        model = Deployment
        exclude = ("api_key",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("model_name", "model_id"):
            self.fields[name].validators.append(validate_header_text)
        # The stored address may carry credentials: shown as /model/info shows it, and kept when sent back as shown.
        self.initial["api_base"] = shown_api_base(self.instance.api_base)

    def clean_api_base(self):
        value = self.cleaned_data["api_base"]
        if self.instance.pk and value == self.initial["api_base"]:
            return self.instance.api_base
        return value

    def clean_litellm_model(self):
        return self.cleaned_data["litellm_model"].strip()

    def clean(self):
        cleaned = super().clean()
        # A deployment Tollgate cannot serve may be kept (a config imported it), but not enabled.
        reason = unservable_reason(cleaned.get("litellm_model") or "")
        if reason and cleaned.get("enabled"):
            self.add_error("enabled", f"Cannot be enabled: {reason}.")
        self.instance.disabled_reason = reason
        for name in CUSTOM_PRICE_FIELDS:
            value = cleaned.get(name)
            if value is not None and value < 0:
                self.add_error(name, "A price cannot be negative.")
            if value is not None and value >= 1:
                self.add_error(name, "Prices are in USD per token (or per second); this is not a plausible one.")
        return cleaned

    def suspicious_prices(self) -> list[str]:
        return [
            name
            for name in CUSTOM_PRICE_FIELDS
            if "per_second" not in name
            and self.cleaned_data.get(name) is not None
            and self.cleaned_data[name] > _SUSPICIOUS_PER_TOKEN
        ]

    def save(self, commit=True):
        deployment = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            deployment.api_key = ""
        elif self.cleaned_data.get("new_api_key"):
            deployment.api_key = secrets.seal(self.cleaned_data["new_api_key"].strip())
        if commit:
            deployment.save()
        return deployment


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
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
        "created_at",
        "updated_at",
    )
    fieldsets = (
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
                "description": "USD per token (or per second). Empty fields: priced by base_model, else the cost map.",
                "fields": (
                    "price_source",
                    "input_per_million",
                    "output_per_million",
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
        value = effective_price(deployment).entry.get(field)
        return f"${format_money(value * _PER_MILLION)}" if value is not None else "—"

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
                f"{name} = {form.cleaned_data[name]} USD per token looks like a per-1K or per-1M price: "
                "check the unit.",
            )


@admin.register(RouterSettings)
class RouterSettingsAdmin(admin.ModelAdmin):
    list_display = ("routing_strategy", "num_retries", "timeout", "cooldown_time", "allowed_fails")

    def has_add_permission(self, request):
        return not RouterSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False
