"""Input and output serializers of /organization/*, in LiteLLM's shapes (its NewOrganizationRequest,
LiteLLM_OrganizationTableUpdate, OrganizationMemberAddRequest and LiteLLM_OrganizationTableWithMembers)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from keys.api.customer_serializers import BudgetOutput, BudgetSettingsInput
from keys.api.inputs import JSONObject, QueryInput
from keys.api.serializers import Money, StrictInput, TeamOutput, UserOutput
from keys.models import OrganizationMembership


def _organization_id(**kwargs):
    return serializers.CharField(max_length=200, **kwargs)


class OrganizationSettingsInput(BudgetSettingsInput):
    """An organization's own fields, and the limits of its budget (made for it, or changed, as LiteLLM does)."""

    organization_alias = serializers.CharField(max_length=200, allow_blank=True, allow_null=True, required=False)
    models = serializers.ListField(child=serializers.CharField(), allow_null=True, required=False)
    metadata = JSONObject(allow_null=True, required=False)
    budget_id = serializers.CharField(max_length=200, allow_null=True, required=False)


class OrganizationNewInput(OrganizationSettingsInput):
    organization_id = _organization_id(required=False, help_text="Made up when not given.")


class OrganizationUpdateInput(OrganizationSettingsInput):
    organization_id = _organization_id()
    spend = Money(required=False, help_text="Set by hand: written to the ledger as an adjustment.")


class OrganizationRefQuery(QueryInput):
    organization_id = _organization_id()


class OrganizationInfoInput(StrictInput):
    """The deprecated POST /organization/info: several organizations at once."""

    organizations = serializers.ListField(child=_organization_id(), allow_empty=False, max_length=1000)


class OrganizationDeleteInput(StrictInput):
    organization_ids = serializers.ListField(child=_organization_id(), allow_empty=False, max_length=1000)


class MemberInput(StrictInput):
    role = serializers.ChoiceField(choices=OrganizationMembership.Role.choices)
    user_id = serializers.CharField(max_length=200, required=False, allow_null=True)
    user_email = serializers.EmailField(required=False, allow_null=True)

    def validate(self, attrs):
        if not attrs.get("user_id") and not attrs.get("user_email"):
            raise serializers.ValidationError({"user_id": ["Give user_id or user_email."]})
        return attrs


_MEMBER_SCHEMA = {
    "type": "object",
    "properties": {
        "role": {"enum": list(OrganizationMembership.Role.values)},
        "user_id": {"type": "string", "maxLength": 200, "nullable": True},
        "user_email": {"type": "string", "format": "email", "nullable": True},
    },
    "required": ["role"],
    "additionalProperties": False,
}


@extend_schema_field({"oneOf": [_MEMBER_SCHEMA, {"type": "array", "items": _MEMBER_SCHEMA, "minItems": 1,
                                                 "maxItems": 1000}]})  # fmt: skip
class Members(serializers.Field):
    """One member object or a list of them, as LiteLLM's `member` takes either."""

    def to_internal_value(self, data):
        entries = data if isinstance(data, list) else [data]
        if not entries or len(entries) > 1000:
            raise serializers.ValidationError("Give from 1 to 1000 members.")
        checked = MemberInput(data=entries, many=True)
        checked.is_valid(raise_exception=True)
        return checked.validated_data

    def to_representation(self, value):
        return value


class MemberAddInput(StrictInput):
    organization_id = _organization_id()
    member = Members(help_text="A member ({role, user_id or user_email}) or a list of them.")
    max_budget_in_organization = Money(allow_null=True, required=False, help_text="Accepted; not enforced.")


class MembershipOutput(serializers.Serializer):
    user_id = serializers.CharField()
    organization_id = serializers.CharField()
    user_role = serializers.CharField()
    spend = serializers.SerializerMethodField()
    budget_id = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_spend(self, membership) -> int:
        return 0  # spend is kept per organization, not per member in it

    def get_budget_id(self, membership) -> str | None:
        return None  # members have no budget of their own in an organization


class OrganizationOutput(serializers.Serializer):
    organization_id = serializers.CharField()
    organization_alias = serializers.CharField()
    budget_id = serializers.CharField(allow_null=True)
    spend = Money(source="live_spend")
    budget_reset_at = serializers.DateTimeField(allow_null=True)
    metadata = serializers.DictField()
    models = serializers.ListField()
    created_by = serializers.CharField()
    updated_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    litellm_budget_table = BudgetOutput(source="budget", allow_null=True)
    members = MembershipOutput(many=True, source="member_list")
    teams = TeamOutput(many=True, source="team_list")


class MemberAddOutput(serializers.Serializer):
    organization_id = serializers.CharField()
    updated_users = UserOutput(many=True)
    updated_organization_memberships = MembershipOutput(many=True)
