"""manage.py cost: the spec's worked examples priced exactly as the gateway prices them, --explain, and JSON lines."""

import io
import json
import random
import time
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from gateway.models import Deployment
from gateway.proxy.registry import build_routing_table
from pricing import store

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def spec_deployments():
    """The spec's model_list: custom, override, Azure with base_model, SageMaker per second, Claude with cache."""
    make = Deployment.objects.create
    return {
        "llama": make(model_name="llama3.2", litellm_model="ollama_chat/llama3.2",
                      input_cost_per_token=D("0.00002"), output_cost_per_token=D("0.00004")),
        "prod": make(model_name="prod-gpt4", litellm_model="openai/gpt-4",
                     input_cost_per_token=D("0.00003"), output_cost_per_token=D("0.00006")),
        "azure": make(model_name="azure-gpt4-turbo", litellm_model="azure/my-gpt4-deployment",
                      base_model="azure/gpt-4-1106-preview"),
        "sagemaker": make(model_name="sagemaker-model", litellm_model="sagemaker/my-endpoint",
                          input_cost_per_second=D("0.000420")),
        "claude": make(model_name="claude-sonnet", litellm_model="anthropic/claude-3-5-sonnet-20241022",
                       input_cost_per_token=D("0.000003"), output_cost_per_token=D("0.000015"),
                       cache_creation_input_token_cost=D("0.00000375"), cache_read_input_token_cost=D("0.0000003")),
        "gpt4": make(model_name="gpt-4", litellm_model="openai/gpt-4"),
    }  # fmt: skip


def cost(*args) -> str:
    out = io.StringIO()
    call_command("cost", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "prod-gpt4", "--prompt-tokens", "1000", "--completion-tokens", "500"], "0.06"),
        (["--model", "llama3.2", "--prompt-tokens", "1000", "--completion-tokens", "500"], "0.04"),
        (["--model", "sagemaker-model", "--seconds", "5"], "0.0021"),
        (["--model", "claude-sonnet", "--prompt-tokens", "6000", "--cached-tokens", "5000",
          "--completion-tokens", "500"], "0.012"),
        (["--model", "azure-gpt4-turbo", "--prompt-tokens", "1000", "--completion-tokens", "500"], "0.025"),
        (["--model", "gpt-4", "--prompt-tokens", "1000", "--completion-tokens", "500"], "0.06"),
        (["--model", "gpt-4o-mini", "--prompt-tokens", "1000000"], "0.15"),
        (["--model", "no-such-model", "--prompt-tokens", "10"], "0"),
        # 1000 reasoning tokens at 3e-6, 1000 citation tokens at 2e-6, two searches at 0.005.
        (["--model", "perplexity/sonar-deep-research", "--completion-tokens", "1000", "--reasoning-tokens", "1000",
          "--citation-tokens", "1000", "--search-queries", "2", "--search-context-size", "low"], "0.015"),
        (["--model", "perplexity/sonar", "--search-queries", "1", "--search-context-size", "high"], "0.012"),
    ],
    ids=["override", "ollama-custom", "per-second", "cache", "azure-base-model", "cost-map", "cost-map-name",
         "unpriced", "reasoning-citations-searches", "search-context-size"],
)  # fmt: skip
def test_prices_the_spec_examples_exactly(spec_deployments, args, expected):
    assert cost(*args) == f"{expected}\n"


def test_a_deployment_is_priced_by_its_id(spec_deployments):
    model_id = spec_deployments["llama"].model_id
    args = ["--deployment", model_id, "--prompt-tokens", "1000", "--completion-tokens", "500"]
    assert cost(*args) == "0.04\n"


@pytest.mark.parametrize(
    ("model", "chain"),
    [
        ("prod-gpt4", ["1. custom      MATCH  input_cost_per_token, output_cost_per_token", "2. base_model  not reached",
                       "=> source custom"]),
        ("azure-gpt4-turbo", ["1. custom      no", "2. base_model  MATCH  base_model 'azure/gpt-4-1106-preview': "
                              "azure/gpt-4-1106-preview found", "3. cost_map    not reached",
                              "=> source base_model (entry azure/gpt-4-1106-preview)"]),
        ("gpt-4", ["2. base_model  no     no base_model set",
                   "3. cost_map    MATCH  model 'gpt-4', provider 'openai': openai/gpt-4 absent, gpt-4 found",
                   "=> source cost_map (entry gpt-4)"]),
        ("no-such-model", ["3. cost_map    no", "no-such-model absent", "4. unpriced    MATCH"]),
    ],
    ids=["custom", "base_model", "cost-map-without-prefix", "unpriced"],
)  # fmt: skip
def test_explain_shows_the_resolution_chain_and_the_breakdown(spec_deployments, model, chain):
    text = cost("--model", model, "--prompt-tokens", "1000", "--completion-tokens", "500", "--explain")

    for line in chain:
        assert line in text
    assert "breakdown (USD):" in text and "  input  " in text
    assert text.splitlines()[-1].startswith("total: ")


def test_explain_names_the_deployment_and_the_cost_map(spec_deployments):
    text = cost("--model", "claude-sonnet", "--prompt-tokens", "6000", "--cached-tokens", "5000",
                "--completion-tokens", "500", "--explain")  # fmt: skip

    assert f"deployment {spec_deployments['claude'].model_id} (anthropic/claude-3-5-sonnet-20241022)" in text
    assert f"active cost map: {store.active_version_label()}" in text
    for line in ("input           0.003", "output          0.0075", "cache_read      0.0015", "total: 0.012"):
        assert line in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --model NAME or --deployment ID"),
        (["--deployment", "nope"], "no deployment with id 'nope'"),
        (["--model", "sagemaker-model"], "needs duration_seconds"),
    ],
)
def test_bad_options_are_command_errors(spec_deployments, args, message):
    with pytest.raises(CommandError, match=message):
        cost(*args)


def test_the_command_prices_every_deployment_as_the_routing_table_does(spec_deployments):
    table = build_routing_table(1, store.load_active_cost_map())
    for group, (routed,) in table.groups.items():
        text = cost("--model", group, "--prompt-tokens", "1000", "--seconds", "2", "--explain")
        assert f"=> source {routed.price.source}" in text
        assert f"price version {routed.price.version}" in text


def jsonl(lines: list, tmp_path) -> list[dict]:
    path = tmp_path / "calls.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return [json.loads(line, parse_float=D) for line in cost("--jsonl", str(path)).splitlines()]


def test_jsonl_answers_each_line_in_order_with_exact_numbers(spec_deployments, tmp_path):
    usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    lines = [
        {"model": "prod-gpt4", "usage": usage},
        "{not json",
        {"model": "sagemaker-model", "usage": {}, "seconds": 5},
        {"usage": usage},
        {"deployment": spec_deployments["claude"].model_id,
         "usage": {"prompt_tokens": 6000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 5000}}},
        {"model": "sagemaker-model", "usage": {}},
        {"model": "prod-gpt4", "usage": {"prompt_tokens": -1}},
        {"deployment": "missing", "usage": usage},
        {"model": "gpt-4o", "usage": {"input_tokens": 1000, "output_tokens": 10}},
        "[1]",
        "",
        {"model": "no-such-model", "usage": usage},
    ]  # fmt: skip

    answers = jsonl(lines, tmp_path)

    assert len(answers) == len(lines)
    assert answers[0] == {
        "cost": D("0.06"), "source": "custom", "matched": "",
        "breakdown": {"input": D("0.03"), "output": D("0.03"), "cache_read": 0, "cache_creation": 0, "reasoning": 0,
                      "audio": 0, "per_second": 0, "search": 0, "citation": 0, "total": D("0.06")},
    }  # fmt: skip
    assert (answers[2]["cost"], answers[2]["breakdown"]["per_second"]) == (D("0.0021"), D("0.0021"))
    assert (answers[4]["cost"], answers[4]["breakdown"]["cache_read"]) == (D("0.012"), D("0.0015"))
    assert answers[8]["cost"] == D("0.0026") and answers[8]["matched"] == "gpt-4o"
    assert (answers[11]["cost"], answers[11]["source"]) == (0, "unpriced")
    errors = {index: answer["error"] for index, answer in enumerate(answers) if "error" in answer}
    assert list(errors) == [1, 3, 5, 6, 7, 9, 10]
    assert 'give "model" or "deployment"' in errors[3]
    assert "needs duration_seconds" in errors[5]
    assert "prompt_tokens is negative" in errors[6]
    assert "no deployment with id 'missing'" in errors[7]


def test_jsonl_writes_costs_from_the_decimal_digits(tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_text(json.dumps({"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}))

    assert '"cost": 0.00000075, ' in cost("--jsonl", str(path))


def test_jsonl_reads_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO('{"model": "gpt-4", "usage": {"prompt_tokens": 1000}}\n'))

    assert json.loads(cost("--jsonl", "-"))["cost"] == 0.03


def test_jsonl_throughput(tmp_path, capsys):
    """Prints the rate (no timing assert): 10,000 random usages over the whole shipped map."""
    names = sorted(store.load_active_cost_map().entries)
    rng = random.Random(4)
    path = tmp_path / "calls.jsonl"
    with path.open("w") as out:
        for _ in range(10_000):
            prompt, completion = rng.randrange(300_000), rng.randrange(5_000)
            usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                     "prompt_tokens_details": {"cached_tokens": rng.randrange(prompt + 1)}}  # fmt: skip
            out.write(json.dumps({"model": rng.choice(names), "usage": usage, "seconds": 3}) + "\n")

    started = time.perf_counter()
    answers = cost("--jsonl", str(path)).splitlines()
    elapsed = time.perf_counter() - started

    assert len(answers) == 10_000
    with capsys.disabled():
        print(f"\nmanage.py cost --jsonl: {len(answers) / elapsed:,.0f} lines/s (10,000 lines in {elapsed:.2f} s)")
