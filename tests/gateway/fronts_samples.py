"""What the fronts' tests share: one chat answer and one chat stream (text, then a tool call), and events read back."""

import orjson

from pricing.calculator import Usage

# "Let me look.", a call of `look` with {"x":1}; 30 prompt tokens (10 cache reads, 5 cache writes), 7 completion
# tokens (2 reasoning).
ANSWER_WITH_TOOL_CALL = {
    "model": "gpt-4o-2024",
    "choices": [
        {
            "message": {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"x":1}'}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 30,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 2},
        "cache_creation_input_tokens": 5,
    },
}


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"model": "gpt-4o", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


# "Hi there", then a call of `look` with arguments {"x":1} sent in two pieces, as OpenAI streams them.
TEXT_THEN_TOOL_CALL = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hi "}),
    chunk({"content": "there"}),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "look", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
    chunk({}, "tool_calls"),
]


def play(stream, usage: Usage) -> bytes:
    """What a front's stream encoder sends for TEXT_THEN_TOOL_CALL ending with `usage`."""
    return b"".join([*(stream.chunk(c) for c in TEXT_THEN_TOOL_CALL), stream.end(usage, None)])


def events(data: bytes) -> list[tuple[str, dict]]:
    """The (event name, data) of each server-sent event."""
    parsed = []
    for frame in data.decode().split("\n\n"):
        if frame:
            name_line, data_line = frame.split("\n")
            parsed.append((name_line.removeprefix("event: "), orjson.loads(data_line.removeprefix("data: "))))
    return parsed


def json_values(keys: list[str]):
    """Any JSON value, objects mostly keyed by `keys` (a front's field names), nested a few levels: fuzz input."""
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.sampled_from(keys)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(keys), inner, max_size=5),
        max_leaves=25,
    )
