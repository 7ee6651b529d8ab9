from django.urls import path

from spend.api import views

app_name = "spend-api"

urlpatterns = [
    path("spend/logs", views.spend_logs, name="spend-logs"),
    path("global/spend/report", views.global_spend_report, name="global-spend-report"),
    path("spend/calculate", views.spend_calculate, name="spend-calculate"),
]
