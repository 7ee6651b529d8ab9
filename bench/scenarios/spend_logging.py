"""Spend logging: the ledger's writer alone must sustain at least 3,000 logged calls a second into PostgreSQL.

bench/scenarios/ledger_writer.py runs in its own process against the scenario database, with Tollgate's code
(spend/ledger.py) and copies of a real spend log: one transaction per batch (write_batch), then the group commit
(Ledger) under many concurrent calls. LiteLLM runs without a database here, so it has no row.
"""

from bench import services
from bench.scenarios.kit import Kit

TARGET = "target: at least 3,000 logs/s"
_NOT_LITELLM = "n/a: LiteLLM runs without a database in this bench"


def run(kit: Kit, database: services.BenchDatabase) -> None:
    seconds = max(kit.seconds / 2, 1.0)
    result = kit.tollgate_script(database, "ledger_writer.py", str(seconds))
    put = kit.sheet.put
    for size, measured in result["direct"].items():
        case = f"write_batch, {size} log{'s' if size != '1' else ''} a transaction"
        put("ledger", case, "logs/s", "tollgate", measured["logs_per_s"], note=TARGET)
        put("ledger", case, "logs/s", "litellm", _NOT_LITELLM)
        if size in result.get("copy", {}):
            reference = result["copy"][size]["logs_per_s"]
            put("ledger", case, "logs/s", "baseline", reference, baseline_is=f"COPY of the same {size} rows, no charge")
    for concurrency, measured in result["ledger"].items():
        case = f"Ledger (group commit), {concurrency} concurrent calls"
        put("ledger", case, "logs/s", "tollgate", measured["logs_per_s"], note=TARGET)
        put("ledger", case, "logs/s", "litellm", _NOT_LITELLM)
        put("ledger", case, "logs a transaction (mean)", "tollgate", measured["mean_batch"], ratio=False)
    kit.servers["ledger-writer"] = {"measured": result}
