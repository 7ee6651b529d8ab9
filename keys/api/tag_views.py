"""LiteLLM's /tag/* (master key): tags as budget holders. Each view parses with its input serializer, calls one
service, and renders with its output serializer; a tag's `spend` is the one its next call is checked against."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from keys import tag_services as services
from keys.api import tag_serializers as s
from keys.api.views import ACTOR, INVALID, NOT_FOUND, ManagementView, _all_found, _found, _input
from keys.holders import tag_limits
from keys.limits import live_spend
from keys.models import Tag


def _shown(tag: Tag) -> dict:
    tag.live_spend = live_spend(tag_limits(tag))
    return s.TagOutput(tag).data


class TagNewView(ManagementView):
    @extend_schema(request=s.TagNewInput, responses={200: s.TagOutput, 400: INVALID})
    def post(self, request):
        return Response(_shown(services.create_tag(_input(s.TagNewInput, request.data), actor=ACTOR)))


class TagInfoView(ManagementView):
    @extend_schema(request=s.TagInfoInput, responses={200: s.TagOutput(many=True), 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        names = _input(s.TagInfoInput, request.data)["names"]
        return Response({tag.name: _shown(tag) for tag in _all_found(Tag, "name", names, "names")})


class TagUpdateView(ManagementView):
    @extend_schema(request=s.TagUpdateInput, responses={200: s.TagOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        data = dict(_input(s.TagUpdateInput, request.data))
        tag = _found(services.find_tag, data.pop("name"))
        return Response(_shown(services.update_tag(tag, data, actor=ACTOR)))


class TagDeleteView(ManagementView):
    @extend_schema(request=s.TagDeleteInput, responses={200: s.TagOutput, 400: INVALID, 404: NOT_FOUND})
    def post(self, request):
        tag = _found(services.find_tag, _input(s.TagDeleteInput, request.data)["name"])
        shown = _shown(tag)
        services.delete_tags([tag], actor=ACTOR)
        return Response(shown)


class TagListView(ManagementView):
    @extend_schema(responses={200: s.TagOutput(many=True)})
    def get(self, request):
        return Response([_shown(tag) for tag in Tag.objects.all()])
