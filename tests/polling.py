"""Waiting in tests for something another process or thread does: poll until a deadline, never sleep a fixed time.

A fixed sleep is either too short on a loaded machine (the test flakes) or passes before the thing it waits for
happened at all (the test cannot fail). A poll returns as soon as the condition holds and fails naming what did
not happen; the deadline is for a machine far slower than it should be, not a guess at how long the work takes.
"""

import asyncio
import time

import pytest


def wait_until(condition, what, timeout: float = 20.0, interval: float = 0.05):
    """The condition's first truthy value; the test fails, naming `what` (a text, or a function that says what was
    seen last), if the deadline passes first."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what() if callable(what) else what}")
        time.sleep(interval)
    return value


async def wait_until_async(condition, what: str, timeout: float = 20.0, interval: float = 0.02):
    """`wait_until` for a coroutine condition, on the test's event loop."""
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(interval)
    return value
