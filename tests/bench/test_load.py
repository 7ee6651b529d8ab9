"""A benchmark row ends when its last request is answered, not after the whole drain allowance: the machine's busy
share is measured until wrk exits, and a row that ran out a 5 s drain counted 5 s of other programs' load."""

import shutil
import time

import pytest

from bench import load
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (bench/run.py installs it)")


@pytest.mark.parametrize("connections", [1, 4])
def test_a_row_ends_once_every_request_is_answered(tmp_path, connections):
    with FakeUpstream() as upstream:
        started = time.monotonic()
        run = load.start_wrk(
            f"{upstream.url}/v1/chat/completions", b'{"model":"m","messages":[]}', {}, connections, 0.5, 8.0, tmp_path
        )
        result = run.result()
        took = time.monotonic() - started
    assert result.ok > 0
    assert result.problems() == []
    assert took < 4.0  # 0.5 s of load; the drain allowance would have taken it past 8.5 s
