"""Memory: resident memory idle, at its peak under load, and its growth over many calls, which must stay flat.

wrk drives json calls at 64 connections in about ten rounds; the server's RSS (all its processes) is read after
each round and sampled in the background for the peak. Growth is counted from the first tenth of the calls, once
caches and pools have filled, and also given as the slope of a straight line through the later rounds.
"""

from bench import services
from bench.scenarios.kit import Kit, load_problem
from bench.targets import Target

REQUESTS = {"tollgate": 100_000, "litellm": 10_000}
QUICK_REQUESTS = {"tollgate": 10_000, "litellm": 2_000}
CONNECTIONS = 64
ROUNDS = 10
CASE = f"json calls at {CONNECTIONS} connections"
_FEWER = "LiteLLM gets a tenth of Tollgate's calls: at its ~90 calls/s here, 100,000 would take ~20 minutes"


def gateway(kit: Kit, target: Target, who: str) -> None:
    total = (QUICK_REQUESTS if kit.quick else REQUESTS)[who]
    pid = target.service.pid
    body = target.body("json")
    idle = services.rss_mb(pid)
    samples: list[tuple[int, float]] = []
    done, rate, problems = 0, None, []
    with services.PeakSampler(pid) as sampler:
        while done < total:
            wanted = min(total / ROUNDS, total - done)
            seconds = 2.0 if rate is None else min(max(wanted / rate, 1.0), 30.0)
            result = kit.wrk(target, target.urls["json"], body, target.headers, CONNECTIONS, seconds=seconds)
            if problem := load_problem(result):
                problems.append(problem)
            if not result.ok:
                break
            done += result.ok
            rate = result.ok / result.window_s
            samples.append((done, services.rss_mb(pid)))
    put = kit.sheet.put
    put("memory", CASE, "calls made", who, done, note=_FEWER, ratio=False)
    put("memory", CASE, "RSS idle MB", who, round(idle, 1), problem="; ".join(problems[:3]))
    put("memory", CASE, "RSS peak MB", who, round(max(sampler.peak, idle), 1))
    settled = [sample for sample in samples if sample[0] >= total / ROUNDS]
    if len(settled) < 2:
        return
    (first_done, first_rss), (_, last_rss) = settled[0], settled[-1]
    put("memory", CASE, "RSS after the first tenth MB", who, round(first_rss, 1), note=f"after {first_done:,} calls")
    put("memory", CASE, "RSS at the end MB", who, round(last_rss, 1))
    put("memory", CASE, "growth after the first tenth MB", who, round(last_rss - first_rss, 1), ratio=False)
    note = "slope of RSS over calls after the first tenth, per 10,000 calls: flat is ~0"
    growth = round(_slope(settled) * 10_000, 2)
    put("memory", CASE, "growth per 10,000 calls MB", who, growth, note=note, ratio=False)


def _slope(samples: list[tuple[int, float]]) -> float:
    """Least-squares MB per call through the (calls, RSS) samples."""
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    spread = sum((x - mean_x) ** 2 for x, _ in samples)
    return sum((x - mean_x) * (y - mean_y) for x, y in samples) / spread if spread else 0.0
