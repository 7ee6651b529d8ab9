"""Price seeded random usages with LiteLLM and with ``manage.py cost --jsonl``, entry by entry, and report the differences.

Every chat, completion, responses and embedding entry of the shipped cost map gets usages (boundary prompt sizes
for entries with long-context tiers, cache reads and writes, audio, reasoning, off-peak moments, durations for
time-priced entries). Each is priced three ways:

- ours: the project's ``manage.py cost --jsonl`` (exact Decimal), run in a subprocess with the project's venv on
  a fresh embedded SQLite database (its ``TOLLGATE_VAR_DIR`` a temporary directory, migrated first), every case
  one JSON line ``{"model": ..., "usage": {OpenAI usage}, "seconds": ...}``;
- core: LiteLLM's ``generic_cost_per_token`` on the same entry (``_per_second_pricing_cost`` via ``cost_per_token``
  for time-priced entries), the rules the calculator mirrors;
- routed: ``litellm.cost_per_token`` with the entry's provider, the provider-specific route the proxy takes.

LiteLLM computes in floats, so a figure agrees when it is within a relative 1e-9 of ours; the float-vs-exact
drift inside that tolerance is reported on its own, and so is the throughput of the ``manage.py cost --jsonl`` run.

``manage.py cost --jsonl`` prices every line of a run at one moment (``--billed-at``); only entries with
``off_peak_pricing`` depend on it, so every other case is priced in one run and each case of such an entry in a
run of its own at its own moment (a line's ``billed_at`` is written too, for a command that reads it). Run with the LiteLLM peer's interpreter (installed by
../shared/peers/litellm/start.sh), from the project root:

    /tmp/litellm-peer/bin/python bench/compare_litellm_costs.py --usages 5000 --seed 7
"""

import argparse
import functools
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported: price from the bundled map

import litellm  # noqa: E402
from litellm._internal_context import pinned_billing_time  # noqa: E402
from litellm.litellm_core_utils.llm_cost_calc.utils import generic_cost_per_token  # noqa: E402
from litellm.types.utils import Usage as LiteLLMUsage  # noqa: E402

litellm.suppress_debug_info = True
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pricing.calculator import Usage, format_money, is_time_priced  # noqa: E402
from pricing.costmap import load_cost_map  # noqa: E402

PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
COST_MAP = ROOT / "pricing" / "data" / "model_prices_and_context_window.json"
MODES = frozenset({"chat", "completion", "responses", "embedding"})
REL_TOL = 1e-9
THRESHOLD = re.compile(r"_above_(\d+(?:\.\d+)?)(k?)_tokens")
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--usages", type=int, default=5000, help="how many usages to price (default 5000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--examples", type=int, default=3, help="mismatch examples to print per provider")
    parser.add_argument("--json", type=Path, help="also write the full report here")
    args = parser.parse_args()

    raw = COST_MAP.read_bytes()
    ours_map = load_cost_map(raw)
    float_map = json.loads(raw)
    models = sorted(model for model, entry in ours_map.items() if entry.get("mode") in MODES)
    rng = random.Random(args.seed)
    report = {
        "cost_map_entries": len(ours_map),
        "entries_compared": len(models),
        "bundled_map_differences": bundled_map_differences(float_map, ours_map),
        "core": Tally(),
        "routed": Tally(),
    }
    cases = []
    for index in range(args.usages):
        model = models[index % len(models)] if index < len(models) else rng.choice(models)
        entry = ours_map[model]
        usage = random_usage(rng, entry)
        billed_at = YEAR_START + timedelta(seconds=rng.randrange(365 * 24 * 3600))
        duration = Decimal(rng.randrange(0, 120_000)) / 1000
        cases.append((model, entry, usage, billed_at, duration))
    priced, runs = price_with_manage_py(cases)
    report["jsonl_runs"] = runs
    for (model, entry, usage, billed_at, duration), answer in zip(cases, priced, strict=True):
        case = {"model": model, "provider": entry["litellm_provider"], "usage": usage_dict(usage)}
        case |= {"billed_at": billed_at.isoformat(), "duration_seconds": str(duration)}
        elsewhere = resolves_elsewhere(model, proxy_provider(entry["litellm_provider"]))
        problem = answer_problem(model, answer)
        if problem:
            report["core"].errors[f"{case['provider']}: manage.py cost: {problem}"] += 1
            if elsewhere:
                report["routed"].elsewhere += 1
            else:
                report["routed"].errors[f"{case['provider']}: manage.py cost: {problem}"] += 1
            continue
        ours = Decimal(answer["cost"])  # a JSON integer ("0") parses as int
        case["ours"] = format_money(ours)
        float_entry = {**float_map[model], "key": model}
        time_priced = is_time_priced(entry)
        core = functools.partial(core_cost, model, float_entry, time_priced, usage, duration, billed_at)
        report["core"].add(case, ours, core)
        if elsewhere:
            report["routed"].elsewhere += 1
        else:
            report["routed"].add(
                case, ours, functools.partial(routed_cost, model, float_entry, usage, duration, billed_at)
            )
    print_report(report, args.examples)
    if args.json:
        args.json.write_text(json.dumps({k: v.as_dict() if isinstance(v, Tally) else v for k, v in report.items()}))


class Tally:
    """Agreement counts for one way of asking LiteLLM."""

    def __init__(self) -> None:
        self.compared = self.bit_identical = self.within_tolerance = 0
        self.max_rel_drift = 0.0
        self.abs_drift = Decimal(0)
        self.mismatches: list[dict] = []
        self.errors: Counter = Counter()
        self.elsewhere = 0  # routed only: LiteLLM's name lookup lands on another entry (provider/model first)

    def add(self, case: dict, ours: Decimal, theirs_of) -> None:
        try:
            theirs = theirs_of()
        except Exception as error:  # LiteLLM raises bare Exception for what it cannot price
            self.errors[f"{case['provider']}: {type(error).__name__}: {str(error)[:80]}"] += 1
            return
        self.compared += 1
        if not math.isclose(float(ours), theirs, rel_tol=REL_TOL, abs_tol=0.0):
            rel = abs(float(ours) - theirs) / max(abs(float(ours)), abs(theirs))
            self.mismatches.append(case | {"litellm": repr(theirs), "relative_difference": f"{rel:.3g}"})
            return
        self.bit_identical += float(ours) == theirs
        self.within_tolerance += float(ours) != theirs
        self.abs_drift += abs(Decimal(theirs) - ours)
        if ours:
            self.max_rel_drift = max(self.max_rel_drift, abs(float(ours) - theirs) / float(ours))

    def as_dict(self) -> dict:
        return {
            "compared": self.compared,
            "agree": self.compared - len(self.mismatches),
            "agree_bit_identical_as_float": self.bit_identical,
            "agree_within_1e-9_float_drift": self.within_tolerance,
            "max_relative_float_drift": self.max_rel_drift,
            "total_absolute_float_drift_usd": format_money(self.abs_drift),
            "mismatches": len(self.mismatches),
            "mismatches_by_provider": dict(Counter(case["provider"] for case in self.mismatches).most_common()),
            "errors": dict(self.errors),
            "skipped_resolves_to_another_entry": self.elsewhere,
            "mismatch_cases": self.mismatches,
        }


def price_with_manage_py(cases: list[tuple]) -> tuple[list[dict], list[dict]]:
    """Price every case with the project's ``manage.py cost --jsonl`` on a fresh embedded database: the answers
    (one parsed output line per case, in order) and, per run, its line count and wall time."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TOLLGATE_CONFIG"}}
    groups: dict[str | None, list[int]] = {}
    for index, (_model, entry, _usage, billed_at, _duration) in enumerate(cases):
        # Only off-peak pricing depends on the moment; everything else is priced in one run.
        moment = billed_at.isoformat() if "off_peak_pricing" in entry else None
        groups.setdefault(moment, []).append(index)
    answers: list[dict | None] = [None] * len(cases)
    runs = []
    with tempfile.TemporaryDirectory(prefix="tollgate-cost-check-") as var_dir:
        env["TOLLGATE_VAR_DIR"] = var_dir
        manage = [str(PROJECT_PYTHON), "manage.py"]
        subprocess.run([*manage, "migrate", "--no-input"], cwd=ROOT, env=env, check=True, capture_output=True)
        for moment, indexes in groups.items():
            path = Path(var_dir) / "cases.jsonl"
            path.write_text("".join(jsonl_line(*cases[index]) + "\n" for index in indexes), encoding="utf-8")
            command = [*manage, "cost", "--jsonl", str(path), "--billed-at", moment or YEAR_START.isoformat()]
            started = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            lines = done.stdout.splitlines()
            if len(lines) != len(indexes):
                sys.exit(f"manage.py cost --jsonl wrote {len(lines)} lines for {len(indexes)}: {done.stderr[-2000:]}")
            for index, line in zip(indexes, lines, strict=True):
                answers[index] = json.loads(line, parse_float=Decimal)
            runs.append({"billed_at": moment, "lines": len(indexes), "seconds": round(seconds, 3)})
    return answers, runs


def jsonl_line(model: str, entry: dict, usage: Usage, billed_at: datetime, duration: Decimal) -> str:
    usage_object = openai_usage(usage)
    if Usage.from_openai(usage_object) != usage:
        raise AssertionError(f"{usage_object} does not read back as {usage}")
    line = {"model": model, "usage": usage_object, "seconds": str(duration), "billed_at": billed_at.isoformat()}
    return json.dumps(line)


def openai_usage(usage: Usage) -> dict:
    """The usage as an OpenAI chat-completions usage object (with LiteLLM's top-level cache-write count)."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": usage.input_audio_tokens},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": usage.output_audio_tokens,
        },
    }


def answer_problem(model: str, answer: dict) -> str:
    """Why an output line is not a price of this cost-map entry ("" when it is)."""
    if "error" in answer:
        return str(answer["error"])[:80]
    if not isinstance(answer.get("cost"), Decimal | int):
        return f"no exact cost in {answer!r}"[:80]
    if answer.get("source") != "cost_map" or answer.get("matched") != model:
        return f"priced from {answer.get('source')} {answer.get('matched')!r}, not this entry"
    return ""


def core_cost(
    model: str, entry: dict, time_priced: bool, usage: Usage, duration: Decimal, billed_at: datetime
) -> float:
    if time_priced:
        prompt, completion = litellm.cost_per_token(
            model=model, custom_llm_provider=entry["litellm_provider"], response_time_ms=float(duration * 1000)
        )
    else:
        prompt, completion = generic_cost_per_token(
            model=model,
            usage=litellm_usage(usage),
            custom_llm_provider=entry["litellm_provider"],
            model_info=entry,
            current_time=billed_at,
        )
    return prompt + completion


def routed_cost(model: str, entry: dict, usage: Usage, duration: Decimal, billed_at: datetime) -> float:
    with pinned_billing_time(billed_at):
        prompt, completion = litellm.cost_per_token(
            model=model,
            custom_llm_provider=proxy_provider(entry["litellm_provider"]),
            usage_object=litellm_usage(usage),
            response_time_ms=float(duration * 1000),
        )
    return prompt + completion


def proxy_provider(provider: str) -> str:
    """The provider a proxy call carries: the map files Vertex entries under "vertex_ai-<family>" providers, but a
    request for vertex_ai/<model> reaches cost_per_token as "vertex_ai", which has a route of its own."""
    return "vertex_ai" if provider.startswith("vertex_ai") else provider


def resolves_elsewhere(model: str, provider: str) -> bool:
    """cost_per_token tries provider/model before model: "gemini-exp-1206" from gemini prices as
    "gemini/gemini-exp-1206", a different entry, so comparing it against this one would compare two entries."""
    return not model.startswith(f"{provider}/") and f"{provider}/{model}" in litellm.model_cost


def random_usage(rng: random.Random, entry: dict) -> Usage:
    """A usage shaped like real traffic, with prompt sizes on and either side of the entry's tier boundaries,
    and one in twenty inconsistent (cache or audio counts past prompt_tokens) as streamed usage sometimes is."""
    boundaries = tier_boundaries(entry)
    roll = rng.random()
    if boundaries and roll < 0.3:
        prompt = max(rng.choice(boundaries) + rng.choice((-1, 0, 1)), 0)
    elif roll < 0.55:
        prompt = rng.randrange(0, 4_000)
    elif roll < 0.85:
        prompt = rng.randrange(0, 300_000)
    else:
        prompt = rng.randrange(0, 1_200_000)
    room = prompt + (rng.randrange(0, 2_000) if rng.random() < 0.05 else 0)
    cached = rng.randint(0, room) if rng.random() < 0.5 else 0
    creation = rng.randint(0, max(room - cached, 0)) if rng.random() < 0.3 else 0
    audio_in = rng.randint(0, max(room - cached - creation, 0)) if rng.random() < 0.2 else 0
    completion = 0 if entry.get("mode") == "embedding" else rng.randrange(0, 40_000)
    reasoning = rng.randint(0, completion) if rng.random() < 0.4 else 0
    audio_out = rng.randint(0, completion - reasoning) if rng.random() < 0.2 else 0
    return Usage(prompt, completion, cached, creation, audio_in, reasoning, audio_out)


def tier_boundaries(entry: dict) -> list[int]:
    found = {int(Decimal(m[1]) * (1000 if m[2] else 1)) for key in entry if (m := THRESHOLD.search(key))}
    for row in entry.get("tiered_pricing") or []:
        found.update(int(bound) for bound in row.get("range") or [])
    return sorted(found)


def litellm_usage(usage: Usage) -> LiteLLMUsage:
    return LiteLLMUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
        prompt_tokens_details={
            "cached_tokens": usage.cached_tokens,
            "cache_creation_tokens": usage.cache_creation_tokens,
            "audio_tokens": usage.input_audio_tokens,
        },
        completion_tokens_details={
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": usage.output_audio_tokens,
        },
    )


def usage_dict(usage: Usage) -> dict[str, int]:
    return {name: getattr(usage, name) for name in Usage.__dataclass_fields__}


def bundled_map_differences(float_map: dict, models: dict) -> int:
    """How many model entries of LiteLLM's bundled map differ from our snapshot (0: both price the same data)."""
    return sum(1 for model in models if litellm.model_cost.get(model) != float_map[model])


def print_report(report: dict, examples: int) -> None:
    print(
        f"cost map entries: {report['cost_map_entries']}; chat/completion/responses/embedding entries compared: "
        f"{report['entries_compared']}; LiteLLM's bundled map differs from ours in "
        f"{report['bundled_map_differences']} entries"
    )
    runs = report["jsonl_runs"]
    main_run = max(runs, key=lambda run: run["lines"])
    lines, seconds = sum(run["lines"] for run in runs), sum(run["seconds"] for run in runs)
    print(
        f"manage.py cost --jsonl: {main_run['lines']} lines in {main_run['seconds']:.2f} s "
        f"({main_run['lines'] / main_run['seconds']:,.0f} lines/s, Django start-up included); all {len(runs)} runs: "
        f"{lines} lines in {seconds:.2f} s ({lines / seconds:,.0f} lines/s; {len(runs) - 1} runs of one off-peak-priced "
        "case at its own --billed-at)"
    )
    for name in ("core", "routed"):
        tally = report[name].as_dict()
        print(
            f"\n[{name}] compared {tally['compared']}: agree {tally['agree']} "
            f"({tally['agree_bit_identical_as_float']} bit-identical as floats, "
            f"{tally['agree_within_1e-9_float_drift']} within 1e-9 float drift, max relative drift "
            f"{tally['max_relative_float_drift']:.3g}, total absolute drift ${tally['total_absolute_float_drift_usd']}); "
            f"mismatches {tally['mismatches']}; errors {sum(tally['errors'].values())}"
        )
        if tally["skipped_resolves_to_another_entry"]:
            print(
                f"  not compared: {tally['skipped_resolves_to_another_entry']} usages of entries whose bare name "
                "LiteLLM's lookup resolves to the provider-prefixed entry instead"
            )
        for provider, count in tally["mismatches_by_provider"].items():
            print(f"  {provider}: {count} mismatches")
            for case in [c for c in tally["mismatch_cases"] if c["provider"] == provider][:examples]:
                print(f"    {case['model']} {case['usage']} ours={case['ours']} litellm={case['litellm']}")
        for error, count in tally["errors"].items():
            print(f"  error x{count}: {error}")


if __name__ == "__main__":
    main()
