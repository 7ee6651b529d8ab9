"""A budget reservation is an upper bound of what the provider can bill for the request: every part of the body a
provider counts (messages of any content type, tools, functions, response_format, images at their largest tile
cost), times the choices generated, for any byte-level tokenizer.

The fake upstream here bills the most it may: every byte of text a token (a byte-level BPE token is at least one
byte), four framing tokens a message, images at their largest cost, and every choice at its max_tokens."""

import asyncio
import random
from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.models import Deployment
from gateway.proxy.payload import IMAGE_TOKEN_BOUND, parse_payload, prompt_bound
from gateway.proxy.upstream import close_upstream_pool
from keys.models import VirtualKey
from spend.models import SpendLog
from tests.fakes.upstream import FakeUpstream
from tests.keys.factories import make_key

MINI_IMAGE_TOKENS = 48_169  # gpt-4o-mini bills an image at 33 times gpt-4o's tokens


def text_tokens(value) -> int:
    """The most tokens any byte-level tokenizer makes of a JSON value's text: one per byte of every string in it."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, dict):
        return sum(text_tokens(k) + text_tokens(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(text_tokens(item) for item in value)
    return len(str(value))


def most_billed(request: dict, image_tokens: int = IMAGE_TOKEN_BOUND) -> tuple[int, int]:
    """What a provider could bill at most for a chat request: (prompt, completion) tokens."""
    prompt = 3  # the reply's priming
    for message in request["messages"]:
        prompt += 4 + text_tokens(message.get("role", ""))
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for part in parts:
            if part.get("type") == "image_url":
                prompt += image_tokens
            else:
                prompt += text_tokens({k: v for k, v in part.items() if k != "type"})
    for tool in request.get("tools") or []:
        prompt += 10 + text_tokens(tool.get("function", {}))  # OpenAI renders each as a TypeScript declaration
    for function in request.get("functions") or []:
        prompt += 10 + text_tokens(function)
    if request.get("response_format"):
        prompt += text_tokens(request["response_format"])
    choices = max(request.get("n") or 1, 1)
    return prompt, (request.get("max_tokens") or 0) * choices


# Text that tokenizers pack badly: CJK, emoji with modifiers and joiners, combining marks, control-ish characters.
ADVERSARIAL_TEXT = st.lists(
    st.one_of(
        st.sampled_from("中文字符测试表情符號한국어日本語"),
        st.sampled_from(["👩🏽‍💻", "🏳️‍🌈", "🇺🇳", "é", "ﷺ", "\u200d", "\t", "\n", '"', "\\", "\x01"]),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    max_size=100,
).map("".join)
SCHEMA = st.recursive(
    st.one_of(ADVERSARIAL_TEXT, st.integers(-(2**63), 2**63 - 1), st.booleans()),
    lambda inner: st.dictionaries(ADVERSARIAL_TEXT, inner, max_size=4) | st.lists(inner, max_size=4),
    max_leaves=20,
)
IMAGE = st.builds(
    lambda detail, data: {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}", "detail": detail}},
    st.sampled_from(["high", "low", "auto"]),
    st.text(alphabet="ABCDEFab01+/", max_size=50),
)
PART = st.one_of(st.builds(lambda text: {"type": "text", "text": text}, ADVERSARIAL_TEXT), IMAGE)
MESSAGE = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["system", "user", "assistant", "tool"]),
    st.one_of(ADVERSARIAL_TEXT, st.lists(PART, min_size=1, max_size=4)),
)
TOOL = st.builds(
    lambda name, description, parameters: {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": {"type": "object", "x": parameters}},
    },
    st.text(alphabet="abcdefgh_", min_size=1, max_size=20),
    ADVERSARIAL_TEXT,
    SCHEMA,
)
CHAT_BODY = st.fixed_dictionaries(
    {"model": st.just("gpt-4o"), "messages": st.lists(MESSAGE, min_size=1, max_size=6)},
    optional={
        "tools": st.lists(TOOL, max_size=3),
        "functions": st.lists(TOOL.map(lambda tool: tool["function"]), max_size=2),
        "response_format": st.builds(lambda schema: {"type": "json_schema", "json_schema": {"schema": schema}}, SCHEMA),
        "n": st.integers(1, 8),
        "max_tokens": st.integers(1, 4000),
    },
)


@settings(max_examples=300, deadline=None)
@given(body=CHAT_BODY, mini=st.booleans())
def test_the_prompt_bound_covers_the_most_any_byte_level_tokenizer_bills(body, mini):
    raw = orjson.dumps(body)
    payload = parse_payload(raw, "chat", len(raw))
    model = "openai/gpt-4o-mini" if mini else "openai/gpt-4o"

    bound = prompt_bound(len(raw), payload, "chat").tokens(model)

    assert bound >= most_billed(body, MINI_IMAGE_TOKENS if mini else IMAGE_TOKEN_BOUND)[0]


def test_images_count_at_their_largest_cost_not_by_the_size_of_their_data():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 400_000}}
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]}
    raw = orjson.dumps(body)

    bound = prompt_bound(len(raw), parse_payload(raw, "chat", len(raw)), "chat")

    assert bound.images == 1
    assert bound.tokens("openai/gpt-4o") < 3_000  # not the 400,000 bytes of base64
    assert bound.tokens("azure/gpt-4o-mini-2024-07-18") >= MINI_IMAGE_TOKENS


# -- against the proxy: concurrent adversarial calls never take spend past max_budget ------------------------------

INPUT_PRICE, OUTPUT_PRICE = Decimal("0.000001"), Decimal("0.000002")


def adversarial_bodies(count: int, seed: int) -> list[dict]:
    """Calls heavy in everything the old reservation ignored: a 10 KB tool list, CJK and emoji, images, n > 1."""
    rng = random.Random(seed)
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"tool_{index}",
                "description": "查找订单并返回状态 🧾" * 20,
                "parameters": {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(12)}},
            },
        }
        for index in range(12)
    ]
    bodies = []
    for _ in range(count):
        content = [{"type": "text", "text": "".join(rng.choice("中文🙂👩🏽‍💻é") for _ in range(rng.randint(1, 300)))}]
        content += [{"type": "image_url", "image_url": {"url": "https://example.test/a.png"}}] * rng.randint(0, 2)
        bodies.append(
            {
                "model": "bounded",
                "messages": [{"role": "user", "content": content}],
                "tools": tools,
                "n": rng.randint(1, 3),
                "max_tokens": rng.randint(1, 200),
            }
        )
    return bodies


@pytest.fixture
async def billing_upstream():
    async with FakeUpstream() as up:
        up.billing = most_billed
        yield up
    await close_upstream_pool()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_concurrent_adversarial_calls_never_take_spend_past_max_budget(billing_upstream, stream):
    await Deployment.objects.acreate(
        model_id="bounded-1",
        model_name="bounded",
        litellm_model="openai/gpt-4o",
        api_base=f"{billing_upstream.url}/v1",
        input_cost_per_token=INPUT_PRICE,
        output_cost_per_token=OUTPUT_PRICE,
    )
    bodies = adversarial_bodies(50, seed=16)
    one_call = max(p * INPUT_PRICE + c * OUTPUT_PRICE for p, c in map(most_billed, bodies))
    budget = (one_call * 10).quantize(Decimal("0.000001"))  # about ten of the fifty calls
    raw_key, key = await sync_to_async(make_key)(max_budget=budget)
    headers = {"Authorization": f"Bearer {raw_key}"}

    async def call(body):
        if stream:
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        response = await AsyncClient().post(
            "/v1/chat/completions", orjson.dumps(body), content_type="application/json", headers=headers
        )
        if stream and response.status_code == 200:
            b"".join([part async for part in response.streaming_content])
        return response.status_code

    statuses = await asyncio.gather(*(call(body) for body in bodies))

    spend = (await VirtualKey.objects.aget(pk=key.pk)).spend
    logged = [log async for log in SpendLog.objects.filter(key_hash=key.token_hash)]
    assert statuses.count(200) == len(logged) >= 1
    assert set(statuses) <= {200, 400}
    assert spend == sum((log.cost for log in logged), Decimal(0))
    assert spend <= budget
    # The fake billed the most it may, and what it billed is what was charged.
    billed = [most_billed(request.json) for request in billing_upstream.requests]
    assert sorted(log.prompt_tokens for log in logged) == sorted(prompt for prompt, _ in billed)
