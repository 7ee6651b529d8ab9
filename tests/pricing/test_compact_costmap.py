"""The cost map as a server holds it (pricing.costmap.CompactCostMap): the same entries as the parsed map, exactly,
in a fraction of the memory."""

import json
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pytest

from pricing.costmap import CompactCostMap, CostMapError, compact_cost_map, load_cost_map, lookup

D = Decimal
SHIPPED_MAP = Path(__file__).resolve().parents[2] / "pricing" / "data" / "model_prices_and_context_window.json"


@pytest.fixture(scope="module")
def shipped():
    raw = SHIPPED_MAP.read_bytes()
    return load_cost_map(raw), compact_cost_map(raw)


def test_every_shipped_entry_reads_back_exactly_as_the_parsed_map_has_it(shipped):
    parsed, compact = shipped

    assert list(compact) == list(parsed)
    # repr, not ==: Decimal("0.5") == Decimal("0.50") and 1 == Decimal(1), but a price keeps its own digits and type.
    assert [repr(compact[model]) for model in compact] == [repr(entry) for entry in parsed.values()]


def test_a_parsed_map_written_compactly_reads_back_exactly(shipped):
    parsed, _compact = shipped

    rewritten = CompactCostMap(parsed)

    assert [repr(rewritten[model]) for model in rewritten] == [repr(entry) for entry in parsed.values()]


def test_the_compact_map_holds_a_fraction_of_the_parsed_maps_memory():
    raw = SHIPPED_MAP.read_bytes()

    def held_bytes(load) -> int:
        tracemalloc.start()
        try:
            held = load(raw)
            size = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(held) == 4551
        return size

    assert held_bytes(compact_cost_map) * 2 < held_bytes(load_cost_map)


def test_a_read_is_a_copy_no_caller_can_change_for_another(shipped):
    _parsed, compact = shipped

    compact["gpt-4"]["input_cost_per_token"] = D(0)

    assert compact["gpt-4"]["input_cost_per_token"] == D("0.00003")


def test_lookup_finds_entries_in_the_compact_map(shipped):
    _parsed, compact = shipped

    assert lookup(compact, "gpt-4-1106-preview", "azure") == (
        "azure/gpt-4-1106-preview",
        compact["azure/gpt-4-1106-preview"],
    )
    assert lookup(compact, "no-such-model", "openai") is None


def test_what_is_not_a_model_is_dropped_and_a_repeated_model_keeps_its_first_place_and_last_entry():
    model = {"litellm_provider": "openai", "input_cost_per_token": 1}
    raw = (
        '{"a": {"litellm_provider": "openai", "input_cost_per_token": 5}, "sample_spec": %s, "b": [1], "c": %s,'
        ' "a": %s, "d": %s, "d": "text"}' % ((json.dumps(model),) * 4)
    )

    compact = compact_cost_map(raw)

    assert compact == load_cost_map(raw)
    assert list(compact.items()) == [
        ("a", {"litellm_provider": "openai", "input_cost_per_token": D(1)}),
        ("c", compact["c"]),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"m": ', "not valid JSON"),
        ('{"m": {}', "not valid JSON"),
        ('{"m": {} "n": {}}', "not valid JSON"),
        ('{"m" {}}', "not valid JSON"),
        ("{m: {}}", "not valid JSON"),
        ('{"m": {}} trailing', "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"m": {"litellm_provider": "x", "input_cost_per_token": NaN}}', "NaN"),
    ],
)
def test_refuses_what_load_cost_map_refuses(raw, message):
    with pytest.raises(CostMapError, match=message):
        load_cost_map(raw)
    with pytest.raises(CostMapError, match=message):
        compact_cost_map(raw)


@pytest.mark.parametrize("raw", ["{}", " { } ", '{"m": {"litellm_provider": "x"}}'])
def test_reads_what_load_cost_map_reads(raw):
    assert compact_cost_map(raw) == load_cost_map(raw)
    assert compact_cost_map(raw.encode()) == load_cost_map(raw)
