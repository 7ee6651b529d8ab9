"""One in-process client for the management API and the proxy, as uvicorn serves them (gateway.asgi): management
calls with the master key (or a virtual key) over httpx, proxied calls through the official openai SDK."""

import contextlib
import json
from decimal import Decimal

import httpx
import openai
import orjson

from gateway.asgi import application
from gateway.models import Deployment
from tests.e2e.server import MASTER_KEY

BASE_URL = "http://testserver"
CHAT = {"model": "demo-model", "messages": [{"role": "user", "content": "Hello there"}]}


@contextlib.asynccontextmanager
async def mock_gateway():
    """A Gateway in front of one mock deployment, demo-model (answered in-process, priced as gpt-4o-mini)."""
    await Deployment.objects.acreate(
        model_id="mock-1", model_name="demo-model", litellm_model="mock/demo", base_model="gpt-4o-mini"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=BASE_URL) as client:
        yield Gateway(client)


class Gateway:
    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def call(self, method: str, path: str, body=None, auth: str = MASTER_KEY, **params):
        """(status, JSON answer, its numbers read as Decimals) of a management call."""
        content = orjson.dumps(body, default=_exact_number) if body is not None else None
        response = await self.client.request(
            method,
            path,
            content=content,
            params=params or None,
            headers={"Authorization": f"Bearer {auth}", "Content-Type": "application/json"},
        )
        return response.status_code, json.loads(response.content, parse_float=Decimal) if response.content else None

    async def post(self, path: str, body, auth: str = MASTER_KEY):
        return await self.call("POST", path, body, auth)

    async def get(self, path: str, auth: str = MASTER_KEY, **params):
        return await self.call("GET", path, None, auth, **params)

    def sdk(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=key, base_url=f"{BASE_URL}/v1", http_client=self.client, max_retries=0)

    async def chat(self, key: str, **extra):
        """A chat completion through the SDK, its exception if it is refused."""
        try:
            return await self.sdk(key).chat.completions.create(**CHAT, **extra)
        except openai.APIStatusError as exc:
            return exc


def _exact_number(value):
    """A Decimal in a body as its own digits, a JSON number (as a client's JSON library would write it)."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(type(value).__name__)
