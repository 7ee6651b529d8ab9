"""A flood of wrong keys: how fast a gateway says no, against how fast it serves valid calls, and what saying no
costs it: database transactions (PostgreSQL's own count for the server's database) and upstream calls
(bench/upstream.py counts every call the flood's model gets, which must stay 0).

Tollgate slows an address that keeps failing (TOLLGATE_AUTH_FAILURE_LIMIT failures within
TOLLGATE_AUTH_FAILURE_WINDOW seconds, then 429 until the window ends). Both are measured: the main scenario server
raises the limit out of reach, so its rows are pure rejection (401: a key is looked up and refused, and the
failure still counted in Redis); a second server with the default limit gives the throttled row (429).
"""

import json
import time

import psycopg

from bench import services
from bench.scenarios import configs
from bench.scenarios.kit import Kit, load_problem
from bench.targets import Target, ledger_check, tollgate_server

UNTHROTTLED = {"TOLLGATE_AUTH_FAILURE_LIMIT": "1000000000"}
_CASES = (("a new random key every attempt", True), ("one wrong key over and over", False))
# LiteLLM without a database answers 400 ("No connected db.") to any key but its master key.
_REFUSALS = {"tollgate": (401,), "litellm": (400, 401)}
_VALID = "valid key, for comparison"
_THROTTLED = "a new random key every attempt, throttle on (default 20 failures a minute an address)"


def _body(model: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()


def transactions(database: services.BenchDatabase) -> int:
    """Transactions PostgreSQL has counted for the database (asked from another database, so not counting this)."""
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (database.name,)
        ).fetchone()
    return int(row[0])


def _transactions_during(database: services.BenchDatabase, function, *args):
    """(transactions a second while `function` ran, its result). A backend reports its counts at most once a
    second, so the window starts and ends 1.2 s to either side; an idle server's own (its key cache's sync every
    half second) are in any window, so the flood's are compared with an idle window's."""
    time.sleep(1.2)
    before, started = transactions(database), time.perf_counter()
    result = function(*args)
    time.sleep(1.2)
    count, elapsed = transactions(database) - before, time.perf_counter() - started
    return count / elapsed, result


def gateway(kit: Kit, target: Target, who: str) -> None:
    database = target.database
    idle = None
    if database is not None:
        idle = _transactions_during(database, time.sleep, kit.seconds)[0]
    for case, rotate in _CASES:
        _flood(kit, target, who, case, rotate, idle, expect=_REFUSALS[who])
    valid = kit.wrk(target, target.urls["json"], _body("bench-model"), target.headers, 16)
    kit.sheet.put("flood", _VALID, "answered/s (16 connections)", who, round(valid.rps, 1), problem=load_problem(valid))
    kit.sheet.put("flood", _VALID, "p50 ms", who, round(valid.p50_ms, 2))
    _put_cpu(kit, _VALID, who, valid)
    for case, _ in _CASES:
        _compare_with_valid(kit, case, who, _valid(kit, who))


def _flood(kit: Kit, target: Target, who: str, case: str, rotate: bool, idle: int | None, *, expect) -> None:
    headers = {**target.headers, "Authorization": "Bearer sk-flood-the-same-wrong-key-every-time-0000"}
    database = target.database
    calls_before = kit.upstream_calls().get("flood", 0)

    def flood():
        return kit.wrk(target, target.urls["json"], _body("bench-flood"), headers, 16, rotate_keys=rotate)

    if database is None:
        result = flood()
    else:
        rate, result = _transactions_during(database, flood)
    put = kit.sheet.put
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(result.statuses.items()))
    rejected = sum(count for status, count in result.statuses.items() if status in expect)
    put("flood", case, "rejected/s (16 connections)", who, round(rejected / result.window_s, 1), note=statuses)
    put("flood", case, "p50 ms", who, round(result.p50_ms, 2), problem=load_problem(result, expect_status=expect))
    _put_cpu(kit, case, who, result)
    calls = kit.upstream_calls().get("flood", 0) - calls_before
    put("flood", case, "upstream calls", who, calls, note="must be 0", ratio=False)
    if database is None:
        put("flood", case, "database transactions/s", who, "n/a: no database")
        return
    note = f"idle: {idle:.1f}/s" if idle is not None else ""
    put("flood", case, "database transactions/s", who, round(rate, 1), note=note, ratio=False)
    if idle is not None and result.completed:
        extra = max(rate - idle, 0.0) * result.window_s / result.completed * 1000
        put("flood", case, "database transactions per 1,000 attempts, above idle", who, round(extra, 1), ratio=False)


def _put_cpu(kit: Kit, case: str, who: str, result) -> None:
    if result.server_cpu_ms is not None:
        note = "what the machine's other load disturbs least"
        kit.sheet.put("flood", case, "server CPU ms per answer", who, round(result.server_cpu_ms, 2), note=note)


def _compare_with_valid(kit: Kit, case: str, who: str, valid) -> None:
    """How much faster than a valid call a rejection is: by rate (disturbed by the machine's other load between
    the two loads) and by the server's CPU per answer (much less so)."""
    rejected = kit.sheet.value("flood", case, "rejected/s (16 connections)", who)
    if isinstance(rejected, int | float) and valid["rps"]:
        note = "rejections a second per valid call served a second, each at 16 connections"
        kit.sheet.put("flood", case, "x valid calls/s", who, round(rejected / valid["rps"], 1), note=note)
    cpu = kit.sheet.value("flood", case, "server CPU ms per answer", who)
    if isinstance(cpu, int | float) and cpu and valid["cpu_ms"]:
        note = "a valid call's server CPU over a rejection's"
        kit.sheet.put(
            "flood", case, "x cheaper than a valid call (CPU)", who, round(valid["cpu_ms"] / cpu, 1), note=note
        )


def _valid(kit: Kit, who: str) -> dict:
    """The valid calls' numbers, as the main scenario server measured them."""
    return {
        "rps": kit.sheet.value("flood", _VALID, "answered/s (16 connections)", who),
        "cpu_ms": kit.sheet.value("flood", _VALID, "server CPU ms per answer", who),
    }


def throttled(kit: Kit, database: services.BenchDatabase) -> None:
    """The same flood on a Tollgate server with the default failed-auth throttle."""
    config = configs.tollgate(kit.upstream)
    with tollgate_server(kit.args, kit.workdir, "tollgate-throttled", database, config) as target:
        _flood(kit, target, "tollgate", _THROTTLED, True, None, expect=(401, 429))
        _compare_with_valid(kit, _THROTTLED, "tollgate", _valid(kit, "tollgate"))
        target.info["ledger"] = ledger_check(target)
        kit.server_info(target)
    kit.sheet.put("flood", _THROTTLED, "rejected/s (16 connections)", "litellm", "n/a: no failed-auth throttle")
