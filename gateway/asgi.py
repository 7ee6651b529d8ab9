"""ASGI entry point: `uvicorn gateway.asgi:application` (what `manage.py serve` runs).

The OpenAI endpoints go to a handler without middleware: sessions, CSRF, messages and auth serve browsers, and
each of Django's sync-capable middlewares costs a thread hop per request (profiled: 59 % of the event loop's
time on a proxied call). The admin and the management API keep the full chain.

At start-up (ASGI lifespan) the process loads its routing table and cost map, then freezes what it has loaded out
of the cyclic GC (gateway/memory.py). Without REDIS_URL (no Celery beat) it also runs the periodic tasks itself
(gateway/periodic.py) until shutdown. At shutdown it closes what it opened: the sync loops, the ledger once every
queued charge is written, the upstream pool and the Redis connections.
"""

import asyncio
import functools
import logging
import os

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import ResolverMatch, resolve, set_script_prefix, set_urlconf
from django.utils.log import log_response

from gateway.memory import freeze_long_lived_objects, keep_heap_small
from gateway.periodic import start_periodic_tasks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
keep_heap_small()  # every server process imports this module

django_application = get_asgi_application()
logger = logging.getLogger(__name__)

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
    # The front protocols (gateway/proxy/fronts): Anthropic's Messages API (and its count_tokens), OpenAI's Responses.
    "/v1/messages",
    "/v1/responses",
    "/messages",
    "/responses",
    # Counts the event loop's tasks: served without the middleware's thread hops, on the loop it describes.
    "/debug/asyncio-tasks",
)


class ProxyHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain, and no thread hop per request.

    Django runs each request in a ThreadSensitiveContext, so that its sync code gets a thread of its own (a thread
    started per request, the event loop waiting for it: 13 % of the loop's time, profiled), and it sends
    request_started and closes the response through sync_to_async (two more hops: 7 %). The proxy's views are
    async and reach the database only from threads of their own (the key cache's, the ledger's), which keep their
    own connections, and use no Django cache or per-request urlconf: the receivers of request_started and
    request_finished (reset the query log; close this context's stale database connections, which are none; close
    the caches; reset the urlconf) have nothing to do here, and are not sent. Sent inline, they took 5 % of the
    event loop's time at 16 connections (56 us a call of 1.13 ms, py-spy), mostly `connections.all()` making this
    context's connection handles to look at.
    """

    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        # Django's ASGIHandler.handle (5.2), without the request signals (see above).
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                await self.send_response(error_response, send)
                _close_without_signal(error_response)
                return
            await self._respond(request, receive, send)
        finally:
            body_file.close()

    async def _respond(self, request, receive, send) -> None:
        # Django runs the view and a disconnect listener as two new tasks and waits for either to end. Here the
        # view runs in this task and the listener cancels it if the client leaves first: a task and a pass of the
        # event loop fewer before the view starts (0.12 to 0.17 ms, measured in the server). A cancellation from
        # the server itself (stopping) goes on up once the view has cleaned up, where Django's would leave the
        # view's task running.
        serving = asyncio.current_task()
        guarding, client_left = True, False

        def on_listener_done(listener: asyncio.Task) -> None:
            nonlocal client_left
            if guarding and not listener.cancelled():
                client_left = True
                serving.cancel()

        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        listener.add_done_callback(on_listener_done)
        response = None
        try:
            response = await self.run_get_response(request)
            await self.send_response(response, send)
        except asyncio.CancelledError:
            if not client_left:
                raise
            serving.uncancel()
        finally:
            guarding = False
            listener.cancel()
            if response is not None:
                _close_without_signal(response)
        if client_left and not isinstance(listener.exception(), RequestAborted):
            raise listener.exception()  # not a disconnect: an ASGI message Django says cannot come

    async def get_response_async(self, request):
        # BaseHandler.get_response_async, with an error response logged directly (a refused call is a hop less).
        set_urlconf(settings.ROOT_URLCONF)
        response = await self._middleware_chain(request)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        return response

    async def _get_response_async(self, request):
        # BaseHandler._get_response_async without what no proxy view uses (view and template-response middleware,
        # atomic requests, a sync view's thread, a thread hop to ask the absent exception middleware) and with each
        # path resolved once: 20 us a call otherwise, measured.
        match = _resolve(request.path_info, settings.ROOT_URLCONF)
        request.resolver_match = match
        response = await match.func(request, *match.args, **match.kwargs)
        self.check_response(response, match.func)
        return response

    def load_middleware(self, is_async=False):
        # No middleware: the chain is the view's call alone (an ASGI handler always loads it async), and nothing
        # reads the view, template-response and exception middleware lists BaseHandler would fill.
        self._middleware_chain = convert_exception_to_response(self._get_response_async)


def _close_without_signal(response) -> None:
    """HttpResponseBase.close() less its request_finished: the response's closers run (a stream's relay, the
    request's files), a failing one not stopping the others (Django's close() passes over it; here it is logged)."""
    for closer in response._resource_closers:
        try:
            closer()
        except Exception:
            logger.exception("closing a proxied response failed")
    response._resource_closers.clear()
    response.closed = True


@functools.lru_cache(maxsize=256)  # the proxy's paths are few; Azure's name a deployment each
def _resolve(path: str, urlconf: str) -> ResolverMatch:
    match = resolve(path, urlconf)
    if not iscoroutinefunction(match.func):
        raise ImproperlyConfigured(f"{path} is served by the proxy's handler, which runs async views only")
    return match


proxy_application = ProxyHandler()


async def lifespan(receive, send) -> None:
    """uvicorn's start-up and shutdown messages: the first call does not wait for the routing table to load."""
    from gateway.proxy.state import gateway_state  # needs the apps loaded: imported once, at start-up

    periodic = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await gateway_state()
            except Exception:
                logger.exception("the routing table did not load at start-up: the first call tries again")
            freeze_long_lived_objects()
            periodic = start_periodic_tasks()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if periodic is not None:
                await periodic.stop()
            await close_process_resources()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def close_process_resources() -> None:
    """Close what serving opened, each after what still uses it: the sync loops first (they renew leases in Redis
    and sweep journals through the ledger), then the ledger once the charges queued in it are settled (closing it
    before would refuse them), then the upstream pool and the Redis connections."""
    from gateway.proxy.state import close_states  # these need the apps loaded: imported at shutdown
    from gateway.proxy.upstream import close_upstream_pool
    from keys.limits_redis import close_redis_counters
    from keys.throttle import close_auth_failures
    from spend.ledger import close_ledgers, drain_ledger

    close_states()
    await drain_ledger()
    await asyncio.to_thread(close_ledgers)  # waits for the writer thread to close its connection
    await close_upstream_pool()
    await close_redis_counters()
    await close_auth_failures()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith(_PROXY_PATHS):
        return await proxy_application(scope, receive, send)
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    return await django_application(scope, receive, send)
