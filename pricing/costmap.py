"""The LiteLLM cost map (``model_prices_and_context_window.json``): load it with every price as Decimal, check a
new copy before it replaces the current one, say what changed, and find a deployment's entry in it.

Pure Python, no Django: the refresh task, the admin and the tests all call these functions directly.
"""

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pricing.calculator import NOT_A_NUMBER, format_money, price_problem
from pricing.charges import together_ai_bucket

# The map's own documentation of its fields; not a model.
SPEC_KEY = "sample_spec"


class CostMapError(ValueError):
    """A cost map that must not replace the current one; the message says which model and field, and why."""


@dataclass(frozen=True)
class CostMapDiff:
    """What a new cost map changes: models added and removed, and for models in both, the price fields whose
    value changed, as ``{model: {field: (old, new)}}`` (None where the field is absent on one side)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": {
                model: {
                    name: {"old": exact_strings(old), "new": exact_strings(new)} for name, (old, new) in fields.items()
                }
                for model, fields in self.changed.items()
            },
        }


def load_cost_map(data: bytes | str | Path) -> dict[str, dict]:
    """Parse a cost map (raw JSON bytes or text, or a path to the file) into ``{model: entry}``.

    Every number under a price field (a key containing ``cost``, at any depth) is a Decimal, JSON integers
    included, so no price passes through a float. ``sample_spec`` and anything that is not a model entry
    (not an object, or an object without ``litellm_provider``, such as ``fallback_generalizations``) is dropped.
    """
    if isinstance(data, Path):
        data = data.read_bytes()
    try:
        parsed = json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as error:
        raise CostMapError(f"not valid JSON: {error}") from error
    if not isinstance(parsed, dict):
        raise CostMapError(f"not a JSON object of model entries but a {type(parsed).__name__}")
    return {model: _with_decimal_prices(entry) for model, entry in parsed.items() if _is_model_entry(model, entry)}


class CompactCostMap(Mapping[str, dict]):
    """A cost map held as each entry's JSON text, without a space, parsed when read: ``{model: entry}`` as
    ``load_cost_map`` gives it, every price an exact Decimal, in about a sixth of the memory.

    Measured on the shipped map (4,551 models): parsed into dicts of Decimals it holds 8.0 MB of a server's
    resident memory; as text, 2.0 MB (the server's idle RSS went from 129.4 to 124.1 MB). Reading an entry parses
    it again (about 6 us): the routing table keeps the entries of its deployments, so no call reads this map. Each
    read is a new dict, which no caller can change for another.
    """

    __slots__ = ("_texts",)

    def __init__(self, entries: Mapping[str, dict] | None = None):
        self._texts = {model: _compact_json(entry) for model, entry in (entries or {}).items()}

    def __getitem__(self, model: str) -> dict:
        return _with_decimal_prices(_ENTRY_DECODER.decode(self._texts[model]))

    def __contains__(self, model: object) -> bool:
        return model in self._texts

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def __repr__(self) -> str:
        return f"<CompactCostMap of {len(self._texts)} models>"


def compact_cost_map(data: bytes | str | Path) -> CompactCostMap:
    """``load_cost_map(data)`` held compactly: the JSON is read one model entry at a time, so the whole map is never
    parsed at once."""
    if isinstance(data, Path):
        data = data.read_bytes()
    texts: dict[str, str | None] = {}
    try:
        text = data.decode() if isinstance(data, bytes) else data
        for model, entry in _members(text):
            # As load_cost_map's dict: a model named twice keeps its first place and its last entry.
            texts[model] = _compact_json(entry) if _is_model_entry(model, entry) else None
    except _NotAnObject:
        load_cost_map(text)  # raises the error that says what it is instead
        raise
    except ValueError as error:
        raise CostMapError(f"not valid JSON: {error}") from error
    cost_map = CompactCostMap()
    cost_map._texts = {model: entry for model, entry in texts.items() if entry is not None}
    return cost_map


def validate_cost_map(
    new: Mapping[str, dict], current: Mapping[str, dict] | None, max_loss_share: Decimal = Decimal("0.1")
) -> None:
    """Raise CostMapError unless ``new`` may replace ``current``: an object of model entries, every price a
    non-negative number, and no more than ``max_loss_share`` of the current models gone."""
    if not isinstance(new, Mapping) or not new:
        raise CostMapError("the cost map is not a non-empty JSON object of model entries")
    for model, entry in new.items():
        if not isinstance(entry, dict):
            raise CostMapError(f"{model}: entry is a {type(entry).__name__}, not an object")
        for name, value in _price_fields(entry):
            if problem := price_problem(value):
                shown = repr(value) if problem == NOT_A_NUMBER else value
                raise CostMapError(f"{model}: {name} {problem} ({shown})")
    if current:
        lost = sorted(set(current) - set(new))
        if len(lost) > max_loss_share * len(current):
            raise CostMapError(
                f"the new cost map drops {len(lost)} of {len(current)} models, more than "
                f"{format_money(max_loss_share * 100)}% (first: {', '.join(lost[:5])})"
            )


def diff_cost_maps(old: Mapping[str, dict], new: Mapping[str, dict]) -> CostMapDiff:
    """What replacing ``old`` by ``new`` changes; only price fields (``*cost*`` and ``*_pricing`` tables) count."""
    changed = {}
    for model in sorted(set(old) & set(new)):
        before, after = old[model], new[model]
        fields = {
            name: (before.get(name), after.get(name))
            for name in sorted(_price_keys(before) | _price_keys(after))
            if before.get(name) != after.get(name)
        }
        if fields:
            changed[model] = fields
    return CostMapDiff(added=sorted(set(new) - set(old)), removed=sorted(set(old) - set(new)), changed=changed)


def lookup(cost_map: Mapping[str, dict], model: str, provider: str | None) -> tuple[str, dict] | None:
    """The entry that prices ``model`` served by ``provider``, as ``(key, entry)``, or None.

    Tries ``provider/model``, then ``model`` as given, then, for a prefixed name such as
    ``azure/gpt-4-1106-preview``, the name without its prefix: the order LiteLLM's cost_per_token tries. A
    Together AI model the map does not name is priced at its size bucket (pricing.charges.together_ai_bucket)."""
    candidates = [model]
    if provider and not model.startswith(f"{provider}/"):
        candidates.insert(0, f"{provider}/{model}")
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    found = next(((key, cost_map[key]) for key in candidates if key in cost_map), None)
    if found is None and provider == "together_ai" and (bucket := together_ai_bucket(model)) and bucket in cost_map:
        return bucket, cost_map[bucket]
    return found


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a price can have")


def _is_model_entry(model: str, entry: Any) -> bool:
    return model != SPEC_KEY and isinstance(entry, dict) and "litellm_provider" in entry


_ENTRY_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)
_SPACE = re.compile(r"[ \t\n\r]*")


class _NotAnObject(ValueError):
    pass


def _members(text: str) -> Iterator[tuple[str, Any]]:
    """Each ``(key, value)`` of the JSON object ``text``, parsed one value at a time (as json.loads would parse
    them: a key given twice is met twice, the later value wins where the caller keeps a dict)."""
    scan_value, at = _ENTRY_DECODER.scan_once, _SPACE.match(text).end()
    if not text.startswith("{", at):
        raise _NotAnObject
    at = _SPACE.match(text, at + 1).end()
    if text.startswith("}", at):
        return _expect_end(text, at + 1)
    while True:
        if not text.startswith('"', at):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, at)
        key, at = json.decoder.scanstring(text, at + 1)
        at = _SPACE.match(text, at).end()
        if not text.startswith(":", at):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, at)
        at = _SPACE.match(text, at + 1).end()
        try:
            value, at = scan_value(text, at)
        except StopIteration as stop:
            raise json.JSONDecodeError("Expecting value", text, stop.value) from None
        yield key, value
        at = _SPACE.match(text, at).end()
        if text.startswith("}", at):
            return _expect_end(text, at + 1)
        if not text.startswith(",", at):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        at = _SPACE.match(text, at + 1).end()


def _expect_end(text: str, at: int) -> None:
    at = _SPACE.match(text, at).end()
    if at != len(text):
        raise json.JSONDecodeError("Extra data", text, at)


def _compact_json(value: Any) -> str:
    """``value`` as JSON without a space, every Decimal written as its own digits (str(Decimal) reads back as the
    same Decimal: digits and exponent)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key)}:{_compact_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact_json(item) for item in value) + "]"
    return json.dumps(value)


def _is_price_key(key: str) -> bool:
    return "cost" in key


def _price_keys(entry: Mapping[str, Any]) -> set[str]:
    return {key for key in entry if _is_price_key(key) or key.endswith("_pricing")}


def _with_decimal_prices(value: Any, in_price: bool = False) -> Any:
    """``value`` with every integer inside a price field turned into a Decimal (floats already are)."""
    if isinstance(value, dict):
        return {key: _with_decimal_prices(item, in_price or _is_price_key(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_decimal_prices(item, in_price) for item in value]
    if in_price and isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


def _price_fields(value: Any, path: str = "", in_price: bool = False):
    """Every leaf under a price field of an entry, as ``(dotted field path, value)``; None values are unset."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _price_fields(item, f"{path}.{key}" if path else key, in_price or _is_price_key(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _price_fields(item, f"{path}[{index}]", in_price)
    elif in_price and value is not None:
        yield path, value


def exact_strings(value: Any) -> Any:
    """``value`` with every Decimal written as its exact digits, for JSON (a diff, a JSON column)."""
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, dict):
        return {key: exact_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [exact_strings(item) for item in value]
    return value
