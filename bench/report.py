"""The benchmark's result: rows, overheads and ratios as one JSON document, and the table people read."""

import json

_PRIMARY = "tollgate"


def build(
    args, rows: list[dict], targets, failures: list[dict], machine: dict, command: str, scenarios: dict | None = None
) -> dict:
    upstream = {(r["mode"], r["connections"]): r for r in rows if r["target"] == "upstream"}
    for row in rows:
        base = upstream.get((row["mode"], row["connections"]))
        row["overhead_p50_ms"] = round(row["p50_ms"] - base["p50_ms"], 3) if base and row is not base else None
    ledgers = {t.name: t.info["ledger"] for t in targets if "ledger" in t.info}
    peers = {t.name for t in targets if t.info.get("peer")}
    return {
        "command": command,
        "machine": machine,
        "settings": {
            "duration_s": args.duration,
            "drain_s": args.drain,
            "connections": args.connections,
            "modes": args.modes,
            "loadgen": args.loadgen,
            "tollgate_workers": args.workers,
            "tollgate_env": args.tollgate_env,
            "tollgate_source": args.source,
            "tollgate_patches": [str(p) for p in args.patch],
        },
        "targets": {t.name: t.info for t in targets},
        "rows": rows,
        "ratios": _ratios(rows),
        "ledger": ledgers,
        "failures": failures,
        "scenarios": scenarios,
        # A peer's failures are its result (Portkey's streams on Node 20), counted in its rows, not the bench's.
        "peer_failures": [
            f"{r['target']} {r['mode']} c={r['connections']}" for r in rows if r["target"] in peers and not r["valid"]
        ],
        "ok": not failures
        and all(r["valid"] for r in rows if r["target"] not in peers)
        and all(ledger["ok"] for ledger in ledgers.values())
        and _scenarios_ok(scenarios),
    }


def _scenarios_ok(scenarios: dict | None) -> bool:
    if not scenarios:
        return True
    ledgers = [info["ledger"] for info in scenarios["servers"].values() if "ledger" in info]
    rows_ok = all(row["valid"] for row in scenarios["rows"])
    return not scenarios["failures"] and rows_ok and all(ledger["ok"] for ledger in ledgers)


def _ratios(rows: list[dict]) -> list[dict]:
    """Tollgate against each peer, the floor and itself with more workers, for every mode and concurrency: req/s,
    CPU per request (the whole machine's: server + PostgreSQL + Redis) and the p50 added over the upstream."""
    index = {(r["target"], r["mode"], r["connections"]): r for r in rows if r["valid"] and not r.get("profiled")}
    ratios = []
    cells = sorted({(r["mode"], r["connections"]) for r in rows}, key=lambda c: (c[0] != "json", c[1]))
    others = sorted({r["target"] for r in rows if r["target"].startswith("tollgate-w")})
    peers = sorted({r["target"] for r in rows} - {_PRIMARY, "upstream", *others}, key=lambda name: name != "floor")
    for mode, connections in cells:
        ours = index.get((_PRIMARY, mode, connections))
        if ours is None:
            continue
        for name in peers:
            theirs = index.get((name, mode, connections))
            if theirs and theirs["rps"]:
                entry = {"ratio": f"tollgate/{name}", "mode": mode, "connections": connections}
                entry["rps"] = round(ours["rps"] / theirs["rps"], 2)
                if ours.get("cpu_ms_per_req") and theirs.get("cpu_ms_per_req"):
                    entry["cpu_per_req"] = round(ours["cpu_ms_per_req"] / theirs["cpu_ms_per_req"], 2)
                if ours.get("overhead_p50_ms") is not None and (theirs.get("overhead_p50_ms") or 0) > 0:
                    entry["overhead_p50"] = round(ours["overhead_p50_ms"] / theirs["overhead_p50_ms"], 2)
                ratios.append(entry)
        for name in others:
            theirs = index.get((name, mode, connections))
            if theirs and ours["rps"]:
                ratio = {"ratio": f"{name}/tollgate", "mode": mode, "connections": connections}
                ratio["rps"] = round(theirs["rps"] / ours["rps"], 2)
                ratios.append(ratio)
    return ratios


def dumps(result: dict) -> str:
    return json.dumps(result, indent=2, default=str) + "\n"


def _ms(value) -> str:
    return "" if value is None else f"{value:.2f}"


def _pct(value) -> str:
    return "" if value is None else f"{value:.0f}"


def print_table(result: dict) -> None:
    machine = result["machine"]
    print(f"\n{result['command']}")
    print(
        f"{machine['date']}  {machine['nproc']} CPUs ({machine['cpu_model']})  {machine['wrk'] or 'python load'}  "
        f"load avg {', '.join(f'{x:.2f}' for x in machine['load_average'])}  "
        f"{result['settings']['duration_s']:.0f} s per row"
    )
    header = f"{'target':<20} {'mode':<6} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'overhead':>9} "
    header += f"{'non-2xx':>7} {'cpu ms/req':>10} {'of it srv':>9} {'srv cpu%':>8} {'box busy%':>9}  valid"
    print("\n" + header)
    print("-" * len(header))
    for row in result["rows"]:
        valid = "yes" if row["valid"] else "NO: " + "; ".join(row["invalid_because"])
        if row.get("profiled"):
            valid += " (under py-spy)"
        print(
            f"{row['target']:<20} {row['mode']:<6} {row['connections']:>5} {row['rps']:>9.1f} {row['p50_ms']:>8.2f} "
            f"{row['p99_ms']:>8.2f} {_ms(row['overhead_p50_ms']):>9} {row['non_2xx']:>7} "
            f"{_ms(row.get('cpu_ms_per_req')):>10} {_ms(row.get('server_cpu_ms_per_req')):>9} "
            f"{_pct(row.get('server_cpu_pct')):>8} "
            f"{_pct(row.get('machine_busy_pct')):>9}  {valid}"
        )
    print(
        "\noverhead: p50 minus the upstream's p50 at the same mode and connections; cpu ms/req: CPU time per answered"
    )
    print("request of every process the call makes work for (server + PostgreSQL backends + Redis; of it srv: the")
    print("server's processes); srv cpu%: the server's, of one core; box busy%: the whole machine's CPUs")
    print(f"\n{'server':<20} {'start s':>8} {'ready s':>8} {'RSS idle MB':>12} {'RSS peak MB':>12}  auth")
    for name, info in result["targets"].items():
        if "startup_s" not in info:
            continue
        print(
            f"{name:<20} {_ms(info.get('startup_s')):>8} {_ms(info.get('ready_s')):>8} "
            f"{_ms(info.get('rss_idle_mb')):>12} {_ms(info.get('rss_peak_mb')):>12}  {info.get('auth', '')}"
        )
    print("start: to the first 200 on /health/liveliness; ready: to the first 200 on a chat completion")
    if result["ratios"]:
        print()
        for ratio in result["ratios"]:
            extra = f"  CPU/request x{ratio['cpu_per_req']}" if "cpu_per_req" in ratio else ""
            extra += f"  p50 overhead x{ratio['overhead_p50']}" if "overhead_p50" in ratio else ""
            print(f"{ratio['ratio']:<28} {ratio['mode']:<6} c={ratio['connections']:<3} req/s x{ratio['rps']}{extra}")
    print()
    for ledger in result["ledger"].values():
        print(ledger["line"])
    for failure in result["failures"]:
        print(f"!!! {failure['target']} did not run: {failure['error'].strip().splitlines()[-1]}")
    if result.get("scenarios"):
        print_scenarios(result["scenarios"])
    if not result["ok"]:
        print("\n!!! NOT A RESULT: some rows are invalid or the ledger does not match (see above) !!!")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.split(":", 1)[0]  # "n/a: why" shows as n/a; the why is in the notes
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}"


def print_scenarios(scenarios: dict) -> None:
    """The scenario rows, grouped by scenario and case: a baseline (the upstream direct, 1 worker, 10 keys…),
    Tollgate, LiteLLM and Tollgate/LiteLLM where both have a number."""
    print(f"\nscenarios ({scenarios['seconds_per_row']:g} s per load)")
    header = f"{'':4}{'metric':<46} {'baseline':>10} {'tollgate':>10} {'litellm':>10} {'T/L':>6}  notes"
    print(header)
    print("-" * len(header))
    baselines: dict[tuple[str, str], set] = {}
    for row in scenarios["rows"]:
        if row["baseline_is"]:
            baselines.setdefault((row["scenario"], row["case"]), set()).add(row["baseline_is"])
    scenario = case = None
    for row in scenarios["rows"]:
        if row["scenario"] != scenario:
            scenario, case = row["scenario"], None
            print(f"{scenario}")
        named = baselines.get((row["scenario"], row["case"]), set())
        if row["case"] != case:
            case, shown = row["case"], set()
            print(f"  {case}" + (f"  (baseline: {next(iter(named))})" if len(named) == 1 else ""))
        notes = [note for note in row["notes"] if note not in shown]
        for who in ("tollgate", "litellm"):
            if isinstance(row[who], str) and ":" in row[who] and f"{who} {row[who]}" not in shown:
                notes.append(f"{who} {row[who]}")
        shown.update(notes)
        if row["baseline_is"] and len(named) > 1:
            notes.insert(0, f"baseline: {row['baseline_is']}")
        if row["problems"]:
            notes.insert(0, "INVALID: " + "; ".join(row["problems"]))
        ratio = f"x{row['ratio']}" if row["ratio"] is not None else ""
        print(
            f"{'':4}{row['metric']:<46} {_cell(row['baseline']):>10} {_cell(row['tollgate']):>10} "
            f"{_cell(row['litellm']):>10} {ratio:>6}  {'; '.join(notes)}"
        )
    for name, info in scenarios["servers"].items():
        if "ledger" in info:
            print(f"{name}: {info['ledger']['line']}")
    for failure in scenarios["failures"]:
        last = failure["error"].strip().splitlines()[-1] if failure["error"].strip() else "?"
        print(f"!!! scenario {failure['scenario']} ({failure['who']}) did not run: {last}")


def _rps_cell(row: dict | None) -> str:
    if row is None:
        return ""
    if not row["ok"]:
        statuses = ", ".join(f"{n:,} x {status}" for status, n in sorted(row.get("statuses", {}).items()))
        return f"fails ({statuses or 'no answer'})"
    return f"{row['rps']:,.0f}" + ("" if row["valid"] else " (invalid)")


def markdown(result: dict) -> str:
    """The README's main table and ratio lines, from a result file: `python -m bench.report [FILE]`."""
    rows = {(r["target"], r["mode"], r["connections"]): r for r in result["rows"]}
    names = list(dict.fromkeys(r["target"] for r in result["rows"]))
    cells = [(mode, c) for mode in result["settings"]["modes"] for c in result["settings"]["connections"]]
    head = [f"{mode} c={c} req/s" for mode, c in cells]
    head += ["p50 added, c=1 json / stream (ms)", "CPU ms/req, server + PostgreSQL + Redis (json c=16)", "RSS idle MB"]
    lines = ["| | " + " | ".join(head) + " |", "| --- " * (len(head) + 1) + "|"]
    for name in names:
        added = [rows.get((name, mode, 1), {}).get("overhead_p50_ms") for mode in ("json", "stream")]
        cpu = rows.get((name, "json", 16), {}).get("cpu_ms_per_req")
        rss = result["targets"].get(name, {}).get("rss_idle_mb")
        line = [_rps_cell(rows.get((name, mode, c))) for mode, c in cells]
        line += [" / ".join(_ms(a) or "-" for a in added), _ms(cpu), "" if rss is None else f"{rss:.0f}"]
        lines.append(f"| {name} | " + " | ".join(line) + " |")
    lines.append("")
    by_pair: dict[str, list[str]] = {}
    for ratio in result["ratios"]:
        text = f"{ratio['mode']} c={ratio['connections']} {ratio['rps']}x"
        text += f" (CPU/req {ratio['cpu_per_req']}x)" if "cpu_per_req" in ratio else ""
        by_pair.setdefault(ratio["ratio"], []).append(text)
    lines += [f"- {pair} req/s: " + ", ".join(texts) for pair, texts in by_pair.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results") / "latest.json")
    print(markdown(json.loads(source.read_text())))
