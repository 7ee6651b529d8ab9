"""Input and output serializers of /customer/* and /budget/*, in LiteLLM's shapes (its LiteLLM_EndUserTable and
LiteLLM_BudgetTable): a customer is named `user_id` in bodies and `end_user_id` in /customer/info's query."""

from rest_framework import serializers

from keys.api.inputs import JSONObject, QueryInput
from keys.api.serializers import BudgetLimitsInput, Money, StrictInput
from keys.models import Customer

MAX_END_USER_LENGTH = Customer._meta.get_field("end_user_id").max_length  # what a call's `user` may be, too


def _customer_id(**kwargs):
    # Untrimmed: a call's `user` is taken as sent (gateway.proxy.payload.end_user_of), so " c1" is another customer.
    return serializers.CharField(max_length=MAX_END_USER_LENGTH, trim_whitespace=False, **kwargs)


def _customer_ids():
    return serializers.ListField(child=_customer_id(), allow_empty=False, max_length=1000)


# -- budgets ------------------------------------------------------------------------------------------------------------


class BudgetSettingsInput(BudgetLimitsInput):
    model_max_budget = JSONObject(allow_null=True, required=False, help_text="Kept and shown; not enforced.")


class BudgetNewInput(BudgetSettingsInput):
    budget_id = serializers.CharField(max_length=200, required=False, help_text="Made up when not given.")


class BudgetUpdateInput(BudgetSettingsInput):
    budget_id = serializers.CharField(max_length=200)


class BudgetInfoInput(StrictInput):
    budgets = serializers.ListField(child=serializers.CharField(max_length=200), allow_empty=False, max_length=1000)


class BudgetDeleteInput(StrictInput):
    id = serializers.CharField(max_length=200, help_text="The budget_id to delete.")


class BudgetOutput(serializers.Serializer):
    budget_id = serializers.CharField()
    max_budget = Money(allow_null=True)
    soft_budget = Money(allow_null=True)
    max_parallel_requests = serializers.IntegerField(allow_null=True)
    tpm_limit = serializers.IntegerField(allow_null=True)
    rpm_limit = serializers.IntegerField(allow_null=True)
    model_max_budget = serializers.DictField()
    budget_duration = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField()

    def to_representation(self, instance):
        shown = super().to_representation(instance)
        shown["budget_duration"] = shown["budget_duration"] or None  # LiteLLM's "never resets"
        return shown


# -- customers ----------------------------------------------------------------------------------------------------------


class CustomerSettingsInput(BudgetSettingsInput):
    """A customer's own fields, and the limits of its budget (made for it, or changed, as LiteLLM does)."""

    alias = serializers.CharField(max_length=200, allow_blank=True, allow_null=True, required=False)
    blocked = serializers.BooleanField(required=False)
    budget_id = serializers.CharField(max_length=200, allow_null=True, required=False)
    default_model = serializers.CharField(max_length=300, allow_blank=True, allow_null=True, required=False)
    metadata = JSONObject(allow_null=True, required=False)
    spend = Money(required=False, help_text="Set by hand: written to the ledger as an adjustment.")


class CustomerNewInput(CustomerSettingsInput):
    user_id = _customer_id(help_text="The id calls send as `user`.")


class CustomerUpdateInput(CustomerSettingsInput):
    user_id = _customer_id()


class CustomerRefQuery(QueryInput):
    end_user_id = _customer_id()


class CustomerIdsInput(StrictInput):
    user_ids = _customer_ids()


class CustomerOutput(serializers.Serializer):
    user_id = serializers.CharField(source="end_user_id")
    alias = serializers.CharField(allow_null=True)
    blocked = serializers.BooleanField()
    spend = Money(source="live_spend")
    allowed_model_region = serializers.SerializerMethodField()
    default_model = serializers.CharField(allow_null=True)
    budget_id = serializers.CharField(allow_null=True)
    litellm_budget_table = BudgetOutput(source="budget", allow_null=True)
    budget_reset_at = serializers.DateTimeField(allow_null=True)
    metadata = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_allowed_model_region(self, customer) -> str | None:
        return None  # regions are not supported: every deployment serves every customer

    def to_representation(self, instance):
        shown = super().to_representation(instance)
        for name in ("alias", "default_model"):
            shown[name] = shown[name] or None
        return shown


class CustomerDeleteOutput(serializers.Serializer):
    deleted_customers = serializers.IntegerField()
    message = serializers.CharField()


class CustomerBlockOutput(serializers.Serializer):
    blocked_users = CustomerOutput(many=True)
