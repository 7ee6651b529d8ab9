"""The endpoints of the front protocols: thin async views over the proxy service, each with its front."""

from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from gateway.proxy import service
from gateway.proxy.fronts.anthropic_messages import AnthropicMessagesFront
from gateway.proxy.fronts.count_tokens import count_tokens
from gateway.proxy.fronts.responses import ResponsesFront


@csrf_exempt
@require_POST
async def anthropic_messages(request):
    return await service.handle(request, "chat", front=AnthropicMessagesFront())


@csrf_exempt
@require_POST
async def anthropic_count_tokens(request):
    return await count_tokens(request)


@csrf_exempt
@require_POST
async def responses(request):
    return await service.handle(request, "chat", front=ResponsesFront())
