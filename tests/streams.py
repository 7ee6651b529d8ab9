"""A client that reads a stream until it has heard enough, then leaves while the stream goes on."""

import asyncio
from collections.abc import AsyncIterable, Callable
from typing import Any

import pytest


async def leave_once(parts: AsyncIterable, heard_enough: Callable[[Any], bool]) -> None:
    """Reads parts until `heard_enough(part)`, then cancels the reading, as a client's own timeout would.

    Not `break`: that leaves the async generators beneath (the SDK's, httpx's, httpcore's) suspended, and the
    garbage collector closes them later on whichever thread it happens to run, a fake upstream's say, where their
    cleanup raises. The cancellation unwinds every one of them here, on the reader's loop. The stream must still be
    going when the reader has heard enough."""
    enough = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async for part in parts:
            if not enough.done() and heard_enough(part):
                enough.set_result(None)

    reading = asyncio.create_task(read())
    await asyncio.wait([reading, enough], return_when=asyncio.FIRST_COMPLETED)
    assert not reading.done(), reading.exception() or "the stream ended before the reader left"
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
