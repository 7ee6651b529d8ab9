from django.urls import path

from spend.api import report_views as reports
from spend.api import views

app_name = "spend-api"

urlpatterns = [
    path("spend/logs", views.spend_logs, name="spend-logs"),
    path("global/spend/report", views.global_spend_report, name="global-spend-report"),
    path("spend/calculate", views.spend_calculate, name="spend-calculate"),
    path("spend/tags", reports.spend_tags, name="spend-tags"),
    path("global/spend", reports.global_spend, name="global-spend"),
    path("global/spend/keys", reports.global_spend_keys, name="global-spend-keys"),
    path("global/spend/teams", reports.global_spend_teams, name="global-spend-teams"),
    path("global/spend/models", reports.global_spend_models, name="global-spend-models"),
    path("global/spend/end_users", reports.global_spend_end_users, name="global-spend-end-users"),
    path("global/spend/tags", reports.global_spend_tags, name="global-spend-tags"),
    path("global/spend/logs", reports.global_spend_logs, name="global-spend-logs"),
    path("user/daily/activity", reports.daily_activity, name="user-daily-activity"),
]
