"""Input and output serializers of the management API, one pair per view, in LiteLLM's shapes.

Inputs refuse fields they do not know (a typo must not be silently ignored), values of the wrong JSON type,
negative money and limits, bad durations, unknown teams and aliases that point to no model group, naming the
field. What they refuse, the OpenAPI schema says (types, required fields, patterns, bounds).
"""

from collections.abc import Mapping
from decimal import Decimal

from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from keys.api.inputs import JSONInput, JSONObject, QueryInput, check_storable_text
from keys.auth import is_master_key
from keys.budgets import InvalidDuration, InvalidModelBudget, check_model_budgets, parse_duration
from keys.models import InternalUser, Team
from keys.organizations import known_organization
from keys.routes import ROUTE_GROUPS
from keys.services import NEVER, key_in_use
from pricing.calculator import format_money
from pricing.deployments import deployments

# What the database holds: PositiveBigIntegerField, PositiveIntegerField (and a page's offset), budget_duration's
# max_length.
BIG_LIMIT = 2**63 - 1
LIMIT = 2**31 - 1
DURATION_LENGTH = 20
# keys.budgets' units, with ASCII digits and no spaces around: the pattern the schema publishes is the one held.
_DURATION_UNITS = "secs|sec|s|mins|min|m|hrs|hr|h|d|w|mo"

# -- fields -------------------------------------------------------------------------------------------------------------


class Money(serializers.DecimalField):
    """Dollars in: a JSON number, never negative, exact (the parser reads it as a Decimal), as wide as a MoneyField.
    Out: the Decimal itself, which the project's renderer writes as a JSON number with its own digits."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        super().__init__(max_digits=38, decimal_places=20, coerce_to_string=False, **kwargs)

    def to_representation(self, value):
        return value


class DurationText(serializers.CharField):
    """ "30s", "20m", "30min", "30h", "30d", "2w", "1mo" (and "never" where `allow_never`), ending before year 9999."""

    def __init__(self, *, allow_never: bool = False, **kwargs):
        self.allow_never = allow_never
        pattern = rf"0*[1-9][0-9]*(?:{_DURATION_UNITS})"
        if allow_never:
            pattern = rf"{NEVER}|{pattern}"
        shape = RegexValidator(rf"^(?:{pattern})\Z", "Not a duration: use e.g. 30s, 30d, 1mo.")
        super().__init__(trim_whitespace=False, validators=[shape], **kwargs)

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        if self.allow_never and text == NEVER:
            return text
        try:
            parse_duration(text).after(timezone.now())
        except InvalidDuration as exc:
            raise serializers.ValidationError(str(exc)) from None
        except (OverflowError, ValueError):
            raise serializers.ValidationError(f"{text!r} is too long a duration.") from None
        return text


def _limit(max_value: int = BIG_LIMIT, **kwargs):
    return serializers.IntegerField(min_value=0, max_value=max_value, allow_null=True, required=False, **kwargs)


def _names(child=None, **kwargs):
    child = child or serializers.CharField()
    return serializers.ListField(child=child, allow_null=True, required=False, **kwargs)


class Aliases(serializers.DictField):
    """Requested model → model group: text on both sides."""

    child = serializers.CharField()

    def to_internal_value(self, data):
        check_storable_text(list(data) if isinstance(data, Mapping) else [])
        return super().to_internal_value(data)


def _mapping(**kwargs):
    return Aliases(allow_null=True, required=False, **kwargs)


def check_aliases(aliases):
    if not aliases:
        return aliases
    known = deployments().model_groups(aliases.values())
    for requested, group in aliases.items():
        if group not in known:
            raise serializers.ValidationError(f"{requested!r} maps to {group!r}, which is no model group.")
    return aliases


class StrictInput(JSONInput):
    """A JSON body that refuses unknown fields and values of the wrong JSON type, naming the field."""

    closed = True


class _Unused:
    """A field validator: no `model` row has this value in `field` yet (a new team's or user's id)."""

    def __init__(self, model, field: str, noun: str):
        self.model, self.field, self.noun = model, field, noun

    def __call__(self, value):
        if self.model.objects.filter(**{self.field: value}).exists():
            raise serializers.ValidationError(f"{self.noun} {value!r} already exists.")


def _by_id(settings_input: type, model, id_field: str, noun: str) -> tuple[type, type, type, type]:
    """The inputs of /new, /update, /info and /delete of teams or users, the same fields under each one's id: /new's
    optional unused id, /update's id and spend set by hand, /info's id in the query, /delete's list of ids."""
    new = {id_field: serializers.CharField(max_length=200, required=False, validators=[_Unused(model, id_field, noun)])}
    update = {id_field: serializers.CharField(max_length=200), "spend": Money(required=False)}
    ids = {f"{id_field}s": serializers.ListField(child=serializers.CharField(), allow_empty=False)}
    return (
        type(f"{noun}NewInput", (settings_input,), new),
        type(f"{noun}UpdateInput", (settings_input,), update),
        type(f"{noun}RefInput", (QueryInput,), {id_field: serializers.CharField()}),
        type(f"{noun}DeleteInput", (StrictInput,), ids),
    )


# -- keys ---------------------------------------------------------------------------------------------------------------


class ModelBudgets(serializers.DictField):
    """A key's per-model budgets, as LiteLLM writes them; amounts kept as their exact digits (money is never a
    float), which keys.budgets reads back as Decimals."""

    def to_internal_value(self, data):
        budgets = super().to_internal_value(data)
        check_storable_text(budgets)
        try:
            check_model_budgets(budgets)
        except InvalidModelBudget as exc:
            raise serializers.ValidationError(str(exc)) from None
        return {model: _exact(entry) for model, entry in budgets.items()}


def _exact(value):
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, Mapping):
        return {name: _exact(item) for name, item in value.items()}
    return value


def _per_model(**kwargs):
    """Model group → a limit (a key's model_rpm_limit, model_tpm_limit)."""
    limit = serializers.IntegerField(min_value=0, max_value=BIG_LIMIT)
    return serializers.DictField(child=limit, allow_null=True, required=False, **kwargs)


# A key's allowed_routes entry: a path, or one of LiteLLM's route groups (keys.routes).
_ROUTE = serializers.RegexField(
    rf"^(?:/[^\x00-\x20]*|{'|'.join(ROUTE_GROUPS)})\Z",
    max_length=200,
    error_messages={"invalid": f"Not a route: give a path (/chat/completions) or a group ({', '.join(ROUTE_GROUPS)})."},
)
# A key's enforced_params entry: a body param, "metadata.generation_name" for one inside another.
_PARAM = serializers.RegexField(
    r"^[^.\x00-\x20]+(?:\.[^.\x00-\x20]+)*\Z",
    max_length=200,
    error_messages={"invalid": 'Not a param: a name, or names joined by "." ("metadata.generation_name").'},
)


class BudgetLimitsInput(StrictInput):
    """A budget and rate limits as a key and a customers' budget take them."""

    max_budget = Money(allow_null=True, required=False)
    soft_budget = Money(allow_null=True, required=False)
    budget_duration = DurationText(max_length=DURATION_LENGTH, allow_null=True, allow_blank=True, required=False)
    tpm_limit = _limit()
    rpm_limit = _limit()
    max_parallel_requests = _limit(LIMIT)


class KeySettingsInput(BudgetLimitsInput):
    key_alias = serializers.CharField(max_length=200, allow_blank=True, allow_null=True, required=False)
    models = _names()
    aliases = _mapping()
    config = JSONObject(allow_null=True, required=False)
    metadata = JSONObject(allow_null=True, required=False)
    duration = DurationText(allow_never=True, allow_null=True, required=False)
    blocked = serializers.BooleanField(required=False)
    user_id = serializers.CharField(max_length=200, allow_null=True, required=False)
    team_id = serializers.CharField(max_length=200, allow_null=True, required=False)
    spend = Money(required=False, help_text="Set by hand: written to the ledger as an adjustment.")
    allowed_routes = _names(child=_ROUTE, help_text="Paths or route groups the key may call; empty: every route.")
    enforced_params = _names(child=_PARAM, help_text="Body params every call must carry; a call without one: 400.")
    permissions = JSONObject(
        allow_null=True,
        required=False,
        help_text='LiteLLM\'s key permissions. {"get_spend_routes": true} lets the key read /global/spend/*.',
    )

    tags = _names(child=serializers.CharField(max_length=200), help_text="Tags every call with this key carries.")
    model_max_budget = ModelBudgets(
        allow_null=True,
        required=False,
        help_text='Model group → {"budget_limit": USD, "time_period": "1d"} (or USD alone): a budget per model.',
    )
    model_rpm_limit = _per_model(help_text="Model group → requests per minute.")
    model_tpm_limit = _per_model(help_text="Model group → tokens per minute.")

    def validate_aliases(self, aliases):
        return check_aliases(aliases)

    def validate_permissions(self, permissions):
        if permissions and not isinstance(permissions.get("get_spend_routes", False), bool):
            raise serializers.ValidationError("get_spend_routes: expected a JSON boolean.")
        return permissions

    def validate_team_id(self, team_id):
        if team_id and not Team.objects.filter(team_id=team_id).exists():
            raise serializers.ValidationError(f"No team {team_id!r}.")
        return team_id


class _UnusedKey:
    """A chosen secret no key has (LiteLLM's caller-chosen `key`) and that is not the master key."""

    def __call__(self, raw_key):
        if is_master_key(raw_key) or key_in_use(raw_key):
            raise serializers.ValidationError("This key is already in use: choose another.")


class KeyGenerateInput(KeySettingsInput):
    key = serializers.RegexField(
        r"^sk-[A-Za-z0-9_.\-]+\Z",
        max_length=200,
        required=False,
        validators=[_UnusedKey()],
        error_messages={"invalid": 'A key is "sk-" and letters, digits, "_", "-" or ".".'},
        help_text="A secret of your choosing (stored hashed, as a made one); made up when not given.",
    )


class KeyUpdateInput(KeySettingsInput):
    key = serializers.CharField()


class KeyRegenerateBody(KeySettingsInput):
    """/key/{key}/regenerate's body: the settings to change with the new secret; the key is named in the path."""


class KeyRegenerateInput(KeyRegenerateBody):
    key = serializers.CharField()


class KeyRefInput(StrictInput):
    key = serializers.CharField()


class KeyRefQuery(QueryInput):
    key = serializers.CharField(required=False, help_text="Required with the master key; a key reads itself without.")


class KeyDeleteInput(StrictInput):
    keys = serializers.ListField(child=serializers.CharField(), allow_empty=False)


class KeyListInput(QueryInput):
    page = serializers.IntegerField(min_value=1, max_value=LIMIT, default=1)
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
    expires = serializers.DateTimeField(allow_null=True)
    models = serializers.ListField()
    aliases = serializers.DictField()
    config = serializers.DictField()
    user_id = serializers.CharField(allow_null=True)
    team_id = serializers.CharField(allow_null=True)
    max_budget = Money(allow_null=True)
    soft_budget = Money(allow_null=True)
    soft_budget_alerted_at = serializers.DateTimeField(allow_null=True)
    budget_duration = serializers.CharField(allow_null=True)
    budget_reset_at = serializers.DateTimeField(allow_null=True)
    tpm_limit = serializers.IntegerField(allow_null=True)
    rpm_limit = serializers.IntegerField(allow_null=True)
    max_parallel_requests = serializers.IntegerField(allow_null=True)
    metadata = serializers.DictField()
    blocked = serializers.BooleanField()
    allowed_routes = serializers.ListField(child=serializers.CharField())
    enforced_params = serializers.ListField(child=serializers.CharField())
    permissions = serializers.DictField()
    tags = serializers.ListField(child=serializers.CharField())
    model_max_budget = serializers.DictField()
    model_rpm_limit = serializers.DictField(child=serializers.IntegerField())
    model_tpm_limit = serializers.DictField(child=serializers.IntegerField())
    model_spend = serializers.DictField(
        child=Money(), help_text="Model group → the key's spend on it, for each one it has a budget for."
    )
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
    budget_duration = DurationText(max_length=DURATION_LENGTH, allow_null=True, allow_blank=True, required=False)
    tpm_limit = _limit()
    rpm_limit = _limit()
    max_parallel_requests = _limit(LIMIT)
    metadata = JSONObject(allow_null=True, required=False)
    blocked = serializers.BooleanField(required=False)
    members = _names(help_text="user_ids")
    organization_id = serializers.CharField(
        max_length=200, allow_null=True, required=False, validators=[known_organization]
    )

    def validate_model_aliases(self, aliases):
        return check_aliases(aliases)


_TeamNewInput, TeamUpdateInput, TeamRefInput, TeamDeleteInput = _by_id(TeamSettingsInput, Team, "team_id", "Team")

MEMBER_ROLES = ("admin", "user")


class MemberRefInput(StrictInput):
    """A user named by user_id or, lacking one, by user_email (LiteLLM's Member)."""

    user_id = serializers.CharField(max_length=200, required=False)
    user_email = serializers.EmailField(required=False)

    def validate(self, data):
        if not data.get("user_id") and not data.get("user_email"):
            raise serializers.ValidationError({"user_id": ["Give user_id or user_email."]})
        return data


class MemberInput(MemberRefInput):
    role = serializers.ChoiceField(choices=MEMBER_ROLES)


# MemberInput's request component (TeamNewInput's members_with_roles makes it).
_MEMBER = {"$ref": "#/components/schemas/MemberInputRequest"}


@extend_schema_field({"oneOf": [_MEMBER, {"type": "array", "items": _MEMBER, "minItems": 1}]})
class OneOrMoreMembers(serializers.Field):
    """A member, or a list of them (LiteLLM's /team/member_add takes either)."""

    def to_internal_value(self, data):
        members = [data] if isinstance(data, Mapping) else data
        if not isinstance(members, list) or not members:
            raise serializers.ValidationError("Expected a member object or a non-empty list of them.")
        return serializers.ListSerializer(child=MemberInput()).run_validation(members)


class TeamNewInput(_TeamNewInput):
    members_with_roles = MemberInput(many=True, required=False)


class TeamRefBody(StrictInput):
    team_id = serializers.CharField(max_length=200)


class TeamMemberAddInput(TeamRefBody):
    member = OneOrMoreMembers()


class TeamMemberDeleteInput(TeamRefBody, MemberRefInput):
    pass


class TeamMemberUpdateInput(TeamRefBody, MemberInput):
    pass


class MemberOutput(serializers.Serializer):
    role = serializers.ChoiceField(choices=MEMBER_ROLES)
    user_id = serializers.CharField()
    user_email = serializers.CharField(allow_null=True)


class TeamOutput(serializers.Serializer):
    team_id = serializers.CharField()
    team_alias = serializers.CharField()
    models = serializers.ListField()
    model_aliases = serializers.DictField()
    max_budget = Money(allow_null=True)
    spend = Money(source="live_spend")
    budget_duration = serializers.CharField()
    budget_reset_at = serializers.DateTimeField(allow_null=True)
    tpm_limit = serializers.IntegerField(allow_null=True)
    rpm_limit = serializers.IntegerField(allow_null=True)
    max_parallel_requests = serializers.IntegerField(allow_null=True)
    metadata = serializers.DictField()
    blocked = serializers.BooleanField()
    organization_id = serializers.CharField(allow_null=True)
    members = serializers.ListField(child=serializers.CharField(), source="member_ids")
    members_with_roles = MemberOutput(many=True)
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
    user_role = serializers.ChoiceField(choices=InternalUser.Role.choices, required=False)
    models = _names()
    max_budget = Money(allow_null=True, required=False)
    tpm_limit = _limit()
    rpm_limit = _limit()
    max_parallel_requests = _limit(LIMIT)
    budget_duration = DurationText(max_length=DURATION_LENGTH, allow_null=True, allow_blank=True, required=False)
    metadata = JSONObject(allow_null=True, required=False)
    teams = _names(help_text="team_ids")

    def validate_teams(self, team_ids):
        if team_ids:
            known = set(Team.objects.filter(team_id__in=team_ids).values_list("team_id", flat=True))
            missing = [team_id for team_id in team_ids if team_id not in known]
            if missing:
                raise serializers.ValidationError(f"No team {missing[0]!r}.")
        return team_ids


_UserNewInput, UserUpdateInput, UserRefInput, UserDeleteInput = _by_id(
    UserSettingsInput, InternalUser, "user_id", "User"
)


class UserNewInput(_UserNewInput):
    auto_create_key = serializers.BooleanField(default=True)


class UserListInput(QueryInput):
    page = serializers.IntegerField(min_value=1, max_value=LIMIT, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=100, default=25)


class UserOutput(serializers.Serializer):
    user_id = serializers.CharField()
    user_email = serializers.CharField()
    user_role = serializers.ChoiceField(choices=InternalUser.Role.choices)
    models = serializers.ListField()
    max_budget = Money(allow_null=True)
    tpm_limit = serializers.IntegerField(allow_null=True)
    rpm_limit = serializers.IntegerField(allow_null=True)
    max_parallel_requests = serializers.IntegerField(allow_null=True)
    spend = Money(source="live_spend")
    budget_duration = serializers.CharField()
    budget_reset_at = serializers.DateTimeField(allow_null=True)
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


# -- team members -------------------------------------------------------------------------------------------------------


class TeamMemberAddOutput(TeamOutput):
    """The team as it is now, and the users added (LiteLLM's TeamAddMemberResponse)."""

    updated_users = UserOutput(many=True)


class TeamMemberUpdateOutput(serializers.Serializer):
    team_id = serializers.CharField()
    user_id = serializers.CharField()
    user_email = serializers.CharField(allow_null=True)
    role = serializers.ChoiceField(choices=MEMBER_ROLES)
