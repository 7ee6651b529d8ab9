"""Input and output serializers of /tag/*, in LiteLLM's shapes (its TagNewRequest and TagConfig): a tag is named by
`name`, and its budget's limits are the tag's own fields."""

from rest_framework import serializers

from keys.api.customer_serializers import BudgetSettingsInput
from keys.api.inputs import JSONObject
from keys.api.serializers import Money, StrictInput
from keys.models import Tag

MAX_TAG_LENGTH = Tag._meta.get_field("name").max_length


def _tag_name(**kwargs):
    # Kept as sent, as a call's tags are: trimmed, a name could pass the length check and then name another tag.
    return serializers.CharField(max_length=MAX_TAG_LENGTH, trim_whitespace=False, **kwargs)


class TagSettingsInput(BudgetSettingsInput):
    """A tag's limits are a budget's (LiteLLM makes a budget for them), held by the tag itself."""

    description = serializers.CharField(max_length=10_000, allow_blank=True, allow_null=True, required=False)
    metadata = JSONObject(allow_null=True, required=False)
    model_max_budget = None  # per-model budgets are a key's here, not a tag's


class TagNewInput(TagSettingsInput):
    name = _tag_name(help_text="The tag calls carry in metadata.tags (or tags), or their key's tags.")


class TagUpdateInput(TagSettingsInput):
    name = _tag_name()


class TagInfoInput(StrictInput):
    names = serializers.ListField(child=_tag_name(), allow_empty=False, max_length=1000)


class TagDeleteInput(StrictInput):
    name = _tag_name()


class TagOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    max_budget = Money(allow_null=True)
    soft_budget = Money(allow_null=True)
    budget_duration = serializers.CharField(allow_null=True)
    budget_reset_at = serializers.DateTimeField(allow_null=True)
    tpm_limit = serializers.IntegerField(allow_null=True)
    rpm_limit = serializers.IntegerField(allow_null=True)
    max_parallel_requests = serializers.IntegerField(allow_null=True)
    spend = Money(source="live_spend", help_text="What the tag's next call is checked against.")
    metadata = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)

    def to_representation(self, instance):
        shown = super().to_representation(instance)
        for name in ("description", "budget_duration", "created_by"):
            shown[name] = shown[name] or None  # LiteLLM's "not set"
        return shown
