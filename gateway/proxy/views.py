"""The OpenAI-compatible endpoints: thin async views over the proxy service."""

import asyncio
import functools
import logging
import time
from collections import Counter

import orjson
from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from gateway.proxy import service
from gateway.proxy.errors import Forbidden, error_response, is_domain_error
from gateway.proxy.health import probe_health
from gateway.proxy.state import gateway_state
from spend.ledger import database_answers

logger = logging.getLogger(__name__)


def _proxied(call_type: str):
    """The view of one call type, on the OpenAI path and on Azure's, whose deployment in the URL names the model
    when the body does not."""

    @csrf_exempt
    @require_POST
    async def view(request, deployment: str = ""):
        return await service.handle(request, call_type, default_model=deployment)

    return view


chat_completions = _proxied("chat")
completions = _proxied("completion")
embeddings = _proxied("embedding")


def authenticated(*, master_only: bool = False):
    """The view is called with the request's caller as its second argument; a caller who may not (no key, a wrong
    one, a throttled address, or not the master key where `master_only`) is answered by the one error mapper."""

    def decorate(view):
        @functools.wraps(view)
        async def with_caller(request, *args, **kwargs):
            try:
                caller = await service.authenticate_request(request)
                if master_only and not caller.is_master:
                    raise Forbidden(f"Only the master key may read {request.path}.")
            except Exception as exc:
                if not is_domain_error(exc):
                    logger.exception("authenticating a request to %s failed unexpectedly", request.path)
                return error_response(exc)
            return await view(request, caller, *args, **kwargs)

        return with_caller

    return decorate


def _json(data, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


@require_GET
@authenticated()
async def list_models(request, caller):
    """The model groups this caller may call (OpenAI's /v1/models)."""
    state = await gateway_state()
    listed = state.table.listed_models(wildcard_routes=request.GET.get("return_wildcard_routes") == "true")
    names = {name for name, access_groups in listed.items() if caller.may_use(name, access_groups)}
    names.update(alias for alias, group in caller.aliases.items() if group in state.table.groups)
    created = int(time.time())
    return _json(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "tollgate"} for name in sorted(names)
            ],
        }
    )


@require_GET
async def liveliness(request):
    return _json("I'm alive!")


async def _redis_ok() -> bool:
    from redis.asyncio import Redis

    client = Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


@require_GET
async def readiness(request):
    """Ready when the database (and Redis, if configured) answer."""
    database = await asyncio.to_thread(database_answers, close_after=True)
    redis = await _redis_ok() if settings.REDIS_URL else None
    ready = database and redis is not False
    body = {
        "status": "healthy" if ready else "unhealthy",
        "db": "connected" if database else "unreachable",
        "cache": "redis" if redis else ("unreachable" if redis is False else "in-process"),
    }
    return _json(body, status=200 if ready else 503)


@require_GET
@authenticated(master_only=True)
async def health(request, caller):
    """Every deployment probed with a minimal real call (master key only, like LiteLLM's /health); `?model=` probes
    one model group."""
    state = await gateway_state()
    try:
        return _json(await probe_health(state.table, request.GET.get("model")))
    except Exception as exc:
        return error_response(exc)


def _debug_endpoint(view):
    """Not there (404, before any key is read) unless DEBUG or TOLLGATE_DEBUG_ENDPOINTS is on."""

    @functools.wraps(view)
    async def if_enabled(request, *args, **kwargs):
        if not (settings.DEBUG or settings.TOLLGATE_DEBUG_ENDPOINTS):
            raise Http404
        return await view(request, *args, **kwargs)

    return if_enabled


@require_GET
@_debug_endpoint
@authenticated(master_only=True)
async def asyncio_tasks(request, caller):
    """The serving event loop's unfinished tasks, counted by coroutine (master key only, like LiteLLM's): a number
    that keeps growing with traffic is a leak."""
    running = [task for task in asyncio.all_tasks() if not task.done()]
    by_name = Counter(getattr(task.get_coro(), "__qualname__", type(task.get_coro()).__name__) for task in running)
    return _json({"total_active_tasks": len(running), "by_name": dict(by_name)})
