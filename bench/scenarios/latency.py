"""What a gateway adds to a call's latency: with big prompts, on streams (first chunk, gaps), next to one huge
call in flight (head-of-line), and when the first deployment fails (failover).

Each scenario has a `baseline` (the upstreams called directly, with the same load generator) and a `gateway`
part run against Tollgate and against LiteLLM, on the same deployments.
"""

import json

from bench import load
from bench.scenarios.kit import Kit, load_problem, stream_problem
from bench.targets import MESSAGES, UPSTREAM, Target

PROMPTS = {"1k": 1_000, "10k": 10_000, "100k": 100_000}  # tokens
PACED = {"chunks": 10, "gap_ms": 5.0, "first_ms": 5.0}  # bench/upstream.py's /paced/ stream
SMALL_STREAMS = 4  # head-of-line: small streaming calls next to the one big call
_WORDS = (
    "the gateway forwards every request to a deployment of the model group and charges the call to its key "
    "budget while streaming each chunk back as soon as it arrives from the provider"
).split()


def _body(model: str, content: str | None = None, stream: bool = False) -> bytes:
    payload = {"model": model, "messages": [{"role": "user", "content": content}] if content else MESSAGES}
    if stream:
        payload["stream"] = True
    return json.dumps(payload, separators=(",", ":")).encode()


def prompt_text(tokens: int) -> str:
    """About `tokens` tokens of English-like text, at the usual ~4 characters a token."""
    words, size, index = [], 0, 0
    while size < 4 * tokens:
        word = _WORDS[index % len(_WORDS)]
        words.append(word)
        size += len(word) + 1
        index += 1
    return " ".join(words)


def _prompt_case(label: str) -> tuple[str, str]:
    text = prompt_text(PROMPTS[label])
    return f"{label}-token prompt ({len(_body('bench-model', text)) // 1000} KB)", text


def warm_up(kit: Kit, target: Target) -> None:
    """Calls and streams before anything is measured: first-call costs (imports, pools, caches) stay out."""
    for _ in range(20):
        response = target.call("json")
        if response.status_code != 200:
            raise RuntimeError(f"{target.name} warm-up: {response.status_code} {response.text[:300]}")
        if target.database is not None:
            target.expected_logs += 1
    body = _body("bench-paced", stream=True)
    kit.streams(target, target.urls["stream"], body, target.headers, 1, count=10, expect=PACED["chunks"])


# -- prompt: overhead against prompt size ------------------------------------------------------------------------


def prompt_baseline(kit: Kit) -> None:
    headers = {"Authorization": "Bearer fake-key"}
    for label in PROMPTS:
        case, text = _prompt_case(label)
        body = _body("gpt-4o-mini", text)
        # The overhead is what a gateway adds to the upstream's own sequential p50; nginx's req/s is beside the point.
        connections, metric, value_of = _PROMPT_METRICS[0]
        result = kit.wrk(None, UPSTREAM["json"], body, headers, connections)
        kit.sheet.put("prompt", case, metric, "baseline", value_of(result), baseline_is="upstream direct")


def prompt_gateway(kit: Kit, target: Target, who: str) -> None:
    for label in PROMPTS:
        case, text = _prompt_case(label)
        body = _body("bench-model", text)
        for connections, metric, value_of in _PROMPT_METRICS:
            result = kit.wrk(target, target.urls["json"], body, target.headers, connections)
            kit.sheet.put("prompt", case, metric, who, value_of(result), problem=load_problem(result))
            if connections == 16 and result.server_cpu_ms is not None:
                kit.sheet.put("prompt", case, _PROMPT_CPU, who, round(result.server_cpu_ms, 2))
            if connections == 1:
                upstream = kit.sheet.value("prompt", case, metric, "baseline")
                if upstream is not None:
                    overhead = round(result.p50_ms - upstream, 2)
                    kit.sheet.put("prompt", case, "overhead over the upstream, p50 ms (1 conn)", who, overhead)


_PROMPT_METRICS = (
    (1, "p50 ms (1 connection)", lambda r: round(r.p50_ms, 2)),
    (16, "req/s (16 connections)", lambda r: round(r.rps, 1)),
)
_PROMPT_CPU = "server CPU ms per call (16 connections)"


# -- streams: time to first chunk, gaps, 1:1 ---------------------------------------------------------------------

_STREAM_CASES = (("alone (one stream at a time)", 1), ("16 concurrent streams", 16))


def paced_url(kit: Kit) -> str:
    return f"{kit.upstream}/paced/v1/chat/completions"


def streams_baseline(kit: Kit) -> None:
    body = _body("gpt-4o-mini", stream=True)
    for case, concurrency in _STREAM_CASES:
        result = kit.streams(None, paced_url(kit), body, {}, concurrency, expect=PACED["chunks"])
        _put_streams(kit, "streams", case, "baseline", result)


def streams_floor(kit: Kit, floor: Target) -> None:
    """The same streams through the floor (Tollgate's server, handler and upstream client relaying the paced
    upstream, no accounting): what the stack itself adds to the first chunk, in the baseline column of the "over the upstream's" row."""
    body = _body("gpt-4o-mini", stream=True)
    for case, concurrency in _STREAM_CASES:
        result = kit.streams(None, floor.urls["stream"], body, floor.headers, concurrency, expect=PACED["chunks"])
        problem = stream_problem(result)
        if problem:
            raise RuntimeError(f"the floor's streams ({case}): {problem}")
        _put_added_to_first_chunk(kit, case, "baseline", result, baseline_is="floor (Tollgate's stack, no accounting)")


def streams_gateway(kit: Kit, target: Target, who: str) -> None:
    body = _body("bench-paced", stream=True)
    for case, concurrency in _STREAM_CASES:
        result = kit.streams(target, target.urls["stream"], body, target.headers, concurrency, expect=PACED["chunks"])
        _put_streams(kit, "streams", case, who, result)
        _put_added_to_first_chunk(kit, case, who, result)


def _put_added_to_first_chunk(kit: Kit, case: str, who: str, result: dict, baseline_is: str = "") -> None:
    upstream = kit.sheet.value("streams", case, "first chunk p50 ms", "baseline")
    if upstream is not None and result["ttft_ms"]["n"]:
        added = round(result["ttft_ms"]["p50"] - upstream, 2)
        note = "target: under 2 ms over the upstream's own"
        metric = "first chunk p50 over the upstream's, ms"
        kit.sheet.put("streams", case, metric, who, added, note=note, baseline_is=baseline_is)


def _put_streams(kit: Kit, scenario: str, case: str, who: str, result: dict) -> None:
    problem = stream_problem(result)
    label = {"baseline_is": "upstream direct"} if who == "baseline" else {}
    put = kit.sheet.put
    put(scenario, case, "first chunk p50 ms", who, result["ttft_ms"].get("p50"), problem=problem, **label)
    put(scenario, case, "first chunk p99 ms", who, result["ttft_ms"].get("p99"), **label)
    gap_note = f"the upstream sends a chunk every {PACED['gap_ms']:g} ms"
    put(scenario, case, "gap between chunks p50 ms", who, result["gap_ms"].get("p50"), note=gap_note, **label)
    put(scenario, case, "gap between chunks p99 ms", who, result["gap_ms"].get("p99"), **label)
    good = round(100 * result["good"] / result["streams"], 1) if result["streams"] else 0.0
    note = f"{PACED['chunks']} chunks a stream, each its own event, in order"
    put(scenario, case, "streams 1:1 and in order, %", who, good, note=note, ratio=False, **label)
    put(scenario, case, "streams/s", who, result["streams_per_s"], **label)


# -- hol: small streams while one 400 KB call is in flight -------------------------------------------------------

_HOL_ALONE = f"{SMALL_STREAMS} small streams, nothing else"
_HOL_WITH = f"{SMALL_STREAMS} small streams + one 400 KB call always in flight"


def hol_baseline(kit: Kit) -> None:
    body = _body("gpt-4o-mini", stream=True)
    result = kit.streams(None, paced_url(kit), body, {}, SMALL_STREAMS, expect=PACED["chunks"])
    _put_hol(kit, _HOL_ALONE, "baseline", result)


def hol_gateway(kit: Kit, target: Target, who: str) -> None:
    small = _body("bench-paced", stream=True)
    url, headers, chunks = target.urls["stream"], target.headers, PACED["chunks"]
    alone = kit.streams(target, url, small, headers, SMALL_STREAMS, expect=chunks)
    _put_hol(kit, _HOL_ALONE, who, alone)
    big = _body("bench-model", prompt_text(PROMPTS["100k"]))
    # wrk keeps exactly one big call in flight from before the small streams start until after they end.
    background = load.start_wrk(target.urls["json"], big, headers, 1, kit.seconds + 1.0, kit.drain, kit.workdir)
    try:
        with_big = kit.streams(target, url, small, headers, SMALL_STREAMS, expect=chunks)
    finally:
        big_result = background.result()
    if target.database is not None:
        target.expected_logs += big_result.ok
    _put_hol(kit, _HOL_WITH, who, with_big)
    kit.sheet.put("hol", _HOL_WITH, "400 KB calls/s alongside", who, round(big_result.rps, 1))
    kit.sheet.put(
        "hol", _HOL_WITH, "400 KB call p50 ms", who, round(big_result.p50_ms, 2), problem=load_problem(big_result)
    )
    if alone["ttft_ms"]["n"] and with_big["ttft_ms"]["n"]:
        stall = round(with_big["ttft_ms"]["p99"] - alone["ttft_ms"]["p99"], 2)
        kit.sheet.put("hol", _HOL_WITH, "first chunk p99 added by the big call, ms", who, stall)
    if alone["gap_ms"]["n"] and with_big["gap_ms"]["n"]:
        stall = round(with_big["gap_ms"]["p99"] - alone["gap_ms"]["p99"], 2)
        kit.sheet.put("hol", _HOL_WITH, "gap p99 added by the big call, ms", who, stall)


def _put_hol(kit: Kit, case: str, who: str, result: dict) -> None:
    label = {"baseline_is": "upstream direct"} if who == "baseline" else {}
    put = kit.sheet.put
    put("hol", case, "first chunk p50 ms", who, result["ttft_ms"].get("p50"), problem=stream_problem(result), **label)
    put("hol", case, "first chunk p99 ms", who, result["ttft_ms"].get("p99"), **label)
    put("hol", case, "gap between chunks p99 ms", who, result["gap_ms"].get("p99"), **label)
    put("hol", case, "longest gap ms", who, result["gap_ms"].get("max"), **label)


# -- failover: the cost of one failed attempt --------------------------------------------------------------------

_FAILOVER_CASES = (
    ("no failure (bench-model)", "bench-model", None),
    ("first deployment answers 500", "bench-fail-500", "fail500"),
    ("first deployment answers 429", "bench-fail-429", "fail429"),
)


def failover_baseline(kit: Kit) -> None:
    for case, _model, path in _FAILOVER_CASES:
        if path is None:
            result = kit.wrk(None, UPSTREAM["json"], _body("gpt-4o-mini"), {}, 1)
            expect, what = 200, "the fallback deployment alone"
        else:
            url = f"{kit.upstream}/{path}/v1/chat/completions"
            result = kit.wrk(None, url, _body("gpt-4o-mini"), {}, 1)
            expect, what = int(path[-3:]), "the failing deployment alone"
        problem = load_problem(result, expect_status=expect)
        p50 = round(result.p50_ms, 2)
        kit.sheet.put("failover", case, "p50 ms (1 connection)", "baseline", p50, baseline_is=what, problem=problem)


def failover_gateway(kit: Kit, target: Target, who: str) -> None:
    direct_p50 = None
    for case, model, path in _FAILOVER_CASES:
        body = _body(model)
        before = kit.upstream_calls().get(path, 0) if path else 0
        single = kit.wrk(target, target.urls["json"], body, target.headers, 1)
        many = kit.wrk(target, target.urls["json"], body, target.headers, 16)
        put = kit.sheet.put
        put("failover", case, "p50 ms (1 connection)", who, round(single.p50_ms, 2), problem=load_problem(single))
        put("failover", case, "req/s (16 connections)", who, round(many.rps, 1), problem=load_problem(many))
        if path is None:
            direct_p50 = single.p50_ms
            continue
        if direct_p50 is not None:
            note = "p50 minus the same gateway's p50 without failure"
            put("failover", case, "cost of the retry, p50 ms", who, round(single.p50_ms - direct_p50, 2), note=note)
        failed = kit.upstream_calls().get(path, 0) - before
        answered = single.ok + many.ok
        attempts = round(failed / answered, 2) if answered else None
        note = "calls the failing deployment got per answered call: 1.0 is one attempt, no retry of it"
        put("failover", case, "failed attempts per call", who, attempts, note=note, ratio=False)
