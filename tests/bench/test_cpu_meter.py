"""The benchmark's CPU per request counts what each process used inside the measured window only, and only the
processes it was told about (issue 20: the server, its PostgreSQL backends, Redis)."""

import subprocess
import sys
import time

import pytest

from bench.services import CpuMeter, cpu_seconds

_BUSY = "while True: pass"


@pytest.fixture
def busy_process():
    with subprocess.Popen([sys.executable, "-c", _BUSY]) as process:
        try:
            yield process.pid
        finally:
            process.kill()


@pytest.fixture
def idle_process():
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as process:
        try:
            yield process.pid
        finally:
            process.kill()


def _wait_for_cpu(pid: int, seconds: float) -> None:
    start, deadline = cpu_seconds(pid), time.monotonic() + 30
    while cpu_seconds(pid) - start < seconds:
        assert time.monotonic() < deadline, "the busy process got no CPU in 30 s"
        time.sleep(0.01)


def test_counts_only_the_window_and_only_the_named_processes(busy_process, idle_process):
    _wait_for_cpu(busy_process, 0.3)  # CPU used before the window must not count
    started = time.monotonic()
    meter = CpuMeter({"busy": lambda: [busy_process], "idle": lambda: [idle_process]}).start()
    _wait_for_cpu(busy_process, 0.05)
    used = meter.stop()
    window = time.monotonic() - started
    assert 0.04 <= used["busy"] <= window + 0.02  # one thread cannot use more CPU than the wall time
    assert used["idle"] < 0.02
