"""The calculator prices a call the way LiteLLM does, exactly, in Decimal.

Rates below are chosen so every figure can be checked by hand; the shipped-map tests price real entries.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.calculator import CostBreakdown, Usage, compute_cost, format_money, is_time_priced
from pricing.costmap import load_cost_map

D = Decimal
SHIPPED_MAP = Path(__file__).resolve().parents[2] / "pricing" / "data" / "model_prices_and_context_window.json"
IN, OUT, READ, WRITE = D("0.000003"), D("0.000015"), D("0.0000003"), D("0.00000375")
CLAUDE = {
    "input_cost_per_token": IN,
    "output_cost_per_token": OUT,
    "cache_read_input_token_cost": READ,
    "cache_creation_input_token_cost": WRITE,
}
LONG_CONTEXT = {
    **CLAUDE,
    "input_cost_per_token_above_200k_tokens": D("0.000006"),
    "output_cost_per_token_above_200k_tokens": D("0.0000225"),
    "cache_read_input_token_cost_above_200k_tokens": D("0.0000006"),
    "cache_creation_input_token_cost_above_200k_tokens": D("0.0000075"),
}


@pytest.fixture(scope="module")
def shipped_map():
    return load_cost_map(SHIPPED_MAP)


# --- the spec's three worked examples, to the digit


def test_spec_per_token_example():
    price = {"input_cost_per_token": D("0.00003"), "output_cost_per_token": D("0.00006")}
    cost = compute_cost(price, Usage(prompt_tokens=1000, completion_tokens=500))
    assert (cost.input, cost.output, cost.total) == (D("0.03"), D("0.03"), D("0.06"))
    assert format_money(cost.total) == "0.06"


def test_spec_per_second_example():
    cost = compute_cost({"input_cost_per_second": D("0.000420")}, Usage(), duration_seconds=D(5))
    assert (cost.per_second, cost.total) == (D("0.0021"), D("0.0021"))
    assert format_money(cost.total) == "0.0021"


def test_spec_cache_example():
    # 1000 regular + 5000 cache-read tokens: in OpenAI's convention prompt_tokens counts both.
    price = {k: v for k, v in CLAUDE.items() if k != "cache_creation_input_token_cost"}
    cost = compute_cost(price, Usage(prompt_tokens=6000, completion_tokens=500, cached_tokens=5000))
    assert (cost.input, cost.cache_read, cost.output) == (D("0.003"), D("0.0015"), D("0.0075"))
    assert cost.total == D("0.012")
    assert format_money(cost.total) == "0.012"


# --- cache prices: absent means "billed as input", an explicit 0 means free


@pytest.mark.parametrize(
    ("read_rate", "write_rate", "expected_read", "expected_write"),
    [
        ("absent", "absent", 100 * IN, 10 * IN),
        (None, None, 100 * IN, 10 * IN),
        (D(0), D(0), D(0), D(0)),
        (READ, "absent", 100 * READ, 10 * IN),
        ("absent", WRITE, 100 * IN, 10 * WRITE),
    ],
)
def test_cache_rates_fall_back_to_the_input_rate_only_when_absent(read_rate, write_rate, expected_read, expected_write):
    price = {"input_cost_per_token": IN, "output_cost_per_token": OUT}
    if read_rate != "absent":
        price["cache_read_input_token_cost"] = read_rate
    if write_rate != "absent":
        price["cache_creation_input_token_cost"] = write_rate
    cost = compute_cost(price, Usage(prompt_tokens=1000, cached_tokens=100, cache_creation_tokens=10))
    assert cost.input == 890 * IN
    assert (cost.cache_read, cost.cache_creation) == (expected_read, expected_write)


def test_cache_counts_past_prompt_tokens_leave_no_negative_input():
    cost = compute_cost(CLAUDE, Usage(prompt_tokens=100, cached_tokens=150, cache_creation_tokens=20))
    assert cost.input == 0
    assert cost.cache_read == 150 * READ
    assert cost.cache_creation == 20 * WRITE


# --- long-context thresholds: the whole call moves to the higher rate


@pytest.mark.parametrize(
    ("prompt_tokens", "rates"),
    [
        (200_000, (IN, OUT, READ, WRITE)),
        (200_001, (D("0.000006"), D("0.0000225"), D("0.0000006"), D("0.0000075"))),
    ],
)
def test_threshold_is_exclusive_and_lifts_every_token_kind(prompt_tokens, rates):
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=1000, cached_tokens=50_000, cache_creation_tokens=1000)
    cost = compute_cost(LONG_CONTEXT, usage)
    input_rate, output_rate, read_rate, write_rate = rates
    assert cost.input == (prompt_tokens - 51_000) * input_rate
    assert cost.output == 1000 * output_rate
    assert cost.cache_read == 50_000 * read_rate
    assert cost.cache_creation == 1000 * write_rate


def test_threshold_counts_cache_tokens_in_the_prompt():
    # 150k cache reads + 60k fresh tokens is a 210k-token prompt: long-context pricing, as Anthropic bills it.
    cost = compute_cost(LONG_CONTEXT, Usage(prompt_tokens=210_000, cached_tokens=150_000))
    assert cost.input == 60_000 * D("0.000006")
    assert cost.cache_read == 150_000 * D("0.0000006")


def test_kind_without_a_tier_keeps_its_base_rate_and_missing_cache_rates_follow_the_tier_input():
    price = {
        "input_cost_per_token": IN,
        "output_cost_per_token": OUT,
        "input_cost_per_token_above_200k_tokens": D("0.000006"),
    }
    cost = compute_cost(price, Usage(prompt_tokens=300_000, completion_tokens=10, cached_tokens=100))
    assert cost.output == 10 * OUT
    assert cost.cache_read == 100 * D("0.000006")


@pytest.mark.parametrize(
    ("prompt_tokens", "expected_rate"),
    [(100_000, D("1")), (128_000, D("1")), (128_001, D("2")), (256_000, D("2")), (256_001, D("3"))],
)
def test_highest_crossed_threshold_wins(prompt_tokens, expected_rate):
    price = {
        "input_cost_per_token": D("1"),
        "input_cost_per_token_above_256k_tokens": D("3"),
        "input_cost_per_token_above_128k_tokens": D("2"),
    }
    assert compute_cost(price, Usage(prompt_tokens=prompt_tokens)).input == prompt_tokens * expected_rate


def test_threshold_without_k_counts_tokens():
    price = {"input_cost_per_token": D("1"), "input_cost_per_token_above_500_tokens": D("2")}
    assert compute_cost(price, Usage(prompt_tokens=501)).input == 1002


@pytest.mark.parametrize(("provider", "expected_rate"), [("xai", D("2")), ("openai", D("1"))])
def test_xai_bills_the_higher_rate_from_the_threshold_itself(provider, expected_rate):
    price = {"litellm_provider": provider, "input_cost_per_token": D("1"), "input_cost_per_token_above_128k_tokens": 2}
    assert compute_cost(price, Usage(prompt_tokens=128_000)).input == 128_000 * expected_rate


def test_service_tier_and_batch_threshold_keys_do_not_apply_to_a_standard_call():
    price = {
        "input_cost_per_token": D("1"),
        "input_cost_per_token_above_200k_tokens_priority": D("5"),
        "input_cost_per_token_above_200k_tokens_batches": D("7"),
    }
    assert compute_cost(price, Usage(prompt_tokens=300_000)).input == 300_000


# --- tiered_pricing tables (Alibaba's all-or-nothing tiers)

QWEN = {
    "litellm_provider": "dashscope",
    "tiered_pricing": [
        {"range": [0, D("256000.0")], "input_cost_per_token": D("4E-7"), "output_cost_per_token": D("0.0000012"),
         "output_cost_per_reasoning_token": D("0.000004")},
        {"range": [D("256000.0"), D("1000000.0")], "input_cost_per_token": D("0.0000012"),
         "output_cost_per_token": D("0.0000036"), "output_cost_per_reasoning_token": D("0.000012")},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("prompt_tokens", "input_rate", "output_rate", "reasoning_rate"),
    [
        (256_000, D("4E-7"), D("0.0000012"), D("0.000004")),
        (256_001, D("0.0000012"), D("0.0000036"), D("0.000012")),
        (2_000_000, D("0.0000012"), D("0.0000036"), D("0.000012")),  # above every range: the last tier
    ],
)
def test_tier_table_bills_the_whole_call_at_one_tier(prompt_tokens, input_rate, output_rate, reasoning_rate):
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=100, reasoning_tokens=40, cached_tokens=1000)
    cost = compute_cost(QWEN, usage)
    assert cost.input == (prompt_tokens - 1000) * input_rate
    assert cost.cache_read == 1000 * input_rate
    assert cost.output == 60 * output_rate
    assert cost.reasoning == 40 * reasoning_rate


def test_tier_without_output_rate_uses_the_entry_output_rate():
    price = {"output_cost_per_token": D("9"), "tiered_pricing": [{"range": [0, 10], "input_cost_per_token": D("1")}]}
    cost = compute_cost(price, Usage(prompt_tokens=5, completion_tokens=2))
    assert (cost.input, cost.output) == (D(5), D(18))


def test_tier_table_is_skipped_for_an_empty_prompt():
    assert compute_cost(QWEN, Usage(completion_tokens=100)).total == 0


# --- reasoning and audio: priced apart where the entry says so, plain tokens otherwise


def test_reasoning_with_its_own_rate():
    price = {**CLAUDE, "output_cost_per_reasoning_token": D("0.00002")}
    cost = compute_cost(price, Usage(prompt_tokens=10, completion_tokens=1000, reasoning_tokens=600))
    assert cost.output == 400 * OUT
    assert cost.reasoning == 600 * D("0.00002")


def test_reasoning_without_its_own_rate_is_output():
    cost = compute_cost(CLAUDE, Usage(completion_tokens=1000, reasoning_tokens=600))
    assert (cost.output, cost.reasoning) == (1000 * OUT, D(0))


def test_audio_with_its_own_rates():
    price = {**CLAUDE, "input_cost_per_audio_token": D("0.00004"), "output_cost_per_audio_token": D("0.00008")}
    usage = Usage(prompt_tokens=1000, completion_tokens=500, input_audio_tokens=300, output_audio_tokens=200)
    cost = compute_cost(price, usage)
    assert cost.input == 700 * IN
    assert cost.output == 300 * OUT
    assert cost.audio == 300 * D("0.00004") + 200 * D("0.00008")


def test_audio_without_its_own_rates_is_plain_input_and_output():
    usage = Usage(prompt_tokens=1000, completion_tokens=500, input_audio_tokens=300, output_audio_tokens=200)
    cost = compute_cost(CLAUDE, usage)
    assert (cost.input, cost.output, cost.audio) == (1000 * IN, 500 * OUT, D(0))


def test_audio_rates_are_not_lifted_by_long_context_tiers():
    price = {**LONG_CONTEXT, "input_cost_per_audio_token": D("0.00004")}
    cost = compute_cost(price, Usage(prompt_tokens=300_000, input_audio_tokens=1000))
    assert cost.audio == 1000 * D("0.00004")
    assert cost.input == 299_000 * D("0.000006")


def test_output_image_token_rate_stands_in_for_a_zero_output_rate():
    price = {"input_cost_per_token": IN, "output_cost_per_token": D(0), "output_cost_per_image_token": D("0.00003")}
    assert compute_cost(price, Usage(completion_tokens=10)).output == D("0.0003")


# --- provider defaults and off-peak windows


def test_fireworks_without_a_cache_price_bills_cache_reads_at_half_input():
    price = {"litellm_provider": "fireworks_ai", "input_cost_per_token": D("0.0000009"), "output_cost_per_token": 0}
    assert compute_cost(price, Usage(prompt_tokens=1000, cached_tokens=1000)).cache_read == D("0.00045")
    assert compute_cost({**price, "litellm_provider": "together_ai"}, Usage(1000, cached_tokens=1000)).cache_read == D(
        "0.0009"
    )


DEEPSEEK = {
    "litellm_provider": "deepseek",
    "input_cost_per_token": D("3E-7"),
    "output_cost_per_token": D("0.0000012"),
    "cache_read_input_token_cost": D("6E-9"),
    "off_peak_pricing": {
        "input_cost_per_token": D("1.5E-7"),
        "output_cost_per_token": D("6E-7"),
        "cache_read_input_token_cost": D("3E-9"),
        "windows": [
            {"hours_utc": ["00:00-01:00", "04:00-06:00", "10:00-00:00"], "weekdays": [1, 2, 3, 4, 5]},
            {"hours_utc": "00:00-00:00", "weekdays": [6, 7]},
        ],
    },
}


@pytest.mark.parametrize(
    ("billed_at", "off_peak"),
    [
        (datetime(2026, 3, 4, 12, 0, tzinfo=UTC), True),  # a Wednesday, inside 10:00-00:00
        (datetime(2026, 3, 4, 9, 59, tzinfo=UTC), False),
        (datetime(2026, 3, 4, 6, 0, tzinfo=UTC), False),  # a window's end is exclusive
        (datetime(2026, 3, 4, 4, 0, tzinfo=UTC), True),  # and its start inclusive
        (datetime(2026, 3, 7, 8, 0, tzinfo=UTC), True),  # Saturday: all day
        (datetime(2026, 3, 4, 17, 0, tzinfo=timezone(timedelta(hours=8))), False),  # 09:00 UTC
        (None, False),  # no billing moment: standard rates
    ],
)
def test_off_peak_windows(billed_at, off_peak):
    cost = compute_cost(
        DEEPSEEK, Usage(prompt_tokens=2000, completion_tokens=100, cached_tokens=1000), billed_at=billed_at
    )
    rates = (D("1.5E-7"), D("6E-7"), D("3E-9")) if off_peak else (D("3E-7"), D("0.0000012"), D("6E-9"))
    assert (cost.input, cost.output, cost.cache_read) == (1000 * rates[0], 100 * rates[1], 1000 * rates[2])


def test_billed_at_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_cost(DEEPSEEK, Usage(1), billed_at=datetime(2026, 3, 4, 12, 0))


# --- per-second pricing


@pytest.mark.parametrize(
    ("price", "time_priced"),
    [
        ({"input_cost_per_second": D("0.00042")}, True),
        ({"output_cost_per_second": D("0.00042")}, True),
        ({"cost_per_second": D("0.011"), "input_cost_per_second": D("0.011"), "mode": "chat"}, True),
        ({"input_cost_per_second": D("0.00042"), "input_cost_per_token": D(0), "output_cost_per_token": D(0)}, True),
        ({"input_cost_per_second": D("0.00042"), "input_cost_per_token": D("0.000001")}, False),
        ({"input_cost_per_second": D("0.00042"), "mode": "image_generation"}, False),
        ({"input_cost_per_token": D("0.000001")}, False),
    ],
)
def test_is_time_priced(price, time_priced):
    assert is_time_priced(price) is time_priced


def test_per_second_bills_one_rate_for_the_seconds_and_no_tokens():
    # cost_per_second wins, then input, then output: never two rates for the same seconds (LiteLLM's rule).
    price = {"cost_per_second": D("0.01"), "input_cost_per_second": D("0.02"), "output_cost_per_second": D("0.03")}
    cost = compute_cost(price, Usage(prompt_tokens=10**6, completion_tokens=10**6), duration_seconds=D("1.5"))
    assert cost == CostBreakdown(D(0), D(0), D(0), D(0), D(0), D(0), D("0.015"), D("0.015"))


def test_time_priced_entry_needs_a_duration():
    with pytest.raises(ValueError, match="duration_seconds"):
        compute_cost({"input_cost_per_second": D("0.00042")}, Usage())


def test_float_duration_is_refused():
    with pytest.raises(TypeError, match="duration_seconds"):
        compute_cost({"input_cost_per_second": D("0.00042")}, Usage(), duration_seconds=5.0)


def test_token_priced_entry_ignores_the_duration():
    assert compute_cost(CLAUDE, Usage(prompt_tokens=1), duration_seconds=D(100)).per_second == 0


# --- prices that cannot be trusted are refused, not guessed


@pytest.mark.parametrize(
    ("value", "error"),
    [(3e-05, TypeError), ("3e-05", TypeError), (True, TypeError), (D("-0.1"), ValueError), (D("NaN"), ValueError)],
)
def test_bad_price_values_are_refused(value, error):
    with pytest.raises(error, match="input_cost_per_token"):
        compute_cost({"input_cost_per_token": value}, Usage(prompt_tokens=1))


def test_no_rounding_even_at_the_smallest_price():
    cost = compute_cost({"input_cost_per_token": D("1.3E-10")}, Usage(prompt_tokens=7))
    assert cost.total == D("9.1E-10")
    assert format_money(cost.total) == "0.00000000091"


# --- reading OpenAI usage objects


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (None, Usage()),
        ({}, Usage()),
        ({"prompt_tokens": 5, "completion_tokens": None, "total_tokens": 5}, Usage(prompt_tokens=5)),
        ({"prompt_tokens": 5, "prompt_tokens_details": None, "completion_tokens_details": None}, Usage(5)),
        ({"prompt_tokens": 8, "total_tokens": 8}, Usage(prompt_tokens=8)),  # an embeddings response
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 30, "audio_tokens": 10},
                "completion_tokens_details": {
                    "reasoning_tokens": 20,
                    "audio_tokens": 5,
                    "accepted_prediction_tokens": 0,
                },
            },
            Usage(100, 50, cached_tokens=30, input_audio_tokens=10, reasoning_tokens=20, output_audio_tokens=5),
        ),
        (
            # LiteLLM's OpenAI-shaped Anthropic usage: prompt_tokens already counts cache reads and writes.
            {
                "prompt_tokens": 1300,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 200, "cache_creation_tokens": 100},
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 250,
            },
            Usage(1300, 1, cached_tokens=1000, cache_creation_tokens=250),
        ),
        ({"prompt_tokens": 9, "prompt_tokens_details": {"cache_write_tokens": 4}}, Usage(9, cache_creation_tokens=4)),
        ({"prompt_tokens": 9, "prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 3}, Usage(9, cached_tokens=6)),
        (
            {
                "input_tokens": 100,
                "output_tokens": 40,
                "input_tokens_details": {"cached_tokens": 60},
                "output_tokens_details": {"reasoning_tokens": 30},
            },
            Usage(100, 40, cached_tokens=60, reasoning_tokens=30),
        ),
    ],
)
def test_usage_from_openai(usage, expected):
    assert Usage.from_openai(usage) == expected


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -1},
        {"prompt_tokens": 1.0},
        {"prompt_tokens": "12"},
        {"prompt_tokens": True},
        {"completion_tokens_details": {"reasoning_tokens": -3}},
        {"prompt_tokens_details": [1, 2]},
        {"input_tokens": 10, "cache_read_input_tokens": 5},  # Anthropic's native shape: input_tokens excludes cache
        [("prompt_tokens", 1)],
    ],
)
def test_usage_from_openai_refuses_bad_counts(usage):
    with pytest.raises(ValueError):
        Usage.from_openai(usage)


def test_usage_refuses_negative_counts():
    with pytest.raises(ValueError, match="cached_tokens"):
        Usage(cached_tokens=-1)


# --- rendering money


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("4.35E-4"), "0.000435"),
        (D("0E-10"), "0"),
        (D("0.0600"), "0.06"),
        (D("1.3E-10") * 7, "0.00000000091"),
        (D("0"), "0"),
        (D("-0.00"), "0"),
        (D("1E+3"), "1000"),
        (D("12.50"), "12.5"),
        (D("-0.25"), "-0.25"),
        (D("0.30000000000000000000000001"), "0.30000000000000000000000001"),
    ],
)
def test_format_money(value, text):
    assert format_money(value) == text


@pytest.mark.parametrize(
    ("value", "error"), [(D("NaN"), ValueError), (D("-Infinity"), ValueError), (0.1, TypeError), (1, TypeError)]
)
def test_format_money_refuses_what_is_not_a_finite_decimal(value, error):
    with pytest.raises(error):
        format_money(value)


# --- the shipped map


def test_every_shipped_chat_completion_responses_and_embedding_entry_prices(shipped_map):
    usage = Usage(250_001, 1000, cached_tokens=1000, cache_creation_tokens=10, reasoning_tokens=100)
    priced = 0
    for entry in shipped_map.values():
        if entry.get("mode") in {"chat", "completion", "responses", "embedding"}:
            cost = compute_cost(entry, usage, D(2), billed_at=datetime(2026, 1, 1, tzinfo=UTC))
            assert cost.total == sum(list(cost.as_dict().values())[:-1])
            priced += 1
    assert priced == 3653


def test_gpt_4_from_the_shipped_map(shipped_map):
    assert compute_cost(shipped_map["gpt-4"], Usage(1000, 500)).total == D("0.06")


def test_perplexity_cache_reads_at_the_mapped_cache_price(shipped_map):
    # LiteLLM's perplexity route bills every prompt token at the input rate, ignoring the entry's cache-read
    # price and its long-context tiers. The entry says what the provider charges for a cached token, so we bill
    # that, as LiteLLM's own generic calculator does for every other provider.
    entry = shipped_map["perplexity/anthropic/claude-haiku-5-5"]
    cost = compute_cost(entry, Usage(prompt_tokens=10_000, cached_tokens=8_000))
    assert cost.cache_read == 8_000 * entry["cache_read_input_token_cost"]
    assert cost.total < 10_000 * entry["input_cost_per_token"]


# --- properties


def _money():
    return st.builds(
        lambda mantissa, exponent: D(mantissa).scaleb(-exponent), st.integers(0, 10**6), st.integers(0, 15)
    )


PRICE_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
)
prices = st.dictionaries(st.sampled_from(PRICE_KEYS), st.one_of(st.none(), _money()))
counts = st.integers(0, 3_000_000)
usages = st.builds(Usage, counts, counts, counts, counts, counts, counts, counts)
# A usage whose parts add up: cache, audio and reasoning counts inside the prompt and completion they belong to.
consistent_usages = st.builds(
    lambda text_in, cached, written, audio_in, text_out, reasoning, audio_out: Usage(
        text_in + cached + written + audio_in, text_out + reasoning + audio_out, cached, written, audio_in, reasoning,
        audio_out,
    ),
    counts, counts, counts, counts, counts, counts, counts,
)  # fmt: skip


@given(prices, usages)
def test_total_is_the_exact_sum_of_its_parts_and_never_negative(price, usage):
    cost = compute_cost(price, usage)
    parts = cost.as_dict()
    total = parts.pop("total")
    assert all(type(value) is D for value in cost.as_dict().values())
    assert total == sum(parts.values())
    assert all(value >= 0 for value in parts.values())


ADDITIONS = {
    "prompt": {"prompt_tokens": 1},
    "cache read": {"prompt_tokens": 1, "cached_tokens": 1},
    "cache write": {"prompt_tokens": 1, "cache_creation_tokens": 1},
    "input audio": {"prompt_tokens": 1, "input_audio_tokens": 1},
    "completion": {"completion_tokens": 1},
    "reasoning": {"completion_tokens": 1, "reasoning_tokens": 1},
    "output audio": {"completion_tokens": 1, "output_audio_tokens": 1},
}


@pytest.mark.parametrize("kind", ADDITIONS)
@given(price=prices, usage=consistent_usages, extra=st.integers(1, 500_000))
def test_more_tokens_of_any_kind_never_cost_less(kind, price, usage, extra):
    more = replace(usage, **{name: getattr(usage, name) + extra * n for name, n in ADDITIONS[kind].items()})
    assert compute_cost(price, more).total >= compute_cost(price, usage).total
