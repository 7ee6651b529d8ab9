"""LiteLLM's reporting family: /global/spend, its /keys, /teams, /models, /end_users, /tags and /logs, /spend/tags
and /user/daily/activity (master key; CSV with ?format=csv). Every answer counts every committed call
(spend.reports) and says as of when in X-Tollgate-As-Of."""

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, renderer_classes

from spend import reports
from spend.api import report_serializers as r
from spend.api.views import _RENDERERS, CSV, INVALID, NO_FORMAT, _json_or_csv, _query, answer


def _window(query: dict) -> tuple:
    return query.pop("start_date"), query.pop("end_date")


def report_view(query_input, json_output, build, name: str):
    """A GET view that validates its query, builds one spend.reports report from it and answers it as JSON or CSV."""

    @_json_or_csv(query_input, json_output)
    def view(request):
        query = _query(query_input, request)
        return answer(request, build(*_window(query), **query), name)

    view.cls.__name__ = view.__name__ = name
    return view


global_spend = report_view(r.WindowIn, r.GlobalSpendOut, reports.global_spend, "global_spend")
global_spend_keys = report_view(r.KeysIn, r.KeySpendOut(many=True), reports.top_keys, "global_spend_keys")
global_spend_teams = report_view(r.WindowIn, r.TeamSpendOut, reports.team_spend, "global_spend_teams")
global_spend_models = report_view(r.ModelsIn, r.ModelSpendOut(many=True), reports.top_models, "global_spend_models")
global_spend_logs = report_view(r.DailySpendIn, r.DaySpendOut(many=True), reports.daily_spend, "global_spend_logs")
spend_tags = report_view(r.WindowIn, r.TagSpendOut(many=True), reports.spend_tags, "spend_tags")
global_spend_tags = report_view(r.TagsIn, r.GlobalTagsOut, reports.global_spend_tags, "global_spend_tags")
daily_activity = report_view(r.ActivityIn, r.ActivityOut, reports.daily_activity, "daily_activity")


@extend_schema(
    request=r.EndUsersIn,
    responses={(200, "application/json"): r.EndUserSpendOut(many=True), (200, "text/csv"): CSV, 400: INVALID,
               404: NO_FORMAT},
)  # fmt: skip
@api_view(["POST"])
@renderer_classes(_RENDERERS)
def global_spend_end_users(request):
    """LiteLLM's POST /global/spend/end_users: a body, not a query (an empty body: the last 30 days, every key)."""
    body = r.EndUsersIn(data=request.data)
    body.is_valid(raise_exception=True)
    query = dict(body.validated_data)
    return answer(request, reports.end_user_spend(*_window(query), query["api_key"]), "global_spend_end_users")
