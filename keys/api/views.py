"""The key, team and user management API (LiteLLM's /key/*, /team/*, /user/*): the master key's, but for a virtual
key reading its own /key/info.

Each view parses with its input serializer, calls one service or selector, and renders with its output serializer.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from django.db import models
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from keys import selectors, services
from keys.api import serializers as s
from keys.api.parsers import PARSERS
from keys.auth import hash_key
from keys.models import InternalUser, Team

ACTOR = "master_key"
# Error statuses each operation declares; the schema gives them OpenAI's error body (gateway.api.schema).
INVALID = OpenApiResponse(description="Invalid input; `param` names the field.")
NOT_FOUND = OpenApiResponse(description="No such key, team or user; `param` names the field.")
FORBIDDEN = OpenApiResponse(description="A virtual key asked about another key, or a route it may not call.")


class ManagementView(APIView):
    parser_classes = PARSERS
    keys_may_call = False  # a virtual key may call it, about itself (keys.api.authentication)


def _input(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _found(lookup, value):
    try:
        return lookup(value)
    except services.NotFound as exc:
        raise exceptions.NotFound({exc.param: [str(exc)]}) from None


def _all_found(model, field: str, values: list[str], param: str) -> list:
    rows = list(model.objects.filter(**{f"{field}__in": values}))
    missing = set(values) - {getattr(row, field) for row in rows}
    if missing:
        raise exceptions.NotFound({param: [f"Not found: {', '.join(sorted(missing))}"]})
    return rows


def _generated(raw_key: str, key) -> dict:
    key.raw_key = raw_key
    return s.GeneratedKeyOutput(selectors.key_with_spend(key)).data


# -- teams and users: /info, /update and /delete take the same steps over either; a Payer names what differs -------


@dataclass(frozen=True)
class Payer:
    """A team or a user as its /info, /update and /delete see it: how it is found and shown, and its serializers."""

    noun: str
    model: type[models.Model]
    id_field: str
    find: Callable
    with_spend: Callable
    info: Callable
    update: Callable
    delete: Callable
    ref_input: type
    info_output: type
    update_input: type
    output: type
    delete_input: type
    delete_output: type


def _payer_views(payer: Payer) -> tuple[type, type, type]:
    """The /info, /update and /delete views of teams or users."""

    @extend_schema(parameters=[payer.ref_input], responses={200: payer.info_output, 400: INVALID, 404: NOT_FOUND})
    def get(self, request):
        row = _found(payer.find, _input(payer.ref_input, request.query_params.dict())[payer.id_field])
        return Response(payer.info_output(payer.info(row)).data)

    @extend_schema(request=payer.update_input, responses={200: payer.output, 400: INVALID, 404: NOT_FOUND})
    def update(self, request):
        data = dict(_input(payer.update_input, request.data))
        row = payer.update(_found(payer.find, data.pop(payer.id_field)), data, actor=ACTOR)
        return Response(payer.output(payer.with_spend(row)).data)

    @extend_schema(request=payer.delete_input, responses={200: payer.delete_output, 400: INVALID, 404: NOT_FOUND})
    def delete(self, request):
        # The body's `<id>s`, all found or none deleted; the output's one field (deleted_teams...) lists them.
        ids_field = f"{payer.id_field}s"
        rows = _all_found(payer.model, payer.id_field, _input(payer.delete_input, request.data)[ids_field], ids_field)
        (deleted_field,) = payer.delete_output().fields
        return Response(payer.delete_output({deleted_field: payer.delete(rows, actor=ACTOR)}).data)

    return (
        type(f"{payer.noun}InfoView", (ManagementView,), {"get": get}),
        type(f"{payer.noun}UpdateView", (ManagementView,), {"post": update}),
        type(f"{payer.noun}DeleteView", (ManagementView,), {"post": delete}),
    )


TEAM = Payer(
    "Team",
    Team,
    "team_id",
    services.find_team,
    selectors.team_with_spend,
    selectors.team_info,
    services.update_team,
    services.delete_teams,
    s.TeamRefInput,
    s.TeamInfoOutput,
    s.TeamUpdateInput,
    s.TeamOutput,
    s.TeamDeleteInput,
    s.TeamDeleteOutput,
)
USER = Payer(
    "User",
    InternalUser,
    "user_id",
    services.find_user,
    selectors.user_with_spend,
    selectors.user_info,
    services.update_user,
    services.delete_users,
    s.UserRefInput,
    s.UserInfoOutput,
    s.UserUpdateInput,
    s.UserOutput,
    s.UserDeleteInput,
    s.UserDeleteOutput,
)
TeamInfoView, TeamUpdateView, TeamDeleteView = _payer_views(TEAM)
UserInfoView, UserUpdateView, UserDeleteView = _payer_views(USER)


# -- keys ---------------------------------------------------------------------------------------------------------------


class KeyGenerateView(ManagementView):
    @extend_schema(request=s.KeyGenerateInput, responses={200: s.GeneratedKeyOutput, 400: INVALID})
    def post(self, request):
        data = _input(s.KeyGenerateInput, request.data)
        raw_key, key = services.generate_key(data, actor=ACTOR)
        return Response(_generated(raw_key, key))


def _key_asked(request, asked: str | None):
    """The key /key/info reads and the name it answers under: the one asked for with the master key; a virtual key's
    own (named by its identity, as LiteLLM's answer names it), which is all a virtual key may read."""
    caller = request.auth
    if caller.is_master:
        if asked is None:
            raise exceptions.ValidationError({"key": ["Required with the master key: the key to read."]})
        return _found(services.find_key, asked), asked
    key = _found(services.find_key, caller.key_hash)
    if asked is not None and asked != key.token_hash and hash_key(asked) != key.secret_hash:
        raise exceptions.PermissionDenied("A key may read only its own info: leave out `key`, or give its own.")
    return key, asked or key.token_hash


class KeyInfoView(ManagementView):
    keys_may_call = True

    @extend_schema(
        parameters=[s.KeyRefQuery],
        responses={200: s.KeyInfoOutput, 400: INVALID, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request):
        key, name = _key_asked(request, _input(s.KeyRefQuery, request.query_params.dict()).get("key"))
        return Response(s.KeyInfoOutput({"key": name, "info": selectors.key_with_spend(key)}).data)


class KeyUpdateView(ManagementView):
    @extend_schema(request=s.KeyUpdateInput, responses={200: s.KeyOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        data = dict(_input(s.KeyUpdateInput, request.data))
        key = _found(services.find_key, data.pop("key"))
        key = services.update_key(key, data, actor=ACTOR)
        return Response(s.KeyOutput(selectors.key_with_spend(key)).data)


def _regenerated(asked: str, data: dict) -> dict:
    raw_key, key = services.regenerate_key(_found(services.find_key, asked), data, actor=ACTOR)
    return _generated(raw_key, key)


class KeyRegenerateView(ManagementView):
    @extend_schema(request=s.KeyRegenerateInput, responses={200: s.GeneratedKeyOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        data = dict(_input(s.KeyRegenerateInput, request.data))
        return Response(_regenerated(data.pop("key"), data))


class KeyRegeneratePathView(ManagementView):
    """LiteLLM's /key/{key}/regenerate: the key (its secret or its token) in the path."""

    @extend_schema(
        operation_id="key_regenerate_by_path",
        request=s.KeyRegenerateBody,
        responses={200: s.GeneratedKeyOutput, 400: INVALID, 404: NOT_FOUND},
    )
    def post(self, request, key: str):
        return Response(_regenerated(key, dict(_input(s.KeyRegenerateBody, request.data))))


class KeyBlockView(ManagementView):
    blocked = True

    @extend_schema(request=s.KeyRefInput, responses={200: s.KeyOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        data = _input(s.KeyRefInput, request.data)
        key = _found(services.find_key, data["key"])
        action = "blocked" if self.blocked else "unblocked"
        key = services.update_key(key, {"blocked": self.blocked}, actor=ACTOR, action=action)
        return Response(s.KeyOutput(selectors.key_with_spend(key)).data)


class KeyUnblockView(KeyBlockView):
    blocked = False


class KeyDeleteView(ManagementView):
    @extend_schema(request=s.KeyDeleteInput, responses={200: s.KeyDeleteOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        data = _input(s.KeyDeleteInput, request.data)
        keys = [_found(services.find_key, key) for key in data["keys"]]
        deleted = services.delete_keys(keys, actor=ACTOR)
        return Response(s.KeyDeleteOutput({"deleted_keys": deleted}).data)


class KeyListView(ManagementView):
    @extend_schema(parameters=[s.KeyListInput], responses={200: s.KeyListOutput, 400: INVALID})
    def get(self, request):
        data = _input(s.KeyListInput, request.query_params.dict())
        filters = {name: data[name] for name in ("team_id", "user_id", "key_alias") if name in data}
        keys, total = selectors.key_page(filters, data["page"], data["size"])
        if data["return_full_object"]:
            listed = s.KeyOutput([selectors.key_with_spend(key) for key in keys], many=True).data
        else:
            listed = [key.token_hash for key in keys]
        page = {
            "keys": listed,
            "total_count": total,
            "current_page": data["page"],
            "total_pages": math.ceil(total / data["size"]),
        }
        return Response(s.KeyListOutput(page).data)


# -- teams --------------------------------------------------------------------------------------------------------------


class TeamNewView(ManagementView):
    @extend_schema(request=s.TeamNewInput, responses={200: s.TeamOutput, 400: INVALID})
    def post(self, request):
        team = services.create_team(_input(s.TeamNewInput, request.data), actor=ACTOR)
        return Response(s.TeamOutput(selectors.team_with_spend(team)).data)


class TeamListView(ManagementView):
    @extend_schema(responses={200: s.TeamOutput(many=True)})
    def get(self, request):
        teams = Team.objects.prefetch_related(*selectors.TEAM_MEMBERS)
        return Response(s.TeamOutput([selectors.team_with_spend(team) for team in teams], many=True).data)


class TeamBlockView(ManagementView):
    """Every key of a blocked team is refused at the proxy (403 team_blocked) until it is unblocked."""

    blocked = True

    @extend_schema(request=s.TeamRefBody, responses={200: s.TeamOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        team = _found(services.find_team, _input(s.TeamRefBody, request.data)["team_id"])
        action = "blocked" if self.blocked else "unblocked"
        team = services.update_team(team, {"blocked": self.blocked}, actor=ACTOR, action=action)
        return Response(s.TeamOutput(selectors.team_with_spend(team)).data)


class TeamUnblockView(TeamBlockView):
    blocked = False


# -- team members: LiteLLM's /team/member_add, /team/member_delete, /team/member_update ------------------------------


def _team_and_member(request, body_input) -> tuple[Team, dict]:
    member = dict(_input(body_input, request.data))
    return _found(services.find_team, member.pop("team_id")), member


class TeamMemberAddView(ManagementView):
    @extend_schema(request=s.TeamMemberAddInput, responses={200: s.TeamMemberAddOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        team, data = _team_and_member(request, s.TeamMemberAddInput)
        added = services.add_team_members(team, data["member"], actor=ACTOR)
        team = selectors.team_with_spend(services.find_team(team.team_id))
        team.updated_users = [selectors.user_with_spend(user) for user in added]
        return Response(s.TeamMemberAddOutput(team).data)


class TeamMemberDeleteView(ManagementView):
    @extend_schema(request=s.TeamMemberDeleteInput, responses={200: s.TeamOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        team, member = _team_and_member(request, s.TeamMemberDeleteInput)
        services.remove_team_member(team, member, actor=ACTOR)
        return Response(s.TeamOutput(selectors.team_with_spend(services.find_team(team.team_id))).data)


class TeamMemberUpdateView(ManagementView):
    @extend_schema(
        request=s.TeamMemberUpdateInput, responses={200: s.TeamMemberUpdateOutput, 400: INVALID, 404: NOT_FOUND}
    )
    def post(self, request):
        team, member = _team_and_member(request, s.TeamMemberUpdateInput)
        user = services.update_team_member(team, member, actor=ACTOR)
        shown = {"team_id": team.team_id, "user_id": user.user_id, "user_email": user.user_email or None}
        return Response(s.TeamMemberUpdateOutput({**shown, "role": member["role"]}).data)


# -- users --------------------------------------------------------------------------------------------------------------


class UserNewView(ManagementView):
    @extend_schema(request=s.UserNewInput, responses={200: s.NewUserOutput, 400: INVALID})
    def post(self, request):
        data = dict(_input(s.UserNewInput, request.data))
        user, user.raw_key, key = services.create_user(data, actor=ACTOR, with_key=data.pop("auto_create_key"))
        user.key_expires = key.expires if key else None
        return Response(s.NewUserOutput(selectors.user_with_spend(user)).data)


class UserListView(ManagementView):
    @extend_schema(parameters=[s.UserListInput], responses={200: s.UserListOutput, 400: INVALID})
    def get(self, request):
        data = _input(s.UserListInput, request.query_params.dict())
        users, total = selectors.user_page(data["page"], data["page_size"])
        page = {
            "users": [selectors.user_with_spend(user) for user in users],
            "total": total,
            "page": data["page"],
            "page_size": data["page_size"],
            "total_pages": math.ceil(total / data["page_size"]),
        }
        return Response(s.UserListOutput(page).data)
