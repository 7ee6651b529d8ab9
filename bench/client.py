"""Streams measured from the outside: time to first chunk, the gaps between chunks, and whether they come 1:1.

    python -m bench.client < spec.json      (prints one JSON result)

spec: {"url", "headers", "body", "concurrency", "duration" or "count", "expect"}: `concurrency` keep-alive
connections each send streaming calls one after the other, for `duration` seconds or until `count` calls were
made. Every server-sent event is stamped when the bytes that complete it arrive, so the client's own parsing never
delays a stamp. A stream is good when it is a 200 whose content events are exactly `expect` chunks "t0 ", "t1 ",
… in order, one event each (what bench/upstream.py's /paced/ sends): nothing merged, split, lost or reordered.

A raw asyncio HTTP/1.1 client on uvloop, in its own process: the same client measures the upstream alone, so
its own cost is in the baseline too.
"""

import asyncio
import json
import sys
import time
import urllib.parse
from dataclasses import dataclass, field


@dataclass
class Exchange:
    """One request's answer as it arrived."""

    sent_at: float
    status: int = 0
    events: list[tuple[float, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    ended_at: float = 0.0
    error: str = ""


class Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection that decodes Content-Length and chunked bodies and splits SSE events."""

    def __init__(self):
        self.transport = None
        self.buffer = bytearray()
        self.exchange: Exchange | None = None
        self.done: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        if self.done and not self.done.done():
            self.exchange.error = f"connection closed ({exc or 'by the server'})"
            self.done.set_result(self.exchange)

    async def send(self, raw: bytes) -> Exchange:
        self.exchange = Exchange(sent_at=0.0)
        self.done = asyncio.get_running_loop().create_future()
        self._state, self._remaining, self._events = "head", 0, bytearray()
        self.buffer.clear()
        self.transport.write(raw)
        self.exchange.sent_at = time.perf_counter()
        return await self.done

    def data_received(self, data):
        now = time.perf_counter()
        if self.exchange is None or self.done.done():
            return
        self.buffer += data
        while self._step(now):
            pass

    def _step(self, now: float) -> bool:
        buffer = self.buffer
        if self._state == "head":
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            self.exchange.status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip().lower()
            if headers.get("transfer-encoding") == "chunked":
                self._state = "size"
            else:
                self._state, self._remaining = "length", int(headers.get("content-length", "0"))
                if self._remaining == 0:
                    self._finish(now)
                    return False
            return True
        if self._state == "length":
            take = bytes(buffer[: self._remaining])
            del buffer[: len(take)]
            self._remaining -= len(take)
            self._body(take, now)
            if self._remaining == 0:
                self._finish(now)
            return False
        if self._state == "size":
            end = buffer.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(buffer[:end]).split(b";")[0], 16)
            del buffer[: end + 2]
            if size == 0:
                self._state = "trailer"
            else:
                self._state, self._remaining = "chunk", size
            return True
        if self._state == "chunk":
            if len(buffer) < self._remaining + 2:
                if self._remaining and buffer:
                    take = bytes(buffer[: min(len(buffer), self._remaining)])
                    del buffer[: len(take)]
                    self._remaining -= len(take)
                    self._body(take, now)
                return False
            take = bytes(buffer[: self._remaining])
            del buffer[: self._remaining + 2]
            self._body(take, now)
            self._state = "size"
            return True
        if self._state == "trailer":
            end = buffer.find(b"\r\n")
            if end < 0:
                return False
            del buffer[: end + 2]
            if end == 0:
                self._finish(now)
                return False
            return True
        return False

    def _body(self, data: bytes, now: float) -> None:
        self.exchange.body += data
        self._events += data
        while True:
            end = self._events.find(b"\n\n")
            if end < 0:
                return
            self.exchange.events.append((now, bytes(self._events[:end]).strip()))
            del self._events[: end + 2]

    def _finish(self, now: float) -> None:
        self.exchange.ended_at = now
        self._state = "done"
        self.done.set_result(self.exchange)


def content_of(event: bytes) -> str | None:
    """The text of a chat completion chunk event; None for anything else (role-only, usage, [DONE])."""
    text = event.replace(b"\r\n", b"\n")
    data = b"".join(line[5:].strip() for line in text.split(b"\n") if line.startswith(b"data:"))
    if not data or data == b"[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except ValueError:
        return None
    for choice in chunk.get("choices") or ():
        content = (choice.get("delta") or {}).get("content")
        if content:
            return content
    return None


def judge(exchange: Exchange, expect: int) -> tuple[str, list[float], list[float]]:
    """("" when good, else why), the stream's time to first content chunk and its gaps, in ms."""
    if exchange.error:
        return exchange.error, [], []
    if exchange.status != 200:
        return f"status {exchange.status}: {bytes(exchange.body[:200])!r}", [], []
    stamped = [(at, content) for at, event in exchange.events if (content := content_of(event)) is not None]
    contents = [content for _, content in stamped]
    expected = [f"t{index} " for index in range(expect)]
    ttft = [(stamped[0][0] - exchange.sent_at) * 1000] if stamped else []
    gaps = [(later[0] - earlier[0]) * 1000 for earlier, later in zip(stamped, stamped[1:], strict=False)]
    if contents != expected:
        if "".join(contents) == "".join(expected):
            return f"{len(contents)} content events for {expect} chunks (merged or split)", ttft, gaps
        return f"content out of order or lost: {''.join(contents)[:80]!r}", ttft, gaps
    if not exchange.events or b"[DONE]" not in exchange.events[-1][1]:
        return "no [DONE] at the end", ttft, gaps
    return "", ttft, gaps


def summarize(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(int(share * len(ordered)), len(ordered) - 1)], 3)

    return {"n": len(ordered), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 3)}


async def run(spec: dict) -> dict:
    url = urllib.parse.urlsplit(spec["url"])
    body = spec["body"].encode()
    head = f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in spec.get("headers", {}).items())
    raw = head.encode() + b"\r\n" + body
    expect = spec["expect"]
    count = spec.get("count")
    stop_at = time.perf_counter() + spec.get("duration", 3600)
    started = {"n": 0}
    statuses: dict[str, int] = {}
    problems: dict[str, int] = {}
    ttfts: list[float] = []
    gaps: list[float] = []
    totals: list[float] = []
    good = 0
    loop = asyncio.get_running_loop()

    async def worker():
        nonlocal good
        connection = None
        while time.perf_counter() < stop_at and (count is None or started["n"] < count):
            started["n"] += 1
            if connection is None or connection.closed:
                _, connection = await loop.create_connection(Connection, url.hostname, url.port)
            exchange = await connection.send(raw)
            statuses[str(exchange.status)] = statuses.get(str(exchange.status), 0) + 1
            problem, ttft, stream_gaps = judge(exchange, expect)
            ttfts.extend(ttft)
            gaps.extend(stream_gaps)
            if exchange.ended_at:
                totals.append((exchange.ended_at - exchange.sent_at) * 1000)
            if problem:
                problems[problem] = problems.get(problem, 0) + 1
                connection.transport.close()
                connection = None
            else:
                good += 1
        if connection is not None:
            connection.transport.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    elapsed = time.perf_counter() - began
    return {
        "streams": started["n"],
        "good": good,
        "statuses": statuses,
        "problems": dict(sorted(problems.items(), key=lambda item: -item[1])[:5]),
        "ttft_ms": summarize(ttfts),
        "gap_ms": summarize(gaps),
        "total_ms": summarize(totals),
        "elapsed_s": round(elapsed, 3),
        "streams_per_s": round(started["n"] / elapsed, 1) if elapsed else 0.0,
    }


def main() -> None:
    spec = json.load(sys.stdin)
    try:
        from uvloop import run as run_loop
    except ImportError:
        run_loop = asyncio.run
    print(json.dumps(run_loop(run(spec))))


if __name__ == "__main__":
    main()
