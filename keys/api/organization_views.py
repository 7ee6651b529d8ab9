"""LiteLLM's /organization/* (master key): organizations, the level above teams, with their budgets and members.

Each view parses with its input serializer, calls one service, and renders with its output serializer. As LiteLLM
answers them: /organization/info by GET (?organization_id=) and by its deprecated POST (a list), /organization/update
by PATCH (or POST), /organization/delete by DELETE (or POST), each with the organizations in full.
"""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from keys import organizations as services
from keys.api import organizations as s
from keys.api.views import ACTOR, INVALID, NOT_FOUND, ManagementView, _all_found, _found, _input
from keys.models import Organization
from keys.selectors import user_with_spend


def _shown(organization: Organization) -> dict:
    return s.OrganizationOutput(services.organization_with_spend(organization)).data


def _listed(organizations) -> list[dict]:
    return [_shown(organization) for organization in organizations]


class OrganizationNewView(ManagementView):
    @extend_schema(request=s.OrganizationNewInput, responses={200: s.OrganizationOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        data = _input(s.OrganizationNewInput, request.data)
        return Response(_shown(services.create_organization(data, actor=ACTOR)))


class OrganizationInfoView(ManagementView):
    @extend_schema(
        parameters=[s.OrganizationRefQuery], responses={200: s.OrganizationOutput, 400: INVALID, 404: NOT_FOUND}
    )
    def get(self, request):
        organization_id = _input(s.OrganizationRefQuery, request.query_params.dict())["organization_id"]
        return Response(_shown(_found(services.find_organization, organization_id)))

    @extend_schema(
        request=s.OrganizationInfoInput,
        responses={200: s.OrganizationOutput(many=True), 400: INVALID, 404: NOT_FOUND},
        description="Deprecated by LiteLLM for GET ?organization_id=; kept for the scripts that use it.",
    )
    def post(self, request):
        ids = _input(s.OrganizationInfoInput, request.data)["organizations"]
        return Response(_listed(_all_found(Organization, "organization_id", ids, "organizations")))


class OrganizationUpdateView(ManagementView):
    @extend_schema(
        request=s.OrganizationUpdateInput, responses={200: s.OrganizationOutput, 400: INVALID, 404: NOT_FOUND}
    )
    def patch(self, request):
        data = dict(_input(s.OrganizationUpdateInput, request.data))
        organization = _found(services.find_organization, data.pop("organization_id"))
        return Response(_shown(services.update_organization(organization, data, actor=ACTOR)))

    post = patch


class OrganizationDeleteView(ManagementView):
    @extend_schema(
        request=s.OrganizationDeleteInput,
        responses={200: s.OrganizationOutput(many=True), 400: INVALID, 404: NOT_FOUND},
    )
    def delete(self, request):
        ids = _input(s.OrganizationDeleteInput, request.data)["organization_ids"]
        organizations = _all_found(Organization, "organization_id", ids, "organization_ids")
        shown = _listed(organizations)
        services.delete_organizations(organizations, actor=ACTOR)
        return Response(shown)

    post = delete


class OrganizationListView(ManagementView):
    @extend_schema(responses={200: s.OrganizationOutput(many=True)})
    def get(self, request):
        return Response(_listed(Organization.objects.select_related("budget")))


class OrganizationMemberAddView(ManagementView):
    @extend_schema(request=s.MemberAddInput, responses={200: s.MemberAddOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        data = _input(s.MemberAddInput, request.data)
        organization = _found(services.find_organization, data["organization_id"])
        users, memberships = services.add_members(organization, data["member"], actor=ACTOR)
        added = {
            "organization_id": organization.organization_id,
            "updated_users": [user_with_spend(user) for user in users],
            "updated_organization_memberships": memberships,
        }
        return Response(s.MemberAddOutput(added).data)
