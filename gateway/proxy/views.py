"""The OpenAI-compatible endpoints: thin async views over the proxy service."""

import asyncio
import time
from collections import Counter

import orjson
from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from gateway.proxy import service
from gateway.proxy.errors import error_response
from gateway.proxy.state import gateway_state
from keys.errors import AuthenticationFailed
from spend.ledger import database_answers


@csrf_exempt
@require_POST
async def chat_completions(request):
    return await service.handle(request, "chat")


@csrf_exempt
@require_POST
async def azure_chat_completions(request, deployment: str):
    """Azure OpenAI's path: the deployment in the URL names the model when the body does not."""
    return await service.handle(request, "chat", default_model=deployment)


@csrf_exempt
@require_POST
async def azure_completions(request, deployment: str):
    return await service.handle(request, "completion", default_model=deployment)


@csrf_exempt
@require_POST
async def azure_embeddings(request, deployment: str):
    return await service.handle(request, "embedding", default_model=deployment)


@csrf_exempt
@require_POST
async def completions(request):
    return await service.handle(request, "completion")


@csrf_exempt
@require_POST
async def embeddings(request):
    return await service.handle(request, "embedding")


def _json(data, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


@require_GET
async def list_models(request):
    """The model groups this caller may call (OpenAI's /v1/models)."""
    try:
        caller = await service.authenticate_request(request)
    except Exception as exc:
        return error_response(exc)
    state = await gateway_state()
    names = {name for name in state.table.groups if caller.may_use(name)}
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
async def health(request):
    """Which deployments are configured (master key only, like LiteLLM's /health)."""
    try:
        caller = await service.authenticate_request(request)
    except Exception as exc:
        return error_response(exc)
    if not caller.is_master:
        return _json(
            {
                "error": {
                    "message": "Only the master key may read /health.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "forbidden",
                }
            },
            status=403,
        )
    state = await gateway_state()
    endpoints = [
        {"model": d.litellm_model, "model_group": d.model_name, "model_id": d.model_id, "api_base": d.public_api_base}
        for group in state.table.groups.values()
        for d in group
        if not state.cooldowns.cooling(d.model_id)
    ]
    cooling = [
        {"model": d.litellm_model, "model_group": d.model_name, "model_id": d.model_id, "api_base": d.public_api_base}
        for group in state.table.groups.values()
        for d in group
        if state.cooldowns.cooling(d.model_id)
    ]
    return _json(
        {
            "healthy_endpoints": endpoints,
            "unhealthy_endpoints": cooling,
            "healthy_count": len(endpoints),
            "unhealthy_count": len(cooling),
        }
    )


@require_GET
async def asyncio_tasks(request):
    """The serving event loop's unfinished tasks, counted by coroutine (master key only, like LiteLLM's): a number
    that keeps growing with traffic is a leak. Not there unless DEBUG or TOLLGATE_DEBUG_ENDPOINTS is on."""
    if not (settings.DEBUG or settings.TOLLGATE_DEBUG_ENDPOINTS):
        raise Http404
    try:
        caller = await service.authenticate_request(request)
        if not caller.is_master:
            raise AuthenticationFailed("Only the master key may read /debug/asyncio-tasks.", code="master_key_required")
    except Exception as exc:
        return error_response(exc)
    running = [task for task in asyncio.all_tasks() if not task.done()]
    by_name = Counter(getattr(task.get_coro(), "__qualname__", type(task.get_coro()).__name__) for task in running)
    return _json({"total_active_tasks": len(running), "by_name": dict(by_name)})
