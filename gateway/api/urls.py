from django.urls import include, path

from gateway.api import views


def bare_and_v1(patterns: list, v1_namespace: str) -> list:
    """The routes at the root and again under /v1/, as LiteLLM answers its OpenAI-style endpoints; the /v1/ copies
    are reversed through their own namespace."""
    return [path("", include(patterns)), path("v1/", include((patterns, v1_namespace)))]


model_patterns = [
    path("model/new", views.model_new, name="model-new"),
    path("model/update", views.model_update, name="model-update"),
    path("model/delete", views.model_delete, name="model-delete"),
    path("model/info", views.model_info, name="model-info"),
]

urlpatterns = bare_and_v1(model_patterns, "v1-models")
