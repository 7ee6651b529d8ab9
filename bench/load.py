"""Driving load: wrk with a Lua script (or a Python fallback), closed-loop, N keep-alive connections.

Both stop sending new requests after `duration` seconds and then wait up to `drain` seconds for the requests
still in flight, so every request sent is answered and counted: nothing is abandoned half-way, which would leave
the server charging calls the load generator never saw complete (and the ledger check could not be exact).
"""

import asyncio
import json
import math
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# LuaJIT's ffi gives wrk's scripts a monotonic clock; os.time() only has whole seconds.
_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

wrk.method = "POST"
wrk.body = __BODY__
wrk.headers["Content-Type"] = "application/json"
__HEADERS__
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("first", #threads == 1)
end

function init(args)
  stop_at = now() + tonumber(args[1])
  -- wrk calls request() once on the first thread to check the script before it starts: that one is never sent.
  sent = first and -1 or 0
  ok, bad = 0, 0
  statuses = {}
  math.randomseed(os.time())
end

-- After the measured window no connection sends again; the ones in flight finish during the drain.
function delay()
  if now() >= stop_at then return 86400000 end
  return 0
end

-- A flood of wrong keys sends a new random key with every request.
local rotate_keys = __ROTATE__

function request()
  sent = sent + 1
  if rotate_keys then
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    headers["Authorization"] = string.format(
      "Bearer sk-flood-%08x%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), sent)
    return wrk.format(nil, nil, headers)
  end
  return wrk.format()
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else bad = bad + 1 end
  statuses[status] = (statuses[status] or 0) + 1
  -- Drained: stop reading, or a server closing the idle keep-alive connections would count as socket errors,
  -- and say so: wrk itself sleeps out its whole -d, so bench/load.py interrupts it once every thread is drained.
  if ok + bad >= sent and now() >= stop_at then
    wrk.thread:stop()
    io.stderr:write("BENCH-DRAINED\n")
    io.stderr:flush()
  end
end

function done(summary, latency, requests)
  local s, o, b = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent"); o = o + t:get("ok"); b = b + t:get("bad")
  end
  local counts = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do counts[status] = (counts[status] or 0) + n end
  end
  local by_status = {}
  for status, n in pairs(counts) do table.insert(by_status, string.format('"%d":%d', status, n)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH-RESULT {"completed":%d,"sent":%d,"ok":%d,"non_2xx":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"socket_errors":%d,"timeouts":%d,"statuses":{%s}}\n',
    summary.requests, s, o, b, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, e.connect + e.read + e.write, e.timeout, table.concat(by_status, ",")))
end
"""


@dataclass
class LoadResult:
    completed: int  # responses received
    ok: int  # of which 2xx
    non_2xx: int
    sent: int
    socket_errors: int
    timeouts: int
    window_s: float  # the measured window: requests were only sent inside it
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    tool: str
    statuses: dict[int, int] = field(default_factory=dict)
    server_cpu_ms: float | None = None  # the server's CPU time per answer, when the caller measured it

    @property
    def rps(self) -> float:
        return self.ok / self.window_s if self.window_s else 0.0

    @property
    def abandoned(self) -> int:
        return max(self.sent - self.completed, 0)

    def problems(self, expected: tuple[int, ...] | None = None) -> list[str]:
        """Why these numbers are not a result (none when they are): answers other than `expected` (any non-2xx
        if not given), socket errors or timeouts, requests left unanswered after the drain, no answer at all."""
        reasons = []
        if expected is None and self.non_2xx:
            reasons.append(f"{self.non_2xx} non-2xx answers")
        other = {status: n for status, n in self.statuses.items() if expected and status not in expected}
        if other:
            reasons.append(f"answers other than {'/'.join(map(str, expected))}: {other}")
        if self.socket_errors or self.timeouts:
            reasons.append(f"{self.socket_errors} socket errors, {self.timeouts} timeouts")
        if self.abandoned:
            reasons.append(f"{self.abandoned} requests unanswered after the drain")
        if not self.completed:
            reasons.append("no answer at all")
        return reasons


def _lua_string(text: str) -> str:
    level = "=" * 4
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    if not have_wrk():
        return ""
    output = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return output.splitlines()[0].strip() if output else "wrk"


class WrkRun:
    """wrk running in the background (one load alongside another); `result()` waits for it and parses its report."""

    def __init__(self, argv: list[str], script: Path, duration: float, total: float):
        self.duration = duration
        self.total = total
        self.script = script
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> LoadResult:
        try:
            errors = self._wait_until_drained()
            stdout, stderr = self.process.communicate(timeout=self.total + 60)
            stderr = errors + stderr
        finally:
            self.stop()
            self.script.unlink(missing_ok=True)
        line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH-RESULT ")), None)
        if line is None or stderr.strip():
            raise RuntimeError(f"wrk gave no result (exit {self.process.returncode}):\n{stdout}\n{stderr}")
        data = json.loads(line.removeprefix("BENCH-RESULT "))
        return LoadResult(
            completed=data["completed"],
            ok=data["ok"],
            non_2xx=data["non_2xx"],
            sent=data["sent"],
            socket_errors=data["socket_errors"],
            timeouts=data["timeouts"],
            window_s=self.duration,
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
            tool="wrk",
            statuses={int(status): count for status, count in data["statuses"].items()},
        )

    def _wait_until_drained(self) -> str:
        """Interrupt wrk (it then reports at once) when its one thread (-t1) says every request sent has its answer:
        the row ends there instead of running out the drain, so the machine's busy share covers the row's own time."""
        errors = []
        for line in self.process.stderr:
            if line.strip() == "BENCH-DRAINED":
                self.process.send_signal(signal.SIGINT)
                break
            errors.append(line)
        return "".join(errors)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_wrk(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    duration: float,
    drain: float,
    workdir: Path,
    rotate_keys: bool = False,
) -> WrkRun:
    script = Path(tempfile.mkstemp(suffix=".lua", dir=workdir)[1])
    header_lines = "\n".join(f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items())
    lua = _LUA.replace("__BODY__", _lua_string(body.decode())).replace("__HEADERS__", header_lines)
    script.write_text(lua.replace("__ROTATE__", "true" if rotate_keys else "false"))
    total = duration + drain
    argv = [
        "wrk",
        "-t1",  # one load thread: the machine has few cores and the server needs them more
        f"-c{connections}",
        f"-d{math.ceil(total)}s",  # wrk takes whole seconds
        "--timeout",
        f"{max(int(drain), 2)}s",  # a request slower than the drain is counted as a timeout: the row is invalid
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        str(duration),
    ]
    return WrkRun(argv, script, duration, total)


def run_python(
    url: str, body: bytes, headers: dict[str, str], connections: int, duration: float, drain: float
) -> LoadResult:
    """The fallback when wrk is not installed: asyncio + httpx, same closed loop, same drain."""
    return asyncio.run(_python_load(url, body, headers, connections, duration, drain))


async def _python_load(url, body, headers, connections, duration, drain) -> LoadResult:
    import httpx

    latencies: list[float] = []
    counts = {"ok": 0, "non_2xx": 0, "sent": 0, "errors": 0, "timeouts": 0}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    stop_at = time.monotonic() + duration
    async with httpx.AsyncClient(limits=limits, timeout=max(drain, 2.0)) as client:

        async def connection_loop():
            while time.monotonic() < stop_at:
                counts["sent"] += 1
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.TimeoutException:
                    counts["timeouts"] += 1
                    continue
                except httpx.HTTPError:
                    counts["errors"] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                counts["ok" if 200 <= response.status_code < 300 else "non_2xx"] += 1

        await asyncio.wait_for(asyncio.gather(*(connection_loop() for _ in range(connections))), duration + drain)
    latencies.sort()

    def percentile(share: float) -> float:
        return latencies[min(int(share * len(latencies)), len(latencies) - 1)] * 1000 if latencies else 0.0

    return LoadResult(
        completed=len(latencies),
        ok=counts["ok"],
        non_2xx=counts["non_2xx"],
        sent=counts["sent"] - counts["errors"] - counts["timeouts"],
        socket_errors=counts["errors"],
        timeouts=counts["timeouts"],
        window_s=duration,
        p50_ms=percentile(0.5),
        p90_ms=percentile(0.9),
        p99_ms=percentile(0.99),
        max_ms=latencies[-1] * 1000 if latencies else 0.0,
        tool="python-httpx",
    )
