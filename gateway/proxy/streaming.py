"""A streamed call on its way back: upstream chunks relayed as server-sent events, charged however the stream ends.

It can end five ways, and each closes the upstream response and charges the call exactly once:

- the upstream finishes: charged from its usage before `[DONE]` goes out;
- the upstream fails or stalls mid-stream (a broken connection, a bad frame, no data within the deployment's
  timeout, or an end of stream before the answer was complete): charged for what it sent, and the client gets an
  error event instead of `[DONE]`;
- the client leaves mid-stream: charged, in the background, for what the upstream had sent;
- the client leaves before the body was ever iterated: Django then only calls `close()` on the response (from a
  worker thread), which hands the relay back to the event loop to do the same.

Tokens the upstream did not report are estimated: the prompt from the request (an upstream that answered 200 has
taken it), the completion from the characters relayed (4 a token).
"""

import asyncio
import logging
import time

import httpx
import orjson
from django.http import StreamingHttpResponse

from gateway.providers.base import ProviderError
from gateway.proxy.charges import charge, charge_in_background, keep_running, price_call
from gateway.proxy.dispatch import Attempted, is_timeout
from gateway.proxy.errors import UpstreamFailed, error_payload
from gateway.proxy.payload import client_wants_usage
from pricing.calculator import Usage, format_money
from spend.models import SpendLog

logger = logging.getLogger(__name__)

_DONE = b"data: [DONE]\n\n"
# A stream's words relayed go on record this often: what it is charged if its process dies mid-stream.
_JOURNAL_INTERVAL_SECONDS = 1.0


class IncompleteStream(Exception):
    """The upstream ended its stream (cleanly) before every choice had finished and without its end marker."""


def money_json(value) -> orjson.Fragment:
    """A JSON number with the Decimal's own digits (orjson would otherwise refuse or round through float)."""
    return orjson.Fragment(format_money(value).encode())


def _sse(chunk: dict) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_error(exc: Exception) -> tuple[str, str]:
    """The error code and message a stream ended by `exc` tells its client, in whatever shape its API has."""
    if isinstance(exc, IncompleteStream):
        code, message = "upstream_stream_incomplete", "The upstream ended the stream before the answer was complete."
    elif isinstance(exc, ProviderError):
        code, message = "upstream_stream_error", f"The upstream stream failed: {exc.message}"
    elif is_timeout(exc):
        code, message = "upstream_timeout", "The upstream stopped sending before the end of the stream."
    elif isinstance(exc, httpx.TransportError):
        code, message = "upstream_stream_error", "The upstream closed the connection before the end of the stream."
    else:
        code, message = "upstream_stream_error", "The upstream stream failed."
    return code, message


def _error_event(exc: Exception) -> bytes:
    code, message = stream_error(exc)
    # Mid-stream the status is sent already: the event says what went wrong in the shape every error has.
    return _sse(error_payload(UpstreamFailed(message, status=502, code=code)))


def _characters(chunk: dict) -> int:
    characters = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        text = content if isinstance(content, str) else choice.get("text")
        if isinstance(text, str):
            characters += len(text)
    return characters


class Relay:
    """One upstream stream on its way to the client; `events` is what the response iterates."""

    def __init__(self, call, attempted: Attempted, admission):
        self.call = call
        self.opened = attempted.result
        self.deployment = attempted.deployment
        self.attempts = attempted.retries + 1
        self.admission = admission
        self.loop = asyncio.get_running_loop()
        self.streamed_characters = 0
        self.first_chunk_at: float | None = None
        self.choices_seen: set[int] = set()
        self.choices_finished: set[int] = set()
        self.started = False
        self.charged = False
        self.finished = False  # the upstream response is closed and the charge under way
        self.journaled_at = time.perf_counter()  # when the journal last had the words relayed so far
        # A front's encoder (gateway.proxy.fronts) turns the chat chunks into its own API's events.
        self.front = call.front.stream(call) if call.front else None
        self.events = self._events()

    # --- what was used --------------------------------------------------------------------------------------

    def _usage(self) -> Usage:
        parser = self.opened.parser
        if parser.usage:
            return Usage.from_openai(parser.usage, self.call.payload)
        return Usage(
            prompt_tokens=self.call.estimated_prompt_tokens,
            completion_tokens=(self.streamed_characters + 3) // 4,
        )

    def _entry(self, status: str, error_class: str):
        """The call's spend entry as of now, its cost and its tokens; the relay counts as charged from here."""
        self.charged = True
        usage = self._usage()
        cost = price_call(self.deployment, usage, time.perf_counter() - self.opened.started)
        ttft = int((self.first_chunk_at - self.opened.started) * 1000) if self.first_chunk_at else None
        entry = self.call.entry(
            self.deployment,
            usage,
            cost,
            status=status,
            error_class=error_class,
            attempts=self.attempts,
            time_to_first_token_ms=ttft,
        )
        return entry, cost.total, usage.prompt_tokens + usage.completion_tokens

    def _charge_disconnect(self) -> None:
        if not self.charged:
            entry, cost, tokens = self._entry(SpendLog.Status.CLIENT_DISCONNECTED, "ClientDisconnected")
            charge_in_background(entry, self.admission, cost, tokens)

    # --- the stream -----------------------------------------------------------------------------------------

    def _complete(self) -> bool:
        """The upstream's end marker, or every choice it started finished: `[DONE]` alone is a formality."""
        return self.opened.parser.done or (bool(self.choices_seen) and self.choices_seen <= self.choices_finished)

    def _note(self, chunk: dict) -> None:
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            self.choices_seen.add(index)
            if choice.get("finish_reason"):
                self.choices_finished.add(index)
        self.streamed_characters += _characters(chunk)
        now = time.perf_counter()
        if now - self.journaled_at >= _JOURNAL_INTERVAL_SECONDS:
            self.journaled_at = now
            self.call.journal(self.deployment, self._usage(), attempts=self.attempts)

    async def _events(self):
        self.started = True
        front = self.front
        wants_usage = front is None and client_wants_usage(self.call.payload)
        usage_chunk: dict | None = None
        try:
            try:
                async for chunk in self._upstream_chunks():
                    if self.first_chunk_at is None:
                        self.first_chunk_at = time.perf_counter()
                    if chunk.get("usage") and not chunk.get("choices"):
                        usage_chunk = chunk  # held back: it goes out last, with the cost, and only if asked for
                        continue
                    if "usage" in chunk and not wants_usage:
                        chunk = {key: value for key, value in chunk.items() if key != "usage"}
                    self._note(chunk)
                    if front is None:
                        yield _sse(chunk)
                    elif events := front.chunk(chunk):
                        yield events
                if not self._complete():
                    raise IncompleteStream()
            except Exception as exc:
                logger.warning("stream %s ended by an upstream error: %s", self.call.request_id, type(exc).__name__)
                entry, cost, tokens = self._entry(SpendLog.Status.FAILURE, type(exc).__name__)
                await charge(entry, self.admission, cost, tokens)
                yield _error_event(exc) if front is None else front.error(*stream_error(exc))
                return
            entry, cost, tokens = self._entry(SpendLog.Status.SUCCESS, "")
            await charge(entry, self.admission, cost, tokens)
            if front is not None:
                yield front.end(self._usage(), cost)
                return
            if wants_usage:
                usage_chunk = usage_chunk or {
                    "id": self.call.request_id,
                    "object": "chat.completion.chunk",
                    "choices": [],
                }
                usage_chunk["usage"] = {**(self.opened.parser.usage or {}), "cost": money_json(cost)}
                yield _sse(usage_chunk)
            yield _DONE
        except (asyncio.CancelledError, GeneratorExit):
            self._charge_disconnect()
            raise
        finally:
            await self._close_upstream()

    async def _upstream_chunks(self):
        opened = self.opened
        if opened.local_chunks is not None:
            for chunk in opened.local_chunks:
                yield chunk
            return
        async for data in opened.response.aiter_bytes():
            for parsed in opened.parser.feed(data):
                yield parsed
        for parsed in opened.parser.finish():
            yield parsed

    async def _close_upstream(self) -> None:
        self.finished = True
        self.opened.closed()
        response, self.opened.response = self.opened.response, None
        if response is not None:
            await response.aclose()

    # --- a response closed before its end -------------------------------------------------------------------

    def abandon(self) -> None:
        """The response is being closed (from any thread): finish the relay if its body was not iterated to the end."""
        if not self.finished:
            self.loop.call_soon_threadsafe(self._abandon)

    def _abandon(self) -> None:
        if self.finished:
            return
        if not self.started:
            # Never iterated: the generator's own clean-up will never run.
            self._charge_disconnect()
            keep_running(self._close_upstream())
        elif not self.events.ag_running:
            keep_running(self.events.aclose())  # stopped at a yield: its except and finally do the rest


class RelayResponse(StreamingHttpResponse):
    """The SSE response of a relayed stream.

    Django's ASGI handler iterates `aiter(response)` inside `aclosing()`, but StreamingHttpResponse's own
    `__aiter__` wraps the content in two generators of its own and `aclose()` reaches only the outer one: the relay
    would be left to the garbage collector. Here `aiter()` is the relay itself, and closing the response finishes a
    relay that was never iterated (the client left while the headers were being sent)."""

    def __init__(self, relay: Relay):
        super().__init__(relay.events, content_type="text/event-stream")
        self.relay = relay
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"
        # A closer, not an override of close(): the proxy's handler closes a response without request_finished
        # (gateway.asgi), running its closers.
        self._resource_closers.append(relay.abandon)

    def __aiter__(self):
        return self.relay.events
