"""Scale: auth and routing must cost the same with 100,000 keys and 500 deployments as with 10 (Tollgate only).

Two fresh servers on the scenario database, one after the other, measured alike with the same virtual key: the
first with 10 keys and 10 deployments, the second after bulk inserts (bench/scenarios/make_keys.py) brought the
keys to 100,000 and with a config of 500 deployments (the scenario groups plus fillers, five to a group). The
first call with a virtual key loads every key's hash into the server's key cache: its time is a row too.
"""

import time

import httpx

from bench import services
from bench.scenarios import configs
from bench.scenarios.kit import Kit, load_problem
from bench.targets import ledger_check, tollgate_server

KEYS, DEPLOYMENTS = 100_000, 500
QUICK_KEYS = 10_000
SMALL = "10 keys, 10 deployments"
_NOT_LITELLM = "n/a: LiteLLM runs without a database in this bench (master key only), so it has no keys to scale"


def run(kit: Kit, database: services.BenchDatabase, virtual_key: str | None) -> None:
    keys = QUICK_KEYS if kit.quick else KEYS
    big = f"{keys:,} keys, {DEPLOYMENTS} deployments"
    if virtual_key is None:
        raise RuntimeError("the scale scenario needs the scenario server's virtual key")
    _add_keys(kit, database, 10)
    small, small_problem = _measure(kit, database, "tollgate-scale-small", configs.tollgate(kit.upstream), virtual_key)
    made = _add_keys(kit, database, keys)
    config = configs.tollgate(kit.upstream, DEPLOYMENTS)
    large, large_problem = _measure(kit, database, "tollgate-scale-large", config, virtual_key)
    note = f"{made['created']:,} keys inserted in {made['seconds']} s (bulk_create)"
    for metric, value in large.items():
        kit.sheet.put("scale", big, metric, "baseline", small[metric], baseline_is=SMALL, problem=small_problem)
        kit.sheet.put("scale", big, metric, "tollgate", value, note=note, problem=large_problem)
        kit.sheet.put("scale", big, metric, "litellm", _NOT_LITELLM)
        if isinstance(value, int | float) and small[metric]:
            kit.sheet.put("scale", big, metric, "tollgate", value, note=f"x{value / small[metric]:.2f} of {SMALL}")


def _add_keys(kit: Kit, database: services.BenchDatabase, total: int) -> dict:
    missing = total - database.scalar("SELECT count(*) FROM keys_virtualkey")
    if missing <= 0:
        return {"created": 0, "seconds": 0.0}
    return kit.tollgate_script(database, "make_keys.py", str(missing))


def _measure(kit: Kit, database, name: str, config: str, virtual_key: str) -> tuple[dict, str]:
    with tollgate_server(kit.args, kit.workdir, name, database, config) as target:
        target.headers = {"Authorization": f"Bearer {virtual_key}"}
        started = time.perf_counter()
        first = httpx.post(target.urls["json"], content=target.body("json"), headers=target.headers, timeout=60)
        first_ms = (time.perf_counter() - started) * 1000
        if first.status_code != 200:
            raise RuntimeError(f"{name}: the virtual key was refused: {first.status_code} {first.text[:300]}")
        target.expected_logs += 1
        for _ in range(20):
            target.expected_logs += target.call("json").status_code == 200
        rss = services.rss_mb(target.service.pid)
        many = kit.wrk(target, target.urls["json"], target.body("json"), target.headers, 16)
        single = kit.wrk(target, target.urls["json"], target.body("json"), target.headers, 1)
        target.info["ledger"] = ledger_check(target)
        kit.server_info(target)
        problem = "; ".join(filter(None, (load_problem(many), load_problem(single))))
        return {
            "json req/s (16 connections)": round(many.rps, 1),
            "json p50 ms (16 connections)": round(many.p50_ms, 2),
            "json p50 ms (1 connection)": round(single.p50_ms, 2),
            "server CPU ms per call (16 connections)": round(many.server_cpu_ms or 0.0, 2),
            "first call with the virtual key, ms": round(first_ms, 1),
            "ready to serve, s": round(target.info["ready_s"], 2),
            "RSS idle MB": round(rss, 1),
        }, problem
