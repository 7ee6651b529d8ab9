"""The scenarios' own fake upstream: what nginx cannot do (paced streams, failures), and a count of every call.

    python -m bench.upstream --port 9200 [--chunks 10 --gap-ms 5 --first-ms 5]

A raw asyncio HTTP/1.1 server (uvloop when installed), keep-alive, one process. The first path segment picks the
behaviour, so that a deployment's api_base (`http://127.0.0.1:9200/paced/v1`) decides what it gets:

    /paced/…/chat/completions   an SSE stream: `--chunks` content chunks ("t0 ", "t1 ", …), the first after
                                `--first-ms`, then one every `--gap-ms`, then a usage chunk and [DONE]
    /fail500/…                  500 with an OpenAI error body
    /fail429/…                  429 with an OpenAI rate-limit error body (no retry-after)
    anything else (/ok/, /flood/…)  200 with nginx's chat completion
    GET /stats                  {"first segment": calls so far}: how many calls each behaviour got
"""

import argparse
import asyncio
import json
from collections import Counter

COMPLETION = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":'
    b'{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":200}}}'
)
FAILURES = {
    b"fail500": (
        500,
        b"Internal Server Error",
        b'{"error":{"message":"bench: the deployment failed","type":"server_error"}}',
    ),
    b"fail429": (
        429,
        b"Too Many Requests",
        b'{"error":{"message":"bench: rate limit reached","type":"rate_limit_error","code":"rate_limit_exceeded"}}',
    ),
}


def chunk_event(index: int) -> bytes:
    delta = {"role": "assistant", "content": f"t{index} "} if index == 0 else {"content": f"t{index} "}
    chunk = {
        "id": "chatcmpl-paced",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def usage_event(chunks: int) -> bytes:
    chunk = {
        "id": "chatcmpl-paced",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 1000, "completion_tokens": chunks, "total_tokens": 1000 + chunks},
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Upstream(asyncio.Protocol):
    """One client connection: requests one after the other (no pipelining), each answered in full."""

    def __init__(self, options, counts: Counter):
        self.options = options
        self.counts = counts
        self.buffer = bytearray()
        self.transport = None
        self.busy = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        self._next()

    def _next(self):
        if self.busy or self.transport is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if len(self.buffer) < end + 4 + length:
            return  # the body is still arriving
        del self.buffer[: end + 4 + length]
        segment = path.lstrip("/").split("/", 1)[0].encode()
        if method == "GET" and segment == b"stats":
            self._send(200, b"OK", json.dumps(dict(self.counts)).encode())
        elif segment == b"paced":
            self.counts[segment.decode()] += 1
            self.busy = True
            asyncio.get_running_loop().create_task(self._stream())
            return
        else:
            self.counts[segment.decode()] += 1
            status, reason, body = FAILURES.get(segment, (200, b"OK", COMPLETION))
            self._send(status, reason, body)
        self._next()

    def _send(self, status: int, reason: bytes, body: bytes) -> None:
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        self.transport.write(head % (status, reason, len(body)) + body)

    async def _stream(self):
        options = self.options
        transport = self.transport
        write = transport.write
        write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for index in range(options.chunks):
                await asyncio.sleep((options.first_ms if index == 0 else options.gap_ms) / 1000)
                if transport.is_closing():
                    return
                write(_http_chunk(chunk_event(index)))
            write(_http_chunk(usage_event(options.chunks)) + _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        finally:
            self.busy = False
        self._next()

    def connection_lost(self, exc):
        self.transport = None


async def serve(options) -> None:
    counts: Counter = Counter()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Upstream(options, counts), "127.0.0.1", options.port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    parser.add_argument("--first-ms", type=float, default=5.0)
    options = parser.parse_args()
    try:
        from uvloop import run
    except ImportError:
        run = asyncio.run
    run(serve(options))


if __name__ == "__main__":
    main()
