"""Provider-specific charges the cost map describes (pricing.charges): web search fees by search context size,
Perplexity's citation and reasoning tokens, Together AI's size buckets. Exact Decimals from the shipped map."""

import io
import json
from decimal import Decimal

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import AsyncClient

from gateway.models import Deployment
from gateway.providers.base import normalize_openai_usage
from gateway.proxy.upstream import close_upstream_pool
from pricing.calculator import Usage, compute_cost
from pricing.charges import most_searches, requested_search, together_ai_bucket
from pricing.costmap import load_cost_map, lookup
from spend.models import SpendLog
from tests.e2e.server import MASTER_KEY
from tests.fakes.upstream import FakeUpstream
from tests.keys.factories import make_key
from tests.pricing.test_calculator import SHIPPED_MAP

D = Decimal
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Who won?"}]}


@pytest.fixture(scope="module")
def shipped_map():
    return load_cost_map(SHIPPED_MAP)


def perplexity_usage(raw: dict, request: dict | None = None) -> Usage:
    """A usage as the gateway reads one from Perplexity: normalized by the provider, then read for pricing."""
    return Usage.from_openai(normalize_openai_usage(raw), request)


# --- search fees ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "fee"), [("low", D("0.005")), ("medium", D("0.008")), ("high", D("0.012"))])
def test_perplexity_charges_its_request_fee_at_the_context_size_it_reports(shipped_map, size, fee):
    usage = perplexity_usage({"prompt_tokens": 10, "completion_tokens": 20, "search_context_size": size})

    cost = compute_cost(shipped_map["perplexity/sonar"], usage)

    assert (cost.input, cost.output, cost.search) == (10 * D("0.000001"), 20 * D("0.000001"), fee)
    assert cost.total == D("0.00003") + fee


def test_a_perplexity_search_without_a_reported_size_is_charged_at_perplexitys_default_low(shipped_map):
    cost = compute_cost(shipped_map["perplexity/sonar-pro"], Usage(prompt_tokens=1, search_queries=1))

    assert cost.search == D("0.006")


def test_deep_research_charges_each_search_query_its_citations_and_its_reasoning(shipped_map):
    # Perplexity's answer: reasoning and citation tokens are counted outside completion and prompt tokens.
    raw = {
        "prompt_tokens": 19,
        "completion_tokens": 498,
        "total_tokens": 517,
        "citation_tokens": 10175,
        "num_search_queries": 48,
        "reasoning_tokens": 95305,
        "search_context_size": "low",
    }

    cost = compute_cost(shipped_map["perplexity/sonar-deep-research"], perplexity_usage(raw))

    assert cost.as_dict() == {
        "input": 19 * D("0.000002"),
        "output": 498 * D("0.000008"),
        "cache_read": 0,
        "cache_creation": 0,
        "reasoning": 95305 * D("0.000003"),
        "audio": 0,
        "per_second": 0,
        "search": 48 * D("0.005"),
        "citation": 10175 * D("0.000002"),
        "total": D("0.000038") + D("0.003984") + D("0.285915") + D("0.24") + D("0.02035"),
    }


@pytest.mark.parametrize(
    ("request_body", "asked", "size"),
    [
        ({"web_search_options": {"search_context_size": "high"}}, True, "high"),
        ({"web_search_options": {}}, True, ""),
        ({"tools": [{"type": "web_search_preview", "search_context_size": "low"}]}, True, "low"),
        ({"tools": [{"type": "web_search"}]}, True, ""),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, False, ""),
        ({}, False, ""),
        (None, False, ""),
        ({"tools": True}, False, ""),  # not a list: no search asked, and no TypeError (a 500) on the way
        ({"tools": 7}, False, ""),
        ({"tools": {"type": "web_search"}}, False, ""),
    ],
)
def test_a_request_asks_for_a_search_with_web_search_options_or_a_search_tool(request_body, asked, size):
    assert requested_search(request_body) == (asked, size)


SEARCH_PRICED = {
    "litellm_provider": "openai",
    "input_cost_per_token": D("0.000001"),
    "output_cost_per_token": D("0.000002"),
    "search_context_cost_per_query": {
        "search_context_size_low": D("0.01"),
        "search_context_size_medium": D("0.02"),
        "search_context_size_high": D("0.03"),
    },
}


@pytest.mark.parametrize(
    ("request_body", "usage", "search"),
    [
        pytest.param({**CHAT, "web_search_options": {"search_context_size": "high"}}, {}, D("0.03"), id="asked high"),
        pytest.param({**CHAT, "web_search_options": {}}, {}, D("0.02"), id="asked, default medium"),
        pytest.param(
            {**CHAT, "tools": [{"type": "web_search", "search_context_size": "low"}]}, {}, D("0.01"), id="tool low"
        ),
        pytest.param(
            {**CHAT, "web_search_options": {"search_context_size": "low"}},
            {"prompt_tokens_details": {"web_search_requests": 3}},
            D("0.03"),
            id="reported count wins",
        ),
        pytest.param(
            {**CHAT, "web_search_options": {}}, {"prompt_tokens_details": {"web_search_requests": 0}}, 0, id="none ran"
        ),
        pytest.param(CHAT, {}, 0, id="not asked"),
    ],
)
def test_web_search_fees_for_openai_style_requests(request_body, usage, search):
    read = Usage.from_openai({"prompt_tokens": 100, "completion_tokens": 10, **usage}, request_body)

    cost = compute_cost(SEARCH_PRICED, read)

    assert cost.search == search
    assert cost.total == D("0.0001") + D("0.00002") + search


def test_the_shipped_search_model_charges_its_search(shipped_map):
    usage = Usage.from_openai({"prompt_tokens": 100, "completion_tokens": 10}, {**CHAT, "web_search_options": {}})

    cost = compute_cost(shipped_map["gpt-4o-search-preview"], usage)

    assert (cost.search, cost.total) == (D("0.025"), 100 * D("0.0000025") + 10 * D("0.00001") + D("0.025"))


def test_a_model_without_search_prices_charges_no_search_and_a_failed_call_none(shipped_map):
    asked = Usage.from_openai({"prompt_tokens": 100}, {**CHAT, "web_search_options": {}})

    assert compute_cost(shipped_map["gpt-4o"], asked).search == 0
    assert compute_cost(shipped_map["perplexity/sonar"], Usage()).total == 0


def test_an_unknown_search_context_size_is_refused():
    with pytest.raises(ValueError, match="search_context_size must be low, medium or high"):
        Usage(search_context_size="huge")


def test_perplexitys_reasoning_tokens_join_the_completion_and_its_counts_are_kept():
    usage = normalize_openai_usage(
        {
            "prompt_tokens": 5,
            "completion_tokens": 7,
            "reasoning_tokens": 11,
            "citation_tokens": 3,
            "num_search_queries": 2,
        }
    )

    assert (usage["completion_tokens"], usage["total_tokens"]) == (18, 23)
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 11}
    assert (usage["citation_tokens"], usage["num_search_queries"]) == (3, 2)


# --- Together AI size buckets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "bucket"),
    [
        ("acme/tiny-3b-chat", "together-ai-up-to-4b"),
        ("acme/Llama-3.1-8B-Instruct-Custom", "together-ai-4.1b-8b"),
        ("acme/model-21b", "together-ai-8.1b-21b"),
        ("acme/model-41B", "together-ai-21.1b-41b"),
        ("acme/model-42b", "together-ai-41.1b-80b"),
        ("acme/model-110b", "together-ai-81.1b-110b"),
        ("acme/model-111b", None),
        ("acme/m2-bert-80M-retrieval", "together-ai-embedding-up-to-150m"),
        ("acme/embed-350m", "together-ai-embedding-151m-to-350m"),
        ("acme/no-size-here", None),
    ],
)
def test_together_ai_models_fall_in_their_size_bucket(model, bucket):
    assert together_ai_bucket(model) == bucket


def test_a_together_ai_model_the_map_does_not_name_is_priced_at_its_bucket(shipped_map):
    key, entry = lookup(shipped_map, "acme/my-finetune-34b", "together_ai")

    assert key == "together-ai-21.1b-41b"
    assert compute_cost(entry, Usage(prompt_tokens=1000, completion_tokens=500)).total == 1500 * D("0.0000008")


def test_a_together_ai_model_the_map_names_keeps_its_own_price_and_other_providers_get_no_bucket(shipped_map):
    assert lookup(shipped_map, "Qwen/Qwen2.5-7B-Instruct-Turbo", "together_ai")[0] == (
        "together_ai/Qwen/Qwen2.5-7B-Instruct-Turbo"
    )
    assert lookup(shipped_map, "acme/my-finetune-34b", "groq") is None


# --- manage.py cost --explain ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cost_explain_shows_each_provider_specific_part():
    Deployment.objects.create(model_name="deep", litellm_model="perplexity/sonar-deep-research")
    out = io.StringIO()

    call_command(
        "cost",
        *("--model", "deep", "--prompt-tokens", "19", "--completion-tokens", "1000", "--reasoning-tokens", "500"),
        *("--search-queries", "48", "--citation-tokens", "10175", "--explain"),
        stdout=out,
    )

    text = out.getvalue()
    assert "  search          0.24  (48 web search(es), search_context_size_low = 0.005 each)" in text
    assert "  citation        0.02035  (10175 citation tokens, citation_cost_per_token = 0.000002)" in text
    assert "  reasoning       0.0015" in text
    assert f"total: {D('0.000038') + 500 * D('0.000008') + D('0.0015') + D('0.24') + D('0.02035')}" in text


# --- through the proxy ----------------------------------------------------------------------------------------


@pytest.fixture
async def perplexity(settings):
    """A perplexity/sonar-pro deployment on a fake upstream answering with Perplexity's usage fields. In-process
    proxy calls run without Redis, as tests/gateway's do (its shared counters are tested live)."""
    settings.REDIS_URL = ""
    async with FakeUpstream(prompt_tokens=40, completion_tokens=60) as up:
        up.usage_extra = {"search_context_size": "medium", "citation_tokens": 0, "num_search_queries": 1}
        await Deployment.objects.acreate(
            model_id="pplx-1", model_name="sonar-pro", litellm_model="perplexity/sonar-pro", api_base=f"{up.url}/v1"
        )
        yield up
    await close_upstream_pool()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_perplexity_calls_spend_log_includes_its_search_fee(perplexity, stream):
    body = {"model": "sonar-pro", "messages": [{"role": "user", "content": "News?"}], "stream": stream}
    response = await AsyncClient().post(
        "/v1/chat/completions", orjson.dumps(body), content_type="application/json", headers=AUTH
    )
    if stream:
        b"".join([part async for part in response.streaming_content])

    # perplexity/sonar-pro: 3e-6 in, 1.5e-5 out, and a medium-context search at 0.01.
    expected = 40 * D("0.000003") + 60 * D("0.000015") + D("0.01")
    log = await SpendLog.objects.aget()
    assert (log.cost, log.cost_breakdown["search"], log.provider) == (expected, "0.01", "perplexity")
    if not stream:
        assert D(response["x-litellm-response-cost"]) == expected


@pytest.mark.parametrize(
    ("model", "body", "searches"),
    [
        ("perplexity/sonar", CHAT, (1, "high")),  # every sonar call searches
        ("perplexity/sonar-deep-research", CHAT, (1, "low")),  # one price for every size: the first
        ("gpt-4o-search-preview", {**CHAT, "web_search_options": {}}, (1, "low")),
        ("gpt-4o-search-preview", CHAT, (0, "")),
        ("gpt-4o", {**CHAT, "web_search_options": {}}, (0, "")),
    ],
)
def test_a_reservation_counts_one_search_at_the_dearest_size(shipped_map, model, body, searches):
    assert most_searches(shipped_map[model], body) == searches


@pytest.mark.django_db(transaction=True)
async def test_a_budget_reservation_covers_a_perplexity_calls_search_fee(perplexity):
    secret, _ = await sync_to_async(make_key)(max_budget=D("0.000001"))
    body = orjson.dumps({"model": "sonar-pro", "messages": [{"role": "user", "content": "News?"}], "max_tokens": 100})

    response = await AsyncClient().post(
        "/v1/chat/completions", body, content_type="application/json", headers={"Authorization": f"Bearer {secret}"}
    )

    # Every byte of the body a token at 3e-6, 100 output tokens at 1.5e-5, and one search at the high size.
    worst = len(body) * D("0.000003") + 100 * D("0.000015") + D("0.014")
    assert response.status_code == 400
    assert f"this call may cost up to {worst}." in orjson.loads(response.content)["error"]["message"]
    assert perplexity.requests == []


@pytest.mark.django_db
def test_cost_jsonl_prices_the_search_a_lines_request_asks_for(tmp_path):
    lines = [
        {"model": "gpt-4o-search-preview", "usage": {"prompt_tokens": 100}, "request": {"web_search_options": {}}},
        {"model": "gpt-4o-search-preview", "usage": {"prompt_tokens": 100}},
        {"model": "gpt-4o-search-preview", "usage": {"prompt_tokens": 100}, "request": ["not", "an", "object"]},
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    out = io.StringIO()

    call_command("cost", "--jsonl", str(path), stdout=out)

    answers = [json.loads(line, parse_float=D) for line in out.getvalue().splitlines()]
    assert [answer.get("cost") for answer in answers[:2]] == [D("0.00025") + D("0.025"), D("0.00025")]
    assert answers[0]["breakdown"]["search"] == D("0.025")
    assert answers[2] == {"error": '"request" must be an object'}
