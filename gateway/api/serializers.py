"""Input and output serializers of the model management API (/model/*), in LiteLLM's shapes.

A deployment is read as a config file entry is (gateway.config_import.parse_deployment: known provider, prices,
secrets); the inputs here first hold the JSON types and the bounds of the columns it is stored in, and pass the
entry on as it was sent. Outputs only describe what the views render (deployment_out) for the OpenAPI schema.
"""

import re

from django.core.validators import RegexValidator
from rest_framework import serializers

from gateway.models import CUSTOM_PRICE_FIELDS
from gateway.providers import PROVIDERS
from keys.api.inputs import JSONInput, check_storable_text
from keys.api.serializers import LIMIT, Money

# parse_deployment's rule: "provider/model" with a known provider, or a bare model name (OpenAI's).
KNOWN_PROVIDER = RegexValidator(
    rf"^(?:(?:{'|'.join(map(re.escape, sorted(PROVIDERS)))})/[\s\S]*|[^/]*)\Z",
    "Unknown provider: use provider/model with a known provider, or a bare OpenAI model name.",
)
MODEL_HELP = f"provider/model, the provider one of {', '.join(sorted(PROVIDERS))}; a bare name is OpenAI's."


# A timeout is stored as a float, which must stay finite; no call waits for 30 years.
TIMEOUT_LIMIT = 10**9


def _text(max_length: int | None = None, **kwargs):
    # Untrimmed: the entry goes on as sent, so the bounds hold for what is stored.
    return serializers.CharField(max_length=max_length, trim_whitespace=False, **kwargs)


def _count(**kwargs):
    return serializers.IntegerField(min_value=0, max_value=LIMIT, required=False, **kwargs)


class _EntryPart(JSONInput):
    """A part of a model_list entry: its known fields checked, and the part itself, all other fields included,
    passed on as sent."""

    def to_internal_value(self, data):
        super().to_internal_value(data)
        check_storable_text(data)
        return dict(data)


# Custom prices, in litellm_params or model_info: non-negative, at most 20 decimal places, like the columns.
_CustomPrices = type("_CustomPrices", (_EntryPart,), {name: Money(required=False) for name in CUSTOM_PRICE_FIELDS})


class LitellmParamsIn(_CustomPrices):
    """litellm_params: what Tollgate reads; any other field (a `*cost*` one must be a non-negative number) is kept
    and sent to the provider."""

    model = _text(300, validators=[KNOWN_PROVIDER], help_text=MODEL_HELP)
    api_base = _text(500, allow_blank=True, allow_null=True, required=False)
    api_version = _text(50, allow_blank=True, allow_null=True, required=False)
    api_key = _text(allow_blank=True, allow_null=True, required=False, help_text="Stored encrypted.")
    timeout = serializers.DecimalField(
        max_digits=None,
        decimal_places=None,
        coerce_to_string=False,
        min_value=0,
        max_value=TIMEOUT_LIMIT,
        required=False,
        help_text="Seconds.",
    )
    rpm = _count()
    tpm = _count()
    weight = _count()


class LitellmParamsUpdate(LitellmParamsIn):
    model = _text(300, validators=[KNOWN_PROVIDER], required=False, help_text=MODEL_HELP)


class ModelInfoIn(_CustomPrices):
    """model_info: the deployment's id, the cost-map entry it is priced by, its custom prices; other fields are
    kept as they are."""

    id = _text(100, required=False, help_text="The deployment's id; made from the entry when absent.")
    base_model = _text(300, allow_blank=True, allow_null=True, required=False)


class DeploymentIn(JSONInput):
    model_name = _text(200, help_text="The model group clients ask for.")
    litellm_params = LitellmParamsIn()
    model_info = ModelInfoIn(required=False)


class ModelInfoRef(ModelInfoIn):
    id = _text(100, help_text="The deployment to update.")


class DeploymentUpdateIn(JSONInput):
    """The fields to change: model_info.id names the deployment; litellm_params and model_info merge into it."""

    model_name = _text(200, allow_blank=True, allow_null=True, required=False, help_text="Empty: unchanged.")
    litellm_params = LitellmParamsUpdate(allow_null=True, required=False)
    model_info = ModelInfoRef()


class DeploymentDeleteIn(JSONInput):
    id = _text(help_text="model_info.id of the deployment.")


class ModelInfoQuery(serializers.Serializer):
    litellm_model_id = serializers.CharField(required=False, allow_blank=True, help_text="Only this deployment.")


class ModelInfoOut(serializers.Serializer):
    """model_info as stored, with where its price comes from; other stored fields follow."""

    id = serializers.CharField()
    price_source = serializers.CharField()
    pricing_entry = serializers.CharField(allow_null=True)
    db_model = serializers.BooleanField()
    source = serializers.CharField()
    enabled = serializers.BooleanField(help_text="Whether calls are routed to it.")
    disabled_reason = serializers.CharField(
        allow_null=True, help_text="Why Tollgate cannot serve it (a provider it has no adapter for), else null."
    )
    input_cost_per_token = Money(allow_null=True)
    output_cost_per_token = Money(allow_null=True)


class DeploymentOut(serializers.Serializer):
    model_name = serializers.CharField()
    litellm_params = serializers.DictField(help_text="As stored; api_key and other secrets only as a hint.")
    model_info = ModelInfoOut()


class ModelInfoListOut(serializers.Serializer):
    data = DeploymentOut(many=True)


class MessageOut(serializers.Serializer):
    message = serializers.CharField()
