"""Input and output serializers of the management API, one pair per view, in LiteLLM's shapes.

Inputs refuse fields they do not know (a typo must not be silently ignored), negative money and limits, bad
durations, unknown teams and aliases that point to no model group, naming the field.
"""

from collections.abc import Mapping

from django.apps import apps
from rest_framework import serializers

from keys.budgets import InvalidDuration, parse_duration
from keys.models import InternalUser, Team
from keys.services import NEVER

# -- fields -------------------------------------------------------------------------------------------------------------


class Money(serializers.DecimalField):
    """Dollars in: a JSON number, never negative, exact (the parser reads it as a Decimal). Out: the Decimal itself,
    which the project's renderer writes with its own digits."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        super().__init__(max_digits=38, decimal_places=20, **kwargs)

    def to_representation(self, value):
        return value


class DurationText(serializers.CharField):
    """ "30s", "20m", "30min", "30h", "30d", "2w", "1mo" (and "never" where `allow_never`)."""

    def __init__(self, *, allow_never: bool = False, **kwargs):
        self.allow_never = allow_never
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        if self.allow_never and text == NEVER:
            return text
        try:
            parse_duration(text)
        except InvalidDuration as exc:
            raise serializers.ValidationError(str(exc)) from None
        return text


def _limit(**kwargs):
    return serializers.IntegerField(min_value=0, allow_null=True, required=False, **kwargs)


def _names(**kwargs):
    return serializers.ListField(child=serializers.CharField(), allow_null=True, required=False, **kwargs)


def _mapping(**kwargs):
    return serializers.DictField(child=serializers.CharField(), allow_null=True, required=False, **kwargs)


def model_groups(names) -> set[str]:
    """Which of `names` are model groups (deployments' model_name); read through the app registry, so keys does not
    import gateway."""
    deployment = apps.get_model("gateway", "Deployment")
    return set(deployment.objects.filter(model_name__in=set(names)).values_list("model_name", flat=True).distinct())


def check_aliases(aliases):
    if not aliases:
        return aliases
    known = model_groups(aliases.values())
    for requested, group in aliases.items():
        if group not in known:
            raise serializers.ValidationError(f"{requested!r} maps to {group!r}, which is no model group.")
    return aliases


class StrictInput(serializers.Serializer):
    """An input that refuses unknown fields, naming the first."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["Unknown field."]})
        return super().to_internal_value(data)


# -- keys ---------------------------------------------------------------------------------------------------------------


class KeySettingsInput(StrictInput):
    key_alias = serializers.CharField(max_length=200, allow_blank=True, allow_null=True, required=False)
    models = _names()
    aliases = _mapping()
    config = serializers.DictField(allow_null=True, required=False)
    metadata = serializers.DictField(allow_null=True, required=False)
    duration = DurationText(allow_never=True, allow_null=True, required=False)
    max_budget = Money(allow_null=True, required=False)
    soft_budget = Money(allow_null=True, required=False)
    budget_duration = DurationText(allow_null=True, allow_blank=True, required=False)
    tpm_limit = _limit()
    rpm_limit = _limit()
    max_parallel_requests = _limit()
    blocked = serializers.BooleanField(required=False)
    user_id = serializers.CharField(max_length=200, allow_null=True, required=False)
    team_id = serializers.CharField(max_length=200, allow_null=True, required=False)

    def validate_aliases(self, aliases):
        return check_aliases(aliases)

    def validate_team_id(self, team_id):
        if team_id and not Team.objects.filter(team_id=team_id).exists():
            raise serializers.ValidationError(f"No team {team_id!r}.")
        return team_id


class KeyGenerateInput(KeySettingsInput):
    pass


class KeyUpdateInput(KeySettingsInput):
    key = serializers.CharField()
    spend = Money(required=False)


class KeyRegenerateInput(KeySettingsInput):
    key = serializers.CharField()


class KeyRefInput(StrictInput):
    key = serializers.CharField()


class KeyDeleteInput(StrictInput):
    keys = serializers.ListField(child=serializers.CharField(), allow_empty=False)


class KeyListInput(StrictInput):
    page = serializers.IntegerField(min_value=1, default=1)
    size = serializers.IntegerField(min_value=1, max_value=100, default=10)
    team_id = serializers.CharField(required=False)
    user_id = serializers.CharField(required=False)
    key_alias = serializers.CharField(required=False)
    return_full_object = serializers.BooleanField(default=False)


class KeyOutput(serializers.Serializer):
    token = serializers.CharField(source="token_hash")
    key_name = serializers.CharField(source="key_hint")
    key_alias = serializers.CharField()
    spend = Money(source="live_spend")
    expires = serializers.DateTimeField()
    models = serializers.ListField()
    aliases = serializers.DictField()
    config = serializers.DictField()
    user_id = serializers.CharField(allow_null=True)
    team_id = serializers.CharField(allow_null=True)
    max_budget = Money(allow_null=True)
    soft_budget = Money(allow_null=True)
    soft_budget_alerted_at = serializers.DateTimeField()
    budget_duration = serializers.CharField(allow_null=True)
    budget_reset_at = serializers.DateTimeField()
    tpm_limit = serializers.IntegerField()
    rpm_limit = serializers.IntegerField()
    max_parallel_requests = serializers.IntegerField()
    metadata = serializers.DictField()
    blocked = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()


class GeneratedKeyOutput(KeyOutput):
    """The one response that carries the raw key."""

    key = serializers.CharField(source="raw_key")


class KeyInfoOutput(serializers.Serializer):
    key = serializers.CharField()
    info = KeyOutput()


class KeyListOutput(serializers.Serializer):
    keys = serializers.ListField()
    total_count = serializers.IntegerField()
    current_page = serializers.IntegerField()
    total_pages = serializers.IntegerField()


class KeyDeleteOutput(serializers.Serializer):
    deleted_keys = serializers.ListField(child=serializers.CharField())


# -- teams --------------------------------------------------------------------------------------------------------------


class TeamSettingsInput(StrictInput):
    team_alias = serializers.CharField(max_length=200, allow_blank=True, allow_null=True, required=False)
    models = _names()
    model_aliases = _mapping()
    max_budget = Money(allow_null=True, required=False)
    budget_duration = DurationText(allow_null=True, allow_blank=True, required=False)
    tpm_limit = _limit()
    rpm_limit = _limit()
    max_parallel_requests = _limit()
    metadata = serializers.DictField(allow_null=True, required=False)
    blocked = serializers.BooleanField(required=False)
    members = _names(help_text="user_ids")

    def validate_model_aliases(self, aliases):
        return check_aliases(aliases)


class TeamNewInput(TeamSettingsInput):
    team_id = serializers.CharField(max_length=200, required=False)

    def validate_team_id(self, team_id):
        if Team.objects.filter(team_id=team_id).exists():
            raise serializers.ValidationError(f"Team {team_id!r} already exists.")
        return team_id


class TeamUpdateInput(TeamSettingsInput):
    team_id = serializers.CharField(max_length=200)
    spend = Money(required=False)


class TeamRefInput(StrictInput):
    team_id = serializers.CharField()


class TeamDeleteInput(StrictInput):
    team_ids = serializers.ListField(child=serializers.CharField(), allow_empty=False)


class TeamOutput(serializers.Serializer):
    team_id = serializers.CharField()
    team_alias = serializers.CharField()
    models = serializers.ListField()
    model_aliases = serializers.DictField()
    max_budget = Money(allow_null=True)
    spend = Money(source="live_spend")
    budget_duration = serializers.CharField()
    budget_reset_at = serializers.DateTimeField()
    tpm_limit = serializers.IntegerField()
    rpm_limit = serializers.IntegerField()
    max_parallel_requests = serializers.IntegerField()
    metadata = serializers.DictField()
    blocked = serializers.BooleanField()
    members = serializers.ListField(child=serializers.CharField(), source="member_ids")
    created_at = serializers.DateTimeField()


class TeamInfoOutput(serializers.Serializer):
    team_id = serializers.CharField()
    team_info = TeamOutput()
    keys = KeyOutput(many=True)


class TeamDeleteOutput(serializers.Serializer):
    deleted_teams = serializers.ListField(child=serializers.CharField())


# -- users --------------------------------------------------------------------------------------------------------------


class UserSettingsInput(StrictInput):
    user_email = serializers.EmailField(allow_blank=True, allow_null=True, required=False)
    models = _names()
    max_budget = Money(allow_null=True, required=False)
    budget_duration = DurationText(allow_null=True, allow_blank=True, required=False)
    metadata = serializers.DictField(allow_null=True, required=False)
    teams = _names(help_text="team_ids")

    def validate_teams(self, team_ids):
        if team_ids:
            known = set(Team.objects.filter(team_id__in=team_ids).values_list("team_id", flat=True))
            missing = [team_id for team_id in team_ids if team_id not in known]
            if missing:
                raise serializers.ValidationError(f"No team {missing[0]!r}.")
        return team_ids


class UserNewInput(UserSettingsInput):
    user_id = serializers.CharField(max_length=200, required=False)
    auto_create_key = serializers.BooleanField(default=True)

    def validate_user_id(self, user_id):
        if InternalUser.objects.filter(user_id=user_id).exists():
            raise serializers.ValidationError(f"User {user_id!r} already exists.")
        return user_id


class UserUpdateInput(UserSettingsInput):
    user_id = serializers.CharField(max_length=200)
    spend = Money(required=False)


class UserRefInput(StrictInput):
    user_id = serializers.CharField()


class UserDeleteInput(StrictInput):
    user_ids = serializers.ListField(child=serializers.CharField(), allow_empty=False)


class UserListInput(StrictInput):
    page = serializers.IntegerField(min_value=1, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=100, default=25)


class UserOutput(serializers.Serializer):
    user_id = serializers.CharField()
    user_email = serializers.CharField()
    models = serializers.ListField()
    max_budget = Money(allow_null=True)
    spend = Money(source="live_spend")
    budget_duration = serializers.CharField()
    budget_reset_at = serializers.DateTimeField()
    metadata = serializers.DictField()
    teams = serializers.ListField(child=serializers.CharField(), source="team_ids")
    created_at = serializers.DateTimeField()


class NewUserOutput(UserOutput):
    key = serializers.CharField(source="raw_key", allow_null=True)
    expires = serializers.DateTimeField(source="key_expires", allow_null=True)


class UserInfoOutput(serializers.Serializer):
    user_id = serializers.CharField()
    user_info = UserOutput()
    keys = KeyOutput(many=True)
    teams = TeamOutput(many=True)


class UserListOutput(serializers.Serializer):
    users = UserOutput(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    total_pages = serializers.IntegerField()


class UserDeleteOutput(serializers.Serializer):
    deleted_users = serializers.ListField(child=serializers.CharField())
