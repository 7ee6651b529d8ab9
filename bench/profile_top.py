"""Read a py-spy profile (`py-spy record --format raw`: collapsed stacks) and list where the time goes.

    .venv/bin/python bench/profile_top.py bench/results/profile-tollgate-json-c16.txt [--top 25]

Self time is the innermost frame of each sample; inclusive time counts a function once per sample it is anywhere
in. Samples are split by thread: the event loop (the one that serves requests) against the helper threads (the
ledger writer, the routing sync, asgiref's sync_to_async pool), because only the event loop's time is latency.
"""

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_OURS = ("gateway/", "keys/", "pricing/", "spend/")


def parse(path: Path):
    """(frames, samples) for every stack; frames outermost first, each (function, file, line)."""
    for raw in path.read_text().splitlines():
        stack, _, count = raw.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            if match:
                frames.append((match["function"], match["file"], match["line"] or ""))
            else:
                frames.append((frame, "", ""))
        yield frames, int(count)


def _is_event_loop(frames) -> bool:
    return (
        bool(frames) and frames[0][1].endswith("manage.py") or any(f[1].endswith("asyncio/runners.py") for f in frames)
    )


def _origin(file: str) -> str:
    if file.startswith(_OURS) or "/src/" in file and file.split("/src/", 1)[1].startswith(_OURS):
        return "tollgate"
    if file.startswith("django/"):
        return "django"
    return "other"


def summarize(path: Path, top: int = 25) -> dict:
    total = loop_total = 0
    self_lines: Counter = Counter()
    self_functions: Counter = Counter()
    inclusive: Counter = Counter()
    by_origin: Counter = Counter()
    for frames, count in parse(path):
        total += count
        if not _is_event_loop(frames):
            continue
        loop_total += count
        function, file, line = frames[-1]
        self_lines[f"{function} ({file}:{line})"] += count
        self_functions[f"{function} ({file})"] += count
        by_origin[_origin(file)] += count
        seen = set()
        for function, file, _line in frames:
            key = f"{function} ({file})"
            if key not in seen and _origin(file) in ("tollgate", "django"):
                seen.add(key)
                inclusive[key] += count

    def share(counter: Counter, limit: int) -> list[tuple[str, float]]:
        return [(key, round(100 * n / loop_total, 1)) for key, n in counter.most_common(limit)] if loop_total else []

    return {
        "samples": total,
        "event_loop_samples": loop_total,
        "self_by_origin_pct": {k: round(100 * n / loop_total, 1) for k, n in by_origin.most_common()},
        "self_functions": share(self_functions, top),
        "self_lines": share(self_lines, top),
        "inclusive_ours_and_django": share(inclusive, top),
    }


def print_summary(summary: dict) -> None:
    print(f"samples: {summary['samples']}, on the event loop: {summary['event_loop_samples']}")
    print("event-loop self time by origin: " + ", ".join(f"{k} {v}%" for k, v in summary["self_by_origin_pct"].items()))
    for title, key in (
        ("self time, by function", "self_functions"),
        ("self time, by line", "self_lines"),
        ("inclusive time, Tollgate and Django functions", "inclusive_ours_and_django"),
    ):
        print(f"\n{title} (% of event-loop samples):")
        for name, pct in summary[key]:
            print(f"  {pct:5.1f}%  {name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print_summary(summarize(args.profile, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
