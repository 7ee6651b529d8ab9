"""The spend URLs as the gateway mounts them, without the proxy: these tests need only the admin and the API."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("spend.api.urls")),
    path("admin/", admin.site.urls),
]
