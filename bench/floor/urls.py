from django.urls import path

from bench.floor import views

urlpatterns = [
    path("v1/chat/completions", views.forward),
    path("stream/v1/chat/completions", views.forward_stream),
    path("health/liveliness", views.liveliness),
    path("floor/tuning", views.tuning),
]
