"""What every scenario uses: the sheet its rows go to, and the loads it drives (wrk, the stream client)."""

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import load, services
from bench.targets import ROOT, Target, snapshot, tollgate_env


class Sheet:
    """The scenario table: one row per (scenario, case, metric), with a baseline and each gateway side by side."""

    def __init__(self):
        self._rows: dict[tuple[str, str, str], dict] = {}

    def put(
        self,
        scenario: str,
        case: str,
        metric: str,
        who: str,
        value,
        *,
        baseline_is: str = "",
        note: str = "",
        problem: str = "",
        ratio: bool = True,
    ) -> None:
        """`who`: "baseline" (what the row is compared with, named by `baseline_is`), "tollgate" or "litellm"."""
        row = self._rows.setdefault(
            (scenario, case, metric),
            {
                "scenario": scenario,
                "case": case,
                "metric": metric,
                "baseline": None,
                "baseline_is": "",
                "tollgate": None,
                "litellm": None,
                "ratio": None,
                "notes": [],
                "problems": [],
                "comparable": ratio,
            },
        )
        row[who] = value
        if who == "baseline":
            row["baseline_is"] = baseline_is
        if note and note not in row["notes"]:
            row["notes"].append(note)
        if problem:
            row["problems"].append(f"{who}: {problem}")

    def value(self, scenario: str, case: str, metric: str, who: str):
        row = self._rows.get((scenario, case, metric))
        return row[who] if row else None

    def rows(self) -> list[dict]:
        """Grouped by scenario, then case, each in the order first met; metrics in the order first put."""
        scenarios: dict[str, int] = {}
        cases: dict[tuple[str, str], int] = {}
        for scenario, case, _ in self._rows:
            scenarios.setdefault(scenario, len(scenarios))
            cases.setdefault((scenario, case), len(cases))
        ordered = sorted(
            enumerate(self._rows.items()),
            key=lambda item: (scenarios[item[1][0][0]], cases[item[1][0][:2]], item[0]),
        )
        rows = []
        for _, (_, row) in ordered:
            row = dict(row)
            ours, theirs = row["tollgate"], row["litellm"]
            numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (ours, theirs))
            if row.pop("comparable") and numbers and theirs:
                row["ratio"] = round(ours / theirs, 2)
            row["valid"] = not row["problems"]
            rows.append(row)
        return rows


@dataclass
class Kit:
    """A scenario run's settings and helpers; `upstream` is bench/upstream.py's base URL."""

    args: object
    workdir: Path
    seconds: float  # of load per measured row
    quick: bool
    upstream: str = ""
    sheet: Sheet = field(default_factory=Sheet)
    servers: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)

    @property
    def drain(self) -> float:
        return self.args.drain

    def wrk(
        self,
        target: Target | None,
        url: str,
        body: bytes,
        headers: dict[str, str],
        connections: int,
        *,
        seconds: float | None = None,
        rotate_keys: bool = False,
    ) -> load.LoadResult:
        service = target.service if target is not None else None
        cpu_before = services.cpu_seconds(service.pid) if service else 0.0
        seconds = seconds or self.seconds
        result = load.start_wrk(
            url, body, headers, connections, seconds, self.drain, self.workdir, rotate_keys
        ).result()
        if service and result.completed:
            result.server_cpu_ms = 1000 * (services.cpu_seconds(service.pid) - cpu_before) / result.completed
        if target is not None and target.database is not None:
            target.expected_logs += result.ok
        return result

    def streams(
        self,
        target: Target | None,
        url: str,
        body: bytes,
        headers: dict[str, str],
        concurrency: int,
        *,
        expect: int,
        seconds: float | None = None,
        count: int | None = None,
    ) -> dict:
        """bench/client.py in its own process: streams for `seconds` (or `count` of them), timed chunk by chunk."""
        spec = {"url": url, "headers": headers, "body": body.decode(), "concurrency": concurrency, "expect": expect}
        spec.update({"count": count} if count else {"duration": seconds or self.seconds})
        completed = subprocess.run(
            [sys.executable, "-m", "bench.client"],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=(seconds or self.seconds) + self.drain + 120,
        )
        if completed.returncode:
            raise RuntimeError(f"bench.client failed:\n{completed.stderr[-2000:]}")
        result = json.loads(completed.stdout)
        if target is not None and target.database is not None:
            target.expected_logs += result["statuses"].get("200", 0)
        return result

    def upstream_calls(self) -> dict[str, int]:
        """How many calls bench/upstream.py has had, by behaviour (paced, fail500, fail429, flood…)."""
        return httpx.get(f"{self.upstream}/stats", timeout=5).json()

    def tollgate_script(
        self,
        database: services.BenchDatabase,
        script: str,
        *argv: str,
        timeout: float = 900,
        show_progress: bool = False,
    ) -> dict:
        """Run one of bench/scenarios' scripts against `database` with the code being measured; its JSON answer (its
        last line of output). With `show_progress` what it writes to stderr goes to the bench's as it comes."""
        source = snapshot(self.args, self.workdir)
        home = self.workdir / f"script-{Path(script).stem}"
        home.mkdir(exist_ok=True)
        env = {**tollgate_env(self.args, database, home), "PYTHONPATH": str(source)}
        # -P: the script's own directory (this package) stays off sys.path; Tollgate's apps come from the snapshot.
        command = [sys.executable, "-P", str(Path(__file__).with_name(script)), *argv]
        stderr = None if show_progress else subprocess.PIPE
        completed = subprocess.run(
            command, cwd=source, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout
        )
        if completed.returncode:
            raise RuntimeError(f"{script} failed:\n{completed.stdout[-1000:]}\n{(completed.stderr or '')[-3000:]}")
        return json.loads(completed.stdout.strip().splitlines()[-1])

    def server_info(self, target: Target) -> None:
        """Keep a scenario server's start-up and memory for the JSON."""
        info = dict(target.info)
        if target.service:
            info["rss_mb"] = round(services.rss_mb(target.service.pid), 1)
        self.servers[target.name] = info


def load_problem(result: load.LoadResult, expect_status: int | tuple[int, ...] = 200) -> str:
    """Why a load's numbers are not a result ("" when they are)."""
    expected = expect_status if isinstance(expect_status, tuple) else (expect_status,)
    return "; ".join(result.problems(expected))


def stream_problem(result: dict) -> str:
    bad = result["streams"] - result["good"]
    if not result["streams"]:
        return "no stream at all"
    if bad:
        return f"{bad} of {result['streams']} streams not 1:1 and in order: {result['problems']}"
    return ""
