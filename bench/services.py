"""The processes a benchmark run starts, watches and always stops: servers, their memory, their databases."""

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Every process this run started, stopped on the way out whatever happens (errors, Ctrl-C, SIGTERM).
_STARTED: list["Service"] = []


def free_port(preferred: int | None = None) -> int:
    if preferred and port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(eq=False)
class Service:
    """A server process in its own process group (so its workers stop with it), with a log file."""

    name: str
    argv: list[str]
    env: dict
    cwd: Path
    log_path: Path
    health_url: str
    process: subprocess.Popen | None = field(default=None, init=False)
    started_at: float = field(default=0.0, init=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> "Service":
        with open(self.log_path, "ab") as log:
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _STARTED.append(self)
        return self

    def wait_healthy(self, timeout: float) -> float:
        """Seconds from start to the first 200 on the health URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return time.perf_counter() - self.started_at
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer {self.health_url} within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Workers the server forked may outlive it for a moment: the group goes with it.
        _signal_group(self.process.pid, signal.SIGKILL)
        if self in _STARTED:
            _STARTED.remove(self)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    for service in reversed(list(_STARTED)):
        try:
            service.stop()
        except Exception as exc:  # keep stopping the others
            print(f"! could not stop {service.name} (pid {service.process.pid}): {exc}")


def process_tree(root: int) -> list[int]:
    """root and all its descendants (uvicorn's workers, multiprocessing helpers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(root: int) -> float:
    """Resident memory of the whole server (VmRSS summed over the process tree), in MB."""
    return sum(_status_kb(pid, "VmRSS") for pid in process_tree(root)) / 1024


def hwm_mb(root: int) -> float:
    """Peak resident memory each process of the tree has had (VmHWM), summed, in MB."""
    return sum(_status_kb(pid, "VmHWM") for pid in process_tree(root)) / 1024


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int | None:
    """User + system CPU ticks a process has used so far; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) the process tree has used so far."""
    return sum(filter(None, map(_cpu_ticks, process_tree(root)))) / _TICKS


class CpuMeter:
    """CPU seconds each part of a system (the server, its PostgreSQL backends, Redis) used between `start()` and
    `stop()`: what one call costs the whole machine, not the server's processes alone. A part is a function that
    lists its processes now (backends come and go); a process that appears during the window counts from zero,
    one that ends during it loses its share (the bench's servers keep their database connections open)."""

    def __init__(self, parts: dict[str, Callable[[], Iterable[int]]]):
        self.parts = parts
        self.used: dict[str, float] = {}
        self._before: dict[str, dict[int, int]] = {}

    def _read(self) -> dict[str, dict[int, int]]:
        readings = {}
        for name, pids in self.parts.items():
            ticks = {pid: _cpu_ticks(pid) for pid in pids()}
            readings[name] = {pid: value for pid, value in ticks.items() if value is not None}
        return readings

    def start(self) -> "CpuMeter":
        self._before = self._read()
        return self

    def stop(self) -> dict[str, float]:
        for name, after in self._read().items():
            before = self._before.get(name, {})
            self.used[name] = sum(value - before.get(pid, 0) for pid, value in after.items()) / _TICKS
        return self.used


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (every CPU's user, system, interrupts and steal)."""
    with open("/proc/stat") as handle:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in handle.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICKS


class PeakSampler:
    """Samples a server's RSS in the background while load runs; keeps the highest sum seen."""

    def __init__(self, root: int, interval: float = 0.2):
        self.root = root
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.root))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class BenchDatabase:
    """A fresh PostgreSQL database for one Tollgate server, dropped afterwards."""

    def __init__(self, base_url: str, label: str):
        parsed = urllib.parse.urlparse(base_url)
        self.name = f"tollgate_bench_{os.getpid()}_{label}"
        self.admin_url = parsed._replace(path="/postgres").geturl()
        self.url = parsed._replace(path=f"/{self.name}").geturl()
        self.created = False

    def create(self) -> "BenchDatabase":
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True
        return self

    def scalar(self, sql: str):
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql).fetchone()[0]

    def rows(self, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql).fetchall()

    def backend_pids(self) -> list[int]:
        """The PostgreSQL server processes serving this database's connections now (the bench's own: no other
        client connects to it), read from the maintenance database so that asking adds no backend of its own."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,)).fetchall()
        return [pid for (pid,) in rows]

    def drop(self) -> None:
        if not self.created:
            return
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.created = False


def flush_redis(url: str) -> None:
    """Empty the one Redis database the benchmark owns (--redis-db), so no earlier run's cache leaks in."""
    from redis import Redis

    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    finally:
        client.close()


class PrivateRedis:
    """A redis-server of the benchmark's own on a free loopback port, no persistence: the Redis of a shared
    machine also serves other programs, and a private one is what lets its CPU be counted as the bench's."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.service = Service(
            "redis", argv, env=dict(os.environ), cwd=workdir, log_path=workdir / "redis.log", health_url=""
        )

    @property
    def pid(self) -> int:
        return self.service.pid

    def start(self) -> "PrivateRedis":
        from redis import Redis
        from redis.exceptions import ConnectionError as RedisDown

        self.service.start()
        client = Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return self
                except RedisDown:
                    if time.monotonic() > deadline or self.service.process.poll() is not None:
                        raise RuntimeError(f"redis-server did not start:\n{self.service.log_tail()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        self.service.stop()
