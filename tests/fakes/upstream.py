"""Fake LLM upstreams on loopback: one aiohttp server, in a thread of its own, that speaks the OpenAI, Azure OpenAI,
Anthropic, Ollama, SageMaker (TGI) and Google (Gemini, Vertex AI: tests/fakes/google.py) wire formats on their real
paths, streaming included.

    with FakeUpstream(prompt_tokens=30, cached_tokens=20) as up:
        up.script(Behaviour(status=429, retry_after="2"), Behaviour(drop="mid_stream"))  # the next two calls
        ... call f"{up.url}/v1/chat/completions" ...
        assert up.requests[0].json["model"] == "gpt-4o"

Faults: `script(*behaviours)` for the next calls, `fail(status, times, retry_after)` for short, `behaviour` for all
other calls, `reset()` between tests sharing one fake. What happened: `requests`, `wait_for_requests(n)`,
`cancelled` (calls whose client left early) and `streams_cancelled` (of those, streams already under way), with
`wait_for_cancelled_streams(n)`; `open_requests` (calls being answered right now: a client that never closes what
it opened keeps one here), with `wait_for_idle()`; each wait has an `_async` twin for tests running on an event
loop. `on_request`, if set, is called with each request as it arrives (on the fake's own thread).

Token counts are given as the gateway should report them (`prompt_tokens` includes cache reads and writes); each
protocol writes them its own way (Anthropic's `input_tokens` excludes the cache, for instance). OpenAI's paths
are under /v1, so an OpenAI-compatible deployment's api_base is `up.url + "/v1"`; the others take `up.url`.
"""

import asyncio
import base64
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
import pytest
from aiohttp import web

from tests.fakes.aws import bedrock_error, bedrock_routes, is_bedrock, signature_refusal
from tests.fakes.google import google_error, google_routes, is_google, token_error

MALFORMED_JSON = b'{"id": "broken", "choices": [{"index": 0, '
# What the Anthropic fake thinks, when a request asks it to, and the signature it gives that thinking.
ANTHROPIC_THINKING = {"thinking": "The user greets me.", "signature": "EqQBCkYIBRgCKkDfakeSignature=="}


@dataclass(frozen=True)
class Behaviour:
    """How the upstream treats one call. The default answers at once and correctly."""

    status: int = 200  # anything else answers with the protocol's error body
    message: str | None = None  # error message; defaults to "scripted failure <status>"
    retry_after: str | None = None  # sent as the retry-after header
    first_byte_delay: float = 0.0  # seconds before anything (headers included) is sent
    chunk_delay: float = 0.0  # seconds before each stream frame: a slow stream
    drop: Literal["before", "mid_stream"] | None = None  # close the connection before answering / halfway through
    stream_end: Literal["normal", "missing", "hang"] = "normal"  # "missing": EOF without the end marker;
    # "hang": neither end marker nor EOF, until the client goes away
    malformed: bool = False  # a body (or one stream frame) that is not JSON
    headers: tuple[tuple[str, str], ...] = ()  # more headers on a JSON answer (Set-Cookie, say)
    gzip: bool = False  # a JSON answer sent gzip-encoded


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Answer:
    """What a protocol handler produces: a JSON body, or stream frames and the frames that end the stream."""

    body: Any = None
    frames: list[bytes] = field(default_factory=list)
    end: list[bytes] = field(default_factory=list)
    content_type: str = "application/json"
    malformed_frame: bytes = b""


class FakeUpstream:
    def __init__(
        self,
        *,
        reply: str = "Hello from the fake upstream!",
        prompt_tokens: int = 12,
        completion_tokens: int = 7,
        cached_tokens: int = 0,
        cache_creation_tokens: int = 0,
        reasoning_tokens: int = 0,
        finish_reason: Literal["stop", "length"] = "stop",
        tool_call: dict | None = None,  # {"name": ..., "arguments": {...}}: chat answers call this tool
        embedding_dimensions: int = 8,
    ) -> None:
        self.reply = reply
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.cached_tokens = cached_tokens
        self.cache_creation_tokens = cache_creation_tokens
        self.reasoning_tokens = reasoning_tokens
        self.finish_reason = finish_reason
        self.tool_call = tool_call
        self.embedding_dimensions = embedding_dimensions
        self.behaviour = Behaviour()  # for every call the script does not cover
        self.requests: list[Recorded] = []
        self.streams_cancelled = 0  # streams whose client went away before their end
        self.cancelled = 0  # calls whose client went away before the whole answer (streams included)
        self.open_requests = 0  # handlers running now: each one holds its client's connection
        self.on_request: Callable[[Recorded], None] | None = None
        # If set, OpenAI chat answers report the usage it gives for the request: (prompt, completion) tokens.
        self.billing: Callable[[dict], tuple[int, int]] | None = None
        # More fields for OpenAI usage objects, as other OpenAI-compatible servers add them (Perplexity's
        # num_search_queries, citation_tokens...).
        self.usage_extra: dict[str, Any] = {}
        # Anthropic answers report the cache counts only to a request with a cache_control breakpoint.
        self.cache_needs_hint = False
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- scripting and assertions ---------------------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """Behaviours for the next calls, one each, in order; later calls get `self.behaviour`."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        """Forget requests, counters and the script, and answer normally again (for a fake shared by tests)."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.behaviour = Behaviour()
            self.cache_needs_hint = False
            self.streams_cancelled = self.cancelled = 0
            self.on_request = None
            self.billing = None
            self.usage_extra = {}

    def fail(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        self.script(*[Behaviour(status=status, retry_after=retry_after)] * times)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        _poll(lambda: len(self.requests) >= count, timeout, f"{count} requests")
        return self.requests

    async def wait_for_requests_async(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        await _poll_async(lambda: len(self.requests) >= count, timeout, f"{count} requests")
        return self.requests

    def wait_for_cancelled_streams(self, count: int, timeout: float = 5.0) -> None:
        _poll(lambda: self.streams_cancelled >= count, timeout, f"{count} cancelled streams")

    async def wait_for_cancelled_streams_async(self, count: int, timeout: float = 5.0) -> None:
        await _poll_async(lambda: self.streams_cancelled >= count, timeout, f"{count} cancelled streams")

    def wait_for_idle(self, timeout: float = 5.0) -> None:
        """Until no call is being answered: every client has read its answer or closed its connection."""
        _poll(lambda: self.open_requests == 0, timeout, "idle moment (requests still open)")

    async def wait_for_idle_async(self, timeout: float = 5.0) -> None:
        await _poll_async(lambda: self.open_requests == 0, timeout, "idle moment (requests still open)")

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> "FakeUpstream":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(sock, started), name="fake-upstream", daemon=True)
        self._thread.start()
        started.wait(5)
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> "FakeUpstream":
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    def _serve(self, sock: socket.socket, started: threading.Event) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path, handler in self._routes().items():
            app.router.add_post(path, self._handler(handler))
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def _routes(self) -> dict[str, Callable[[dict, str], Answer]]:
        return {
            "/v1/messages/count_tokens": self._anthropic_count_tokens,
            "/v1/chat/completions": self._openai_chat,
            "/v1/completions": self._openai_completion,
            "/v1/embeddings": self._openai_embedding,
            "/openai/deployments/{deployment}/chat/completions": self._openai_chat,
            "/openai/deployments/{deployment}/completions": self._openai_completion,
            "/openai/deployments/{deployment}/embeddings": self._openai_embedding,
            "/v1/messages": self._anthropic,
            "/api/chat": self._ollama,
            "/api/generate": self._ollama,
            "/api/embed": self._ollama_embed,
            "/endpoints/{endpoint}/invocations": self._sagemaker,
            "/endpoints/{endpoint}/invocations-response-stream": self._sagemaker,
            **google_routes(self),
            **bedrock_routes(self),
        }

    # --- the parts every protocol shares --------------------------------------------------------------------

    def _handler(self, answer: Callable[[dict, str], Answer]):
        async def handle(request: web.Request) -> web.StreamResponse:
            with self._lock:
                self.open_requests += 1
            try:
                body = await request.read()
                headers = {name.lower(): value for name, value in request.headers.items()}
                recorded = Recorded(request.method, request.path, dict(request.query), headers, body)
                with self._lock:
                    self.requests.append(recorded)
                    behaviour = self._script.popleft() if self._script else self.behaviour
                if self.on_request is not None:
                    self.on_request(recorded)
                if is_bedrock(request.path) and (
                    refusal := signature_refusal(request.method, request.raw_path, headers, body)
                ):
                    return refusal
                form = request.content_type == "application/x-www-form-urlencoded"  # an OAuth token request
                fields = dict(parse_qsl(body.decode())) if form else orjson.loads(body or b"{}")
                return await self._answer(request, behaviour, answer(fields, request.path))
            except (asyncio.CancelledError, ConnectionResetError):
                with self._lock:
                    self.cancelled += 1
                raise
            finally:
                with self._lock:
                    self.open_requests -= 1

        return handle

    async def _answer(self, request: web.Request, behaviour: Behaviour, result: Answer) -> web.StreamResponse:
        if behaviour.first_byte_delay:
            await asyncio.sleep(behaviour.first_byte_delay)
        if behaviour.drop == "before":
            request.transport.close()
            return web.Response()
        if behaviour.status != 200:
            return self._error(request.path, behaviour)
        if result.frames or result.end:
            return await self._stream(request, behaviour, result)
        payload = MALFORMED_JSON if behaviour.malformed else orjson.dumps(result.body)
        if behaviour.drop == "mid_stream":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            request.transport.close()
            return response
        response = web.Response(body=payload, content_type="application/json", headers=dict(behaviour.headers))
        if behaviour.gzip:
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def _stream(self, request: web.Request, behaviour: Behaviour, answer: Answer) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": answer.content_type, "Cache-Control": "no-cache"})
        await response.prepare(request)
        frames = list(answer.frames)
        if behaviour.malformed:
            frames.insert(len(frames) // 2, answer.malformed_frame)
        try:
            for index, frame in enumerate(frames):
                if behaviour.drop == "mid_stream" and index == len(frames) // 2:
                    request.transport.close()
                    return response
                if behaviour.chunk_delay:
                    await asyncio.sleep(behaviour.chunk_delay)
                await response.write(frame)
            if behaviour.stream_end == "hang":
                await asyncio.Event().wait()  # until the client goes away and aiohttp cancels us
            if behaviour.stream_end == "normal":
                for frame in answer.end:
                    await response.write(frame)
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            with self._lock:
                self.streams_cancelled += 1
            raise
        return response

    def _error(self, path: str, behaviour: Behaviour) -> web.Response:
        message = behaviour.message or f"scripted failure {behaviour.status}"
        headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else {}
        if path == "/v1/messages":
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(behaviour.status, "api_error")
            body: dict = {"type": "error", "error": {"type": kind, "message": message}}
        elif path.startswith("/api/"):
            body = {"error": message}
        elif is_google(path):
            body = token_error(message) if path == "/token" else google_error(behaviour.status, message)
        elif is_bedrock(path):
            body, more_headers = bedrock_error(behaviour.status, message)
            headers.update(more_headers)
        elif path.startswith("/endpoints/"):
            body = {"message": message}
            headers["x-amzn-ErrorType"] = "ThrottlingException" if behaviour.status == 429 else "ModelError"
        else:
            body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        return web.Response(
            status=behaviour.status, body=orjson.dumps(body), content_type="application/json", headers=headers
        )

    def _words(self) -> list[str]:
        return re.findall(r"\S+\s*", self.reply) or [""]

    # --- OpenAI and Azure OpenAI ----------------------------------------------------------------------------

    def _openai_usage(self, request: dict | None = None) -> dict:
        prompt, completion = self.prompt_tokens, self.completion_tokens
        if self.billing is not None and request is not None:
            prompt, completion = self.billing(request)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
            **self.usage_extra,
        }

    def _openai_chat(self, request: dict, path: str) -> Answer:
        envelope = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": request.get("model")}
        finish = "tool_calls" if self.tool_call else self.finish_reason
        if not request.get("stream"):
            message: dict = {"role": "assistant", "content": None if self.tool_call else self.reply, "refusal": None}
            if self.tool_call:
                arguments = orjson.dumps(self.tool_call["arguments"]).decode()
                message["tool_calls"] = [
                    {
                        "id": "call_fake1",
                        "type": "function",
                        "function": {"name": self.tool_call["name"], "arguments": arguments},
                    }
                ]
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            usage = self._openai_usage(request)
            return Answer({**envelope, "object": "chat.completion", "choices": [choice], "usage": usage})

        def chunk(delta: dict, finish_reason: str | None = None) -> dict:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**envelope, "object": "chat.completion.chunk", "choices": [choice]}

        chunks = [chunk({"role": "assistant", "content": ""})]
        if self.tool_call:
            arguments = orjson.dumps(self.tool_call["arguments"]).decode()
            call = {
                "index": 0,
                "id": "call_fake1",
                "type": "function",
                "function": {"name": self.tool_call["name"], "arguments": ""},
            }
            chunks.append(chunk({"tool_calls": [call]}))
            for piece in _halves(arguments):
                chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        else:
            chunks += [chunk({"content": word}) for word in self._words()]
        chunks.append(chunk({}, finish))
        if (request.get("stream_options") or {}).get("include_usage"):
            usage = self._openai_usage(request)
            chunks.append({**envelope, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        return _sse_answer(chunks)

    def _openai_completion(self, request: dict, path: str) -> Answer:
        envelope = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": request.get("model"),
        }
        if not request.get("stream"):
            choice = {"index": 0, "text": self.reply, "logprobs": None, "finish_reason": self.finish_reason}
            return Answer({**envelope, "choices": [choice], "usage": self._openai_usage()})
        chunks = [
            {**envelope, "choices": [{"index": 0, "text": word, "logprobs": None, "finish_reason": None}]}
            for word in self._words()
        ]
        chunks.append(
            {**envelope, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": self.finish_reason}]}
        )
        if (request.get("stream_options") or {}).get("include_usage"):
            chunks.append({**envelope, "choices": [], "usage": self._openai_usage()})
        return _sse_answer(chunks)

    def _openai_embedding(self, request: dict, path: str) -> Answer:
        vectors = self._vectors(request.get("input"))
        if request.get("encoding_format") == "base64":
            vectors = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        usage = {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens}
        return Answer({"object": "list", "data": data, "model": request.get("model"), "usage": usage})

    def _vectors(self, inputs: Any) -> list[list[float]]:
        count = 1 if isinstance(inputs, str) or not inputs or isinstance(inputs[0], int) else len(inputs)
        return [[round(0.1 * (i + 1) + 0.01 * d, 4) for d in range(self.embedding_dimensions)] for i in range(count)]

    # --- Anthropic ------------------------------------------------------------------------------------------

    def _anthropic_usage(self, request: dict | None = None) -> dict:
        """With `cache_needs_hint`, as Anthropic does: cache reads and writes only for a request that sets a
        cache_control breakpoint; without one, the whole prompt is input."""
        cached, created = self.cached_tokens, self.cache_creation_tokens
        if self.cache_needs_hint and request is not None and b'"cache_control"' not in orjson.dumps(request):
            cached = created = 0
        return {
            "input_tokens": self.prompt_tokens - cached - created,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": cached,
            "output_tokens": self.completion_tokens,
        }

    def _anthropic_stop(self, request: dict) -> tuple[str, str, str | None]:
        """The reply, cut before the first of the request's stop sequences it holds; the stop reason and sequence."""
        if self.tool_call:
            return self.reply, "tool_use", None
        found = [(self.reply.find(s), s) for s in request.get("stop_sequences") or () if s and s in self.reply]
        if found:
            at, sequence = min(found)
            return self.reply[:at], "stop_sequence", sequence
        return self.reply, {"stop": "end_turn", "length": "max_tokens"}[self.finish_reason], None

    def _anthropic(self, request: dict, path: str) -> Answer:
        reply, stop_reason, stop_sequence = self._anthropic_stop(request)
        # Thinking, when asked for: one signed block first, as Anthropic answers.
        thinking = (request.get("thinking") or {}).get("type") == "enabled"
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": request.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }
        if not request.get("stream"):
            content: list[dict] = [{"type": "thinking", **ANTHROPIC_THINKING}] if thinking else []
            content.append({"type": "text", "text": reply})
            if self.tool_call:
                content.append(
                    {
                        "type": "tool_use",
                        "id": "toolu_fake1",
                        "name": self.tool_call["name"],
                        "input": self.tool_call["arguments"],
                    }
                )
            answer = {**message, "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence}
            return Answer({**answer, "usage": self._anthropic_usage(request)})
        start_usage = {**self._anthropic_usage(request), "output_tokens": 1}
        events: list[dict] = [{"type": "message_start", "message": {**message, "usage": start_usage}}]
        if thinking:
            signature = {"type": "signature_delta", "signature": ANTHROPIC_THINKING["signature"]}
            events += [
                {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
                *(
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": half}}
                    for half in _halves(ANTHROPIC_THINKING["thinking"])
                ),
                {"type": "content_block_delta", "index": 0, "delta": signature},
                {"type": "content_block_stop", "index": 0},
            ]
        text = 1 if thinking else 0  # the text block's index
        events += [
            {"type": "content_block_start", "index": text, "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            *(
                {"type": "content_block_delta", "index": text, "delta": {"type": "text_delta", "text": word}}
                for word in re.findall(r"\S+\s*", reply) or [""]
            ),
            {"type": "content_block_stop", "index": text},
        ]
        if self.tool_call:
            block = {"type": "tool_use", "id": "toolu_fake1", "name": self.tool_call["name"], "input": {}}
            events.append({"type": "content_block_start", "index": text + 1, "content_block": block})
            for piece in _halves(orjson.dumps(self.tool_call["arguments"]).decode()):
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append({"type": "content_block_delta", "index": text + 1, "delta": delta})
            events.append({"type": "content_block_stop", "index": text + 1})
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": {"output_tokens": self.completion_tokens},
            }
        )
        frames = [b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events]
        end = [b'event: message_stop\ndata: {"type":"message_stop"}\n\n']
        malformed = b"event: content_block_delta\ndata: " + MALFORMED_JSON + b"\n\n"
        return Answer(frames=frames, end=end, content_type="text/event-stream", malformed_frame=malformed)

    def _anthropic_count_tokens(self, request: dict, path: str) -> Answer:
        """Anthropic's count: the input tokens a call would report, cache excluded."""
        return Answer({"input_tokens": self._anthropic_usage(request)["input_tokens"]})

    # --- Ollama ---------------------------------------------------------------------------------------------

    def _ollama(self, request: dict, path: str) -> Answer:
        chat = path == "/api/chat"
        base = {"model": request.get("model"), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        done_reason = {"stop": "stop", "length": "length"}[self.finish_reason]
        counts = {
            "total_duration": 5_000_000,
            "load_duration": 1_000_000,
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": 1_000_000,
            "eval_count": self.completion_tokens,
            "eval_duration": 3_000_000,
        }

        def piece(text: str, done: bool) -> dict:
            if chat:
                message: dict = {"role": "assistant", "content": text}
                if done and self.tool_call:
                    message["tool_calls"] = [{"function": self.tool_call}]
                return {**base, "message": message, "done": done}
            return {**base, "response": text, "done": done}

        if not request.get("stream", True):  # Ollama streams unless told not to
            return Answer({**piece(self.reply, True), "done_reason": done_reason, **counts})
        frames = [orjson.dumps(piece(word, False)) + b"\n" for word in self._words()]
        end = [orjson.dumps({**piece("", True), "done_reason": done_reason, **counts}) + b"\n"]
        return Answer(
            frames=frames, end=end, content_type="application/x-ndjson", malformed_frame=MALFORMED_JSON + b"\n"
        )

    def _ollama_embed(self, request: dict, path: str) -> Answer:
        body = {
            "model": request.get("model"),
            "embeddings": self._vectors(request.get("input")),
            "total_duration": 1_000_000,
            "load_duration": 100_000,
            "prompt_eval_count": self.prompt_tokens,
        }
        return Answer(body)

    # --- SageMaker (Hugging Face TGI container) -------------------------------------------------------------

    def _sagemaker(self, request: dict, path: str) -> Answer:
        # TGI only reports the finish reason and token count when the request asks for `details`.
        finish = {"stop": "eos_token", "length": "length"}[self.finish_reason]
        asked = (request.get("parameters") or {}).get("details")
        details = {"finish_reason": finish, "generated_tokens": self.completion_tokens, "seed": None} if asked else None
        if not path.endswith("-response-stream"):
            return Answer([{"generated_text": self.reply, **({"details": details} if details else {})}])
        events = [
            {"token": {"id": i, "text": word, "logprob": -0.25, "special": False}, "generated_text": None}
            for i, word in enumerate(self._words())
        ]
        last = {"token": {"id": 2, "text": "</s>", "logprob": -0.01, "special": True}, "generated_text": self.reply}
        # SageMaker cuts the container's output into PayloadParts wherever it likes, mid-line included.
        content = b"".join(b"data:" + orjson.dumps({**e, "details": None}) + b"\n\n" for e in events)
        frames = [event_stream_message(content[i : i + 37]) for i in range(0, len(content), 37)]
        end = [event_stream_message(b"data:" + orjson.dumps({**last, "details": details}) + b"\n\n")]
        malformed = event_stream_message(b"data:" + MALFORMED_JSON + b"\n\n")
        return Answer(
            frames=frames, end=end, content_type="application/vnd.amazon.eventstream", malformed_frame=malformed
        )


def _sse_answer(chunks: list[dict]) -> Answer:
    frames = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks]
    malformed = b"data: " + MALFORMED_JSON + b"\n\n"
    return Answer(frames=frames, end=[b"data: [DONE]\n\n"], content_type="text/event-stream", malformed_frame=malformed)


def _halves(text: str) -> list[str]:
    return [text[: len(text) // 2], text[len(text) // 2 :]]


PAYLOAD_PART = {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"}


def event_stream_message(payload: bytes, headers: Mapping[str, str] = PAYLOAD_PART) -> bytes:
    """One AWS event-stream message (by default a SageMaker PayloadPart), CRCs included."""
    encoded = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"fake upstream: no {what} after {timeout}s")
        time.sleep(0.005)


async def _poll_async(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"fake upstream: no {what} after {timeout}s")
        await asyncio.sleep(0.005)


@pytest.fixture
def fake_upstream():
    """A started FakeUpstream, stopped after the test (import this fixture into a conftest to use it)."""
    with FakeUpstream() as upstream:
        yield upstream
