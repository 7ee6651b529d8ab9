"""The deployment form of the admin: provider keys write-only, names safe in headers, prices entered per 1M tokens.

The cost map prices per token (0.0000025); people read and write prices per 1M tokens ($2.50). A token price is
entered and shown per 1M tokens and stored per token exactly: a Decimal moved six places (scaleb), never divided.
"""

from decimal import Decimal

from django import forms

from gateway import secrets
from gateway.config_import import validate_header_text
from gateway.models import CUSTOM_PRICE_FIELDS, Deployment
from gateway.providers import unservable_reason
from gateway.proxy.registry import shown_api_base
from pricing.fields import MoneyFormField

MILLION_PLACES = 6
# A per-token price at or above this (USD 1,000 per 1M tokens) is almost surely a per-1K price typed per 1M.
_SUSPICIOUS_PER_TOKEN = Decimal("0.001")


def per_token_field(name: str) -> bool:
    return "per_second" not in name


class PerMillionTokensField(MoneyFormField):
    """USD per 1M tokens in the form, USD per token in the model: 2.5 in the box is 0.0000025 stored."""

    def prepare_value(self, value):
        if isinstance(value, Decimal) and value.is_finite():
            value = value.scaleb(MILLION_PLACES)
        return super().prepare_value(value)

    def to_python(self, value):
        value = super().to_python(value)
        return None if value is None else value.scaleb(-MILLION_PLACES)


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
        field_classes = {name: PerMillionTokensField for name in CUSTOM_PRICE_FIELDS if per_token_field(name)}
        labels = {
            name: f"{name.replace('_', ' ')} (USD per 1M tokens)" if per_token_field(name) else
            f"{name.replace('_', ' ')} (USD per second)" for name in CUSTOM_PRICE_FIELDS
        }  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("model_name", "model_id"):
            if name in self.fields:  # a view-only login's form has no fields
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
                unit = "USD 1,000,000 per 1M tokens" if per_token_field(name) else "USD 1 per second"
                self.add_error(name, f"At or above {unit}: this is not a plausible price.")
        return cleaned

    def suspicious_prices(self) -> list[str]:
        return [
            name
            for name in CUSTOM_PRICE_FIELDS
            if per_token_field(name)
            and self.cleaned_data.get(name) is not None
            and self.cleaned_data[name] >= _SUSPICIOUS_PER_TOKEN
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
