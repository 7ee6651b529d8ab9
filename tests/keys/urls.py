from django.urls import include, path

urlpatterns = [path("", include("keys.api.urls"))]
