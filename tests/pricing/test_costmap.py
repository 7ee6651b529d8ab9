"""Loading, checking, comparing and searching the cost map, with every price kept exact."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from pricing.calculator import format_money
from pricing.costmap import CostMapError, diff_cost_maps, load_cost_map, lookup, sha256_of, validate_cost_map

D = Decimal
SHIPPED_MAP = Path(__file__).resolve().parents[2] / "pricing" / "data" / "model_prices_and_context_window.json"
SHIPPED_SHA256 = "8f8060d8ce7a40c91b995c74d6a27657543d49e3c1c53430dabd556f244392c6"


@pytest.fixture(scope="module")
def shipped_map():
    return load_cost_map(SHIPPED_MAP)


def entry(**prices):
    return {"litellm_provider": "openai", "mode": "chat", **prices}


def cost_map(count: int) -> dict[str, dict]:
    return {f"model-{index}": entry(input_cost_per_token=D("0.000001")) for index in range(count)}


# --- loading


def test_shipped_snapshot_holds_4551_models(shipped_map):
    assert len(shipped_map) == 4551
    assert "sample_spec" not in shipped_map
    assert "fallback_generalizations" not in shipped_map


def test_shipped_snapshot_prices_are_decimal(shipped_map):
    assert shipped_map["gpt-4"]["input_cost_per_token"] == D("0.00003")
    assert type(shipped_map["gpt-4"]["input_cost_per_token"]) is D
    leaves = [value for model in shipped_map.values() for key, value in model.items() if "cost" in key]
    assert not [value for value in leaves if isinstance(value, float | int)]


def test_smallest_shipped_price_survives_exactly(shipped_map):
    smallest = min(
        value
        for model in shipped_map.values()
        for key, value in model.items()
        if "cost" in key and isinstance(value, D) and value > 0
    )
    assert smallest == D("1.3E-10")
    assert format_money(smallest) == "0.00000000013"


def test_shipped_snapshot_passes_its_own_validation(shipped_map):
    validate_cost_map(shipped_map, shipped_map)


@pytest.mark.parametrize("as_type", [bytes, str, Path])
def test_load_accepts_bytes_text_and_a_path(as_type, tmp_path):
    raw = json.dumps({"m": entry(input_cost_per_token=0.5)})
    if as_type is Path:
        (tmp_path / "map.json").write_text(raw)
        data = tmp_path / "map.json"
    else:
        data = raw.encode() if as_type is bytes else raw
    assert load_cost_map(data) == {"m": entry(input_cost_per_token=D("0.5"))}


def test_integer_prices_become_decimal_at_any_depth_and_other_integers_stay():
    raw = json.dumps(
        {
            "m": entry(
                input_cost_per_token=0,
                max_tokens=8192,
                search_context_cost_per_query={"search_context_size_low": 1},
                tiered_pricing=[{"range": [0, 32000], "input_cost_per_token": 2}],
            )
        }
    )
    loaded = load_cost_map(raw)["m"]
    assert type(loaded["input_cost_per_token"]) is D
    assert type(loaded["search_context_cost_per_query"]["search_context_size_low"]) is D
    assert type(loaded["tiered_pricing"][0]["input_cost_per_token"]) is D
    assert loaded["max_tokens"] == 8192 and type(loaded["max_tokens"]) is int
    assert loaded["tiered_pricing"][0]["range"] == [0, 32000]


def test_load_drops_the_spec_and_what_is_not_a_model():
    raw = json.dumps({"sample_spec": entry(), "a": entry(), "b": "text", "c": [1], "rules": {"rules": []}})
    assert list(load_cost_map(raw)) == ["a"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [('{"m": ', "not valid JSON"), ("[1, 2]", "not a JSON object"), ('{"m": {"input_cost_per_token": NaN}}', "NaN")],
)
def test_load_refuses_what_is_not_a_cost_map(raw, message):
    with pytest.raises(CostMapError, match=message):
        load_cost_map(raw)


# --- validating a new map before it replaces the current one


@pytest.mark.parametrize(
    ("bad_entry", "message"),
    [
        (entry(input_cost_per_token=D("-0.000001")), "gpt-x: input_cost_per_token is negative"),
        (entry(output_cost_per_token="0.00001"), "gpt-x: output_cost_per_token is not a number"),
        (entry(output_cost_per_token=True), "gpt-x: output_cost_per_token is not a number"),
        (entry(input_cost_per_token=D("Infinity")), "gpt-x: input_cost_per_token is not a finite number"),
        (
            entry(search_context_cost_per_query={"search_context_size_low": D("-1")}),
            r"gpt-x: search_context_cost_per_query\.search_context_size_low is negative",
        ),
        (
            entry(tiered_pricing=[{"range": [0, 10], "input_cost_per_token": "free"}]),
            r"gpt-x: tiered_pricing\[0\]\.input_cost_per_token is not a number",
        ),
        ("not an object", "gpt-x: entry is a str"),
    ],
)
def test_validation_names_the_model_and_field(bad_entry, message):
    with pytest.raises(CostMapError, match=message):
        validate_cost_map({"ok": entry(input_cost_per_token=D(0)), "gpt-x": bad_entry}, None)


@pytest.mark.parametrize("new", [{}, [], "map"])
def test_validation_refuses_an_empty_or_non_object_map(new):
    with pytest.raises(CostMapError, match="non-empty JSON object"):
        validate_cost_map(new, None)


@pytest.mark.parametrize(("kept", "ok"), [(90, True), (89, False)])
def test_validation_refuses_losing_more_than_a_tenth_of_the_models(kept, ok):
    current = cost_map(100)
    new = dict(list(current.items())[:kept])
    if ok:
        validate_cost_map(new, current)
    else:
        with pytest.raises(CostMapError, match="drops 11 of 100 models, more than 10%"):
            validate_cost_map(new, current)


def test_validation_loss_share_is_configurable():
    current = cost_map(10)
    validate_cost_map(dict(list(current.items())[:5]), current, max_loss_share=D("0.5"))


def test_null_prices_are_unset_not_invalid():
    validate_cost_map({"m": entry(cache_read_input_token_cost=None)}, None)


# --- what changed


def test_diff_lists_added_removed_and_changed_prices():
    old = {
        "kept": entry(input_cost_per_token=D("0.00001"), max_tokens=10),
        "repriced": entry(input_cost_per_token=D("0.00001"), output_cost_per_token=D("0.00003")),
        "gone": entry(),
    }
    new = {
        "kept": entry(input_cost_per_token=D("0.000010"), max_tokens=20),  # same price, other digits; only a limit
        "repriced": entry(input_cost_per_token=D("0.000008"), cache_read_input_token_cost=D("8E-7")),
        "fresh": entry(),
    }
    diff = diff_cost_maps(old, new)
    assert diff.added == ["fresh"]
    assert diff.removed == ["gone"]
    assert diff.changed == {
        "repriced": {
            "cache_read_input_token_cost": (None, D("8E-7")),
            "input_cost_per_token": (D("0.00001"), D("0.000008")),
            "output_cost_per_token": (D("0.00003"), None),
        }
    }
    assert json.loads(json.dumps(diff.as_dict())) == {
        "added": ["fresh"],
        "removed": ["gone"],
        "changed": {
            "repriced": {
                "cache_read_input_token_cost": {"old": None, "new": "0.0000008"},
                "input_cost_per_token": {"old": "0.00001", "new": "0.000008"},
                "output_cost_per_token": {"old": "0.00003", "new": None},
            }
        },
    }


def test_diff_covers_nested_pricing_tables():
    old = {"q": entry(tiered_pricing=[{"range": [0, 10], "input_cost_per_token": D("1E-7")}])}
    new = {"q": entry(tiered_pricing=[{"range": [0, 10], "input_cost_per_token": D("2E-7")}])}
    assert diff_cost_maps(old, new).as_dict()["changed"] == {
        "q": {
            "tiered_pricing": {
                "old": [{"range": [0, 10], "input_cost_per_token": "0.0000001"}],
                "new": [{"range": [0, 10], "input_cost_per_token": "0.0000002"}],
            }
        }
    }


def test_diff_of_a_map_with_itself_is_empty(shipped_map):
    diff = diff_cost_maps(shipped_map, shipped_map)
    assert (diff.added, diff.removed, diff.changed) == ([], [], {})


# --- finding a deployment's entry


@pytest.mark.parametrize(
    ("model", "provider", "key"),
    [
        ("gpt-4", "openai", "gpt-4"),  # no openai/gpt-4 entry: the bare name
        ("gpt-4", None, "gpt-4"),
        ("openai/gpt-4", None, "gpt-4"),  # a prefixed name falls back to the bare one
        ("azure/gpt-4-1106-preview", "azure", "azure/gpt-4-1106-preview"),
        ("gpt-4-1106-preview", "azure", "azure/gpt-4-1106-preview"),  # provider/model before model
        ("anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),  # prefixed, only the bare name mapped
    ],
)
def test_lookup(shipped_map, model, provider, key):
    found = lookup(shipped_map, model, provider)
    assert found is not None
    assert found[0] == key
    assert found[1] is shipped_map[key]


def test_lookup_tries_provider_prefix_first():
    cost_map = {"gemini/m": entry(input_cost_per_token=D(2)), "m": entry(input_cost_per_token=D(1))}
    assert lookup(cost_map, "m", "gemini")[0] == "gemini/m"
    assert lookup(cost_map, "m", None)[0] == "m"


def test_lookup_misses():
    assert lookup({"gpt-4": entry()}, "my-finetune", "ollama") is None


def test_sha256_of_the_shipped_snapshot():
    assert sha256_of(SHIPPED_MAP.read_bytes()) == SHIPPED_SHA256
