from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path
from django.views.defaults import page_not_found
from drf_spectacular.views import SpectacularAPIView

from gateway import sso, two_factor
from gateway.api.urls import bare_and_v1
from gateway.metrics_scrape import metrics_view
from gateway.proxy import views as proxy
from gateway.proxy.errors import NotFound, error_response
from gateway.proxy.fronts import views as fronts

proxy_patterns = [
    path("chat/completions", proxy.chat_completions, name="chat-completions"),
    path("completions", proxy.completions, name="completions"),
    path("embeddings", proxy.embeddings, name="embeddings"),
    path("models", proxy.list_models, name="models"),
    path("messages", fronts.anthropic_messages, name="messages"),
    path("messages/count_tokens", fronts.anthropic_count_tokens, name="messages-count-tokens"),
    path("responses", fronts.responses, name="responses"),
]

urlpatterns = [
    *bare_and_v1(proxy_patterns, "v1"),
    # Azure-style clients address the deployment in the path.
    path("openai/deployments/<str:deployment>/chat/completions", proxy.chat_completions),
    path("openai/deployments/<str:deployment>/completions", proxy.completions),
    path("openai/deployments/<str:deployment>/embeddings", proxy.embeddings),
    path("health", proxy.health, name="health"),
    path("health/liveliness", proxy.liveliness, name="health-liveliness"),
    path("health/readiness", proxy.readiness, name="health-readiness"),
    path("debug/asyncio-tasks", proxy.asyncio_tasks, name="debug-asyncio-tasks"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("gateway.api.urls")),
    path("", include("keys.api.urls")),
    path("", include("spend.api.urls")),
    # The management API's OpenAPI schema: readable without a key, like LiteLLM's docs.
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The admin's login page with "Sign in with SSO", and the OpenID Connect redirects (gateway/sso.py).
    path("admin/login/", sso.admin_login),
    path("admin/two-factor/", admin.site.admin_view(two_factor.enrol), name="two_factor"),
    path("oidc/authenticate/", sso.SignIn.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", sso.SignInCallback.as_view(), name="oidc_authentication_callback"),
    path("admin/", admin.site.urls),
    # Admin assets are served by the app itself: no separate web server is needed in front of it.
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
]


def not_found(request, exception=None):
    """An unknown path answers OpenAI's error shape, as every refusal does: a script calling an endpoint Tollgate lacks
    reads a JSON 404 it can parse, not Django's HTML page. The admin and its assets keep the HTML page."""
    if request.path.startswith(("/admin/", "/static/")):
        return page_not_found(request, exception)
    return error_response(NotFound(f"No endpoint {request.method} {request.path}"))


handler404 = not_found
