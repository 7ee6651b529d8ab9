from django.urls import include, path

from gateway.api import views

model_patterns = [
    path("model/new", views.model_new, name="model-new"),
    path("model/update", views.model_update, name="model-update"),
    path("model/delete", views.model_delete, name="model-delete"),
    path("model/info", views.model_info, name="model-info"),
]

urlpatterns = [
    path("", include(model_patterns)),
    path("v1/", include((model_patterns, "v1-models"))),
]
