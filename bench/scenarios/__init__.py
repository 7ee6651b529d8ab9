"""Scenarios beyond raw throughput (issue #7), each a row of the table with Tollgate and LiteLLM side by side:

    prompt    overhead against prompt size: 1k, 10k and 100k-token prompts (4, 40, 400 KB bodies)
    streams   time to first chunk and gaps between chunks, alone and under 16 concurrent streams; chunks 1:1, in order;
              what the floor (bench/floor: Tollgate's server and upstream client, no accounting) adds to the first
              chunk, for comparison
    hol       head-of-line: small streams while one 400 KB call is always in flight
    flood     wrong keys: rejections/s against valid calls/s, database transactions and upstream calls per attempt
    failover  the cost of a retry when the first deployment answers 500 or 429
    memory    RSS idle, at its peak, and its growth over 100,000 calls
    scale     auth and routing with 100,000 keys and 500 deployments against 10 (Tollgate only)
    ledger    the spend ledger's writer alone: logs/s into PostgreSQL (Tollgate only)
    workers   Tollgate with 2 workers over 1, from the main rows (adds 2 to --workers)

They run after the main rows, on servers of their own: bench/upstream.py (paced streams, failing deployments, a
count of every call) beside nginx, a Tollgate server on a fresh database with the scenario deployments
(scenarios/configs.py) and a virtual key, more Tollgate servers on that database where a scenario needs other
settings, and LiteLLM on the same deployments. Every load runs against the upstreams directly first where that
gives a baseline. A scenario that fails is reported and the others still run; so does a ledger check per
Tollgate server (one spend log per answered call).

Loads last min(--duration, 3) seconds (2 with --quick). Where a scenario makes no sense for the peer, its LiteLLM
cell says n/a and why: LiteLLM runs without a database here (scale, ledger, database transactions), has no
failed-auth throttle, and gets a tenth of Tollgate's calls in the memory run (it is too slow for 100,000 within
the run's ~15 minutes). --quick: 10,000 calls (LiteLLM 2,000) for memory, 10,000 keys for scale.
"""

import contextlib
import subprocess
import sys

import httpx

from bench import services
from bench.peers import litellm, litellm_installed
from bench.scenarios import configs, flood, latency, memory, scale, spend_logging
from bench.scenarios.kit import Kit
from bench.targets import ROOT, floor, ledger_check, tollgate_database, tollgate_server
from bench.targets import use_virtual_key as make_virtual_key

NAMES = ("prompt", "streams", "hol", "flood", "failover", "memory", "scale", "ledger", "workers")
# Against each gateway, in this order: the flood first, on a server that has done nothing else yet (its database
# transactions are counted), the memory run last (it leaves 100,000 spend logs behind).
_BASELINES = {
    "prompt": latency.prompt_baseline,
    "streams": latency.streams_baseline,
    "hol": latency.hol_baseline,
    "failover": latency.failover_baseline,
}
_GATEWAY = {
    "flood": flood.gateway,
    "prompt": latency.prompt_gateway,
    "streams": latency.streams_gateway,
    "hol": latency.hol_gateway,
    "failover": latency.failover_gateway,
    "memory": memory.gateway,
}
_ERRORS = (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError, ValueError, KeyError)


# Run only when named, and alone: hours at 20 million logs, on databases of their own (bench/scenarios/ledger_scale.py).
ALONE = ("ledger-scale",)


def parse(text: str) -> list[str]:
    """--scenarios: "all", "none" or a comma list of NAMES; or one of ALONE by itself."""
    if text in ("all", "none", ""):
        return list(NAMES) if text == "all" else []
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(NAMES) - set(ALONE))
    if unknown:
        raise SystemExit(f"--scenarios: unknown {', '.join(unknown)} (known: {', '.join((*NAMES, *ALONE))})")
    if set(chosen) & set(ALONE) and len(set(chosen)) > 1:
        raise SystemExit(f"--scenarios: {', '.join(ALONE)} runs alone")
    return [name for name in (*NAMES, *ALONE) if name in chosen]


def run(args, workdir, main_rows: list[dict]) -> dict:
    seconds = min(args.duration, 2.0 if args.quick else 3.0)
    kit = Kit(args=args, workdir=workdir, seconds=seconds, quick=args.quick)
    chosen = args.scenarios
    if "workers" in chosen:
        _workers(kit, main_rows)
    with contextlib.ExitStack() as stack:
        kit.upstream = stack.enter_context(_bench_upstream(workdir))
        print("\n== scenarios: the upstreams directly", flush=True)
        for name, baseline in _BASELINES.items():
            if name in chosen:
                _attempt(kit, name, "baseline", baseline, kit)
        if "streams" in chosen and "floor" in args.targets:
            _attempt(kit, "streams", "floor", _floor_streams, kit)
        if "tollgate" in args.targets:
            _attempt(kit, "tollgate", "tollgate", _tollgate, kit, chosen)
        if "litellm" in args.targets:
            _attempt(kit, "litellm", "litellm", _litellm, kit, chosen)
    return {
        "chosen": chosen,
        "seconds_per_row": seconds,
        "rows": kit.sheet.rows(),
        "servers": kit.servers,
        "failures": kit.failures,
        "deployments": {"paced": latency.PACED, "groups": configs.GROUPS, "router_settings": configs.ROUTER},
    }


def _attempt(kit: Kit, scenario: str, who: str, function, *args) -> None:
    try:
        function(*args)
    except _ERRORS as exc:
        print(f"!!! scenario {scenario} ({who}) failed: {exc}", flush=True)
        kit.failures.append({"scenario": scenario, "who": who, "error": str(exc)[-3000:]})


@contextlib.contextmanager
def _bench_upstream(workdir):
    port = services.free_port()
    paced = latency.PACED
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--chunks", str(paced["chunks"])]
    argv += ["--gap-ms", str(paced["gap_ms"]), "--first-ms", str(paced["first_ms"])]
    base = f"http://127.0.0.1:{port}"
    service = services.Service(
        "bench-upstream", argv, env=None, cwd=ROOT, log_path=workdir / "bench-upstream.log", health_url=f"{base}/stats"
    ).start()
    try:
        service.wait_healthy(30)
        yield base
    finally:
        service.stop()


def _floor_streams(kit: Kit) -> None:
    print("\n== scenarios: the floor", flush=True)
    with floor(kit.args, kit.workdir, stream_upstream=latency.paced_url(kit)) as target:
        latency.streams_floor(kit, target)


def _against(kit: Kit, target, who: str, chosen: list[str]) -> None:
    latency.warm_up(kit, target)
    for name, gateway in _GATEWAY.items():
        if name in chosen:
            print(f"  {name}", flush=True)
            _attempt(kit, name, who, gateway, kit, target, who)


def _tollgate(kit: Kit, chosen: list[str]) -> None:
    args, workdir = kit.args, kit.workdir
    print("\n== scenarios: Tollgate", flush=True)
    with tollgate_database(args, workdir, "scenarios") as database:
        virtual_key = None
        if set(chosen) & set(_GATEWAY) or "scale" in chosen:
            config = configs.tollgate(kit.upstream)
            env = flood.UNTHROTTLED
            with tollgate_server(args, workdir, "tollgate-scenarios", database, config, env=env) as target:
                virtual_key = make_virtual_key(target, models=configs.GROUPS)
                _against(kit, target, "tollgate", chosen)
                target.info["ledger"] = ledger_check(target)
                kit.server_info(target)
        if "flood" in chosen:
            print("  flood, throttle on", flush=True)
            _attempt(kit, "flood", "tollgate", flood.throttled, kit, database)
        if "scale" in chosen:
            print("  scale", flush=True)
            _attempt(kit, "scale", "tollgate", scale.run, kit, database, virtual_key)
        if "ledger" in chosen:
            print("  ledger", flush=True)
            _attempt(kit, "ledger", "tollgate", spend_logging.run, kit, database)


def _litellm(kit: Kit, chosen: list[str]) -> None:
    if not set(chosen) & set(_GATEWAY):
        return
    if not litellm_installed():
        raise RuntimeError("the LiteLLM peer is not installed: run the main rows with --peer once")
    print("\n== scenarios: LiteLLM", flush=True)
    config = kit.workdir / "litellm-scenarios.yaml"
    config.write_text(configs.litellm(kit.upstream))
    with litellm(kit.args, kit.workdir, "litellm-scenarios", config) as target:
        _against(kit, target, "litellm", chosen)
        kit.server_info(target)


def _workers(kit: Kit, main_rows: list[dict]) -> None:
    index = {(r["target"], r["mode"], r["connections"]): r for r in main_rows if r["valid"] and not r.get("profiled")}
    cells = sorted({(mode, connections) for _, mode, connections in index}, key=lambda c: (c[0] != "json", c[1]))
    found = False
    for mode, connections in cells:
        one, two = index.get(("tollgate", mode, connections)), index.get(("tollgate-w2", mode, connections))
        if not (one and two and one["rps"]):
            continue
        found = True
        case = f"{mode}, {connections} connection{'s' if connections > 1 else ''}"
        kit.sheet.put("workers", case, "req/s", "baseline", one["rps"], baseline_is="1 worker")
        kit.sheet.put(
            "workers", case, "req/s", "tollgate", two["rps"], note=f"2 workers: x{two['rps'] / one['rps']:.2f}"
        )
        kit.sheet.put("workers", case, "req/s", "litellm", "n/a: the peer runs with 1 worker")
    if not found:
        kit.sheet.put("workers", "2 workers over 1", "req/s", "tollgate", "n/a: no main rows of 1 and 2 workers")
