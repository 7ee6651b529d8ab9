"""The scanner of the secrets audit (tests/secrets_audit.py): what counts as a secret leaking, how a log record is
captured whatever its level, and how a leak is reported. Plain Python, tested in tests/security/test_secrets_audit.py.
"""

import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

# Shorter values ("x", "sk-1") are too common to grep for: a hit would say nothing.
MIN_SECRET_LENGTH = 10
FRAGMENT_LENGTH = 16
KNOWN_PREFIXES = ("Bearer ", "sk-ant-", "sk-proj-", "sk-")
# What keys.services.new_raw_key makes: caught even when the key was made where no hook saw it.
VIRTUAL_KEY_SHAPE = re.compile(r"(?<![\w-])sk-[\w-]{32}(?![\w-])", re.ASCII)
# Exposures reported without failing the run, each with why it is no leak of Tollgate's.
KNOWN_EXPOSURES = [
    (re.compile(r"^Master key: "), "`make run` prints the demo master key, as the README says"),
    (
        re.compile(r"httpx:? HTTP Request: GET http://127\.0\.0\.1:\d+/(key/info\?key|spend/logs\?api_key)="),
        "the tests' HTTP client logs each URL it calls, and LiteLLM's GET /key/info and /spend/logs take the key in "
        "their query",
    ),
]
PLACES_PER_SECRET = 3
_FORMATTER = logging.Formatter("%(levelname)s %(name)s: %(message)s")
# Set while a record is formatted for the audit: the audit's repr() of its arguments must run no query.
formatting = threading.local()


def hint(secret: str) -> str:
    """How a report names a secret: enough to recognise it, never enough to use it."""
    return f"{secret[:6]}… ({len(secret)} chars)"


def needles(secret: str) -> set[str]:
    """The strings whose presence shows `secret` leaked: itself, encoded, without its prefix, and its ends."""
    if len(secret) < MIN_SECRET_LENGTH:
        return set()
    found = {secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]}
    body = next((secret.removeprefix(prefix) for prefix in KNOWN_PREFIXES if secret.startswith(prefix)), secret)
    if len(body) >= MIN_SECRET_LENGTH:
        found.add(body)
    if len(body) >= FRAGMENT_LENGTH + 8:
        found |= {body[:FRAGMENT_LENGTH], body[-FRAGMENT_LENGTH:]}
    return found


def _trie_pattern(words) -> str:
    """One regex for many literals, as a trie: Python's `re` tries the branches of a flat alternation one by one."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        if len(branches) == 1 and "" not in node:
            return branches[0]
        return "(?:" + "|".join(branches) + ")" + ("?" if "" in node else "")

    return build(trie)


@dataclass(frozen=True)
class Leak:
    secret: str
    origin: str  # where the secret comes from
    source: str  # which log, output or response
    line: int
    text: str  # the line, every secret in it masked
    known: str = ""  # why a known exposure is not Tollgate's leak

    def describe(self) -> str:
        return f"{hint(self.secret)} from {self.origin}\n    in {self.source}, line {self.line}: {self.text[:300]}"


class SecretMatcher:
    """Finds the given secrets (value -> where it comes from) and anything shaped like a virtual key in text."""

    def __init__(self, secrets: Mapping[str, str]):
        self.origins = dict(secrets)
        self.needles: dict[str, str] = {}
        for secret in sorted(secrets, key=len, reverse=True):  # a needle two secrets share names the longer
            for needle in needles(secret):
                self.needles.setdefault(needle, secret)
        self._pattern = re.compile(_trie_pattern(self.needles)) if self.needles else None

    def find(self, text: str) -> Iterator[tuple[str, int, int]]:
        """(secret, start, end) of each hit."""
        if self._pattern:
            for match in self._pattern.finditer(text):
                yield self.needles[match.group()], match.start(), match.end()
        for match in VIRTUAL_KEY_SHAPE.finditer(text):
            if match.group() not in self.needles:
                yield match.group(), match.start(), match.end()

    def mask(self, text: str) -> str:
        for _, start, end in sorted(self.find(text), key=lambda hit: hit[1], reverse=True):
            text = f"{text[:start]}[{hint(text[start:end])}]{text[end:]}"
        return text

    def scan(self, text: str, source: str) -> list[Leak]:
        hits = list(self.find(text))
        lines = text.split("\n") if hits else []
        leaks = []
        for secret, start, _ in hits:
            number = text.count("\n", 0, start)
            origin = self.origins.get(secret, "nowhere registered: it has the shape of a virtual key")
            known = next((why for pattern, why in KNOWN_EXPOSURES if pattern.search(lines[number])), "")
            leaks.append(Leak(secret, origin, source, number + 1, self.mask(lines[number].strip()), known))
        return leaks

    def scan_file(self, path: Path, label: str) -> list[Leak]:
        return self.scan(path.read_text(errors="replace"), f"{label} ({path})")

    def scan_capture(self, path: Path) -> list[Leak]:
        """The test process's capture: one JSON object a line, each a log record, an error body or an output."""
        leaks = []
        with open(path, encoding="utf-8") as capture:
            for number, raw in enumerate(capture, 1):
                if (self._pattern and self._pattern.search(raw)) or VIRTUAL_KEY_SHAPE.search(raw):
                    entry = json.loads(raw)
                    source = f"test process {entry['kind']} #{number}: {entry['label']}, during {entry['test']}"
                    leaks += self.scan(entry["text"], source)
        return leaks


def _safe_repr(value) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def format_record(record: logging.LogRecord) -> str:
    """A record as a handler would show it, with its traceback and stack. While it is formatted, the repr() of its
    arguments runs no query (the plugin's Django hooks see `formatting`): tests count queries, and a DEBUG record
    nobody formatted never ran them."""
    traceback_text = record.exc_text
    formatting.active = True
    try:
        return _FORMATTER.format(record)
    except Exception as exc:  # a record whose arguments cannot be formatted is still audited, as far as it goes
        parts = [record.levelname, record.name, _safe_repr(record.msg), *map(_safe_repr, record.args or ())]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(_safe_repr(record.exc_info[1]))
        return " ".join([*parts, f"(not formattable: {type(exc).__name__})"])
    finally:
        formatting.active = False
        record.exc_text = traceback_text  # the usual handlers format it themselves, as they would have


class LogTap:
    """Sees every record any logger makes, whatever its level; passes on only what the logger would have."""

    def __init__(self, sink):
        self.sink = sink
        self._saved = None

    def install(self) -> None:
        self._saved = (logging.Logger.isEnabledFor, logging.Logger.handle)
        was_enabled, handle_as_before = self._saved
        sink = self.sink

        def is_enabled_for(logger, level):
            return True

        def handle(logger, record):
            sink(record)
            if was_enabled(logger, record.levelno):
                handle_as_before(logger, record)

        logging.Logger.isEnabledFor, logging.Logger.handle = is_enabled_for, handle

    def uninstall(self) -> None:
        if self._saved:
            logging.Logger.isEnabledFor, logging.Logger.handle = self._saved
            self._saved = None


def report(leaks: list[Leak]) -> list[str]:
    """The first few places each leaked secret was found, and how many there were in all."""
    by_secret: dict[str, list[Leak]] = {}
    for leak in leaks:
        by_secret.setdefault(leak.secret, []).append(leak)
    lines = []
    for found in by_secret.values():
        lines += [leak.describe() for leak in found[:PLACES_PER_SECRET]]
        if len(found) > PLACES_PER_SECRET:
            lines.append(f"    ... and {len(found) - PLACES_PER_SECRET} more places")
    return lines
