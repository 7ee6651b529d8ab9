"""ASGI entry point: `uvicorn gateway.asgi:application` (what `manage.py serve` runs).

The OpenAI endpoints go to a handler without middleware: sessions, CSRF, messages and auth serve browsers, and
each of Django's sync-capable middlewares costs a thread hop per request (profiled: 59 % of the event loop's
time on a proxied call). The admin and the management API keep the full chain.
"""

import os

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

django_application = get_asgi_application()

_PROXY_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/models",
    "/openai/deployments/",
    # Counts the event loop's tasks: served without the middleware's thread hops, on the loop it describes.
    "/debug/asyncio-tasks",
)


class ProxyHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain, and no thread of its own per request."""

    async def __call__(self, scope, receive, send):
        # Django runs each request in a ThreadSensitiveContext, so that its sync code gets a thread of its own: a
        # thread started per request, the event loop waiting for it to start (profiled: 13 % of the loop's time).
        # The proxy's views are async and reach the database only from the ledger's and the sync threads; the
        # little sync work Django still does per request (signal receivers, response.close) shares one thread.
        await self.handle(scope, receive, send)

    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)


proxy_application = ProxyHandler()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith(_PROXY_PATHS):
        return await proxy_application(scope, receive, send)
    return await django_application(scope, receive, send)
