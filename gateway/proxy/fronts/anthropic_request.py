"""An Anthropic Messages request as a chat payload, and that payload as each deployment's provider takes it.

What chat has no word for travels in LiteLLM's extensions of the chat format, the ones the Anthropic and Bedrock
providers read (gateway.providers.anthropic says which): `cache_control` on parts, tool messages, tool calls and
tools; `thinking`; an assistant's `thinking_blocks`; `document` parts. A call from /v1/messages thus reaches an
Anthropic deployment as the same call from /chat/completions would, cache writes and reads priced alike.

Which deployment serves is decided later, per attempt (a fallback may reach another provider), so the translation
notes which of those extensions a request used and `for_deployment` adapts the payload to the deployment at hand:
Anthropic-family deployments (Anthropic, Claude on Bedrock or Vertex AI) take all of it; for any other, cache
hints and earlier thinking are dropped (nothing else reads them, and OpenAI refuses unknown fields), `thinking`
becomes `reasoning_effort` (LiteLLM's mapping), `top_k` is kept only where the provider has one, and a document is
refused with a 400 naming the provider (dropping it would answer a question about a file nobody read).
"""

from typing import Any

import orjson

from gateway.providers.base import ProviderError
from gateway.proxy.errors import BadRequest

# LiteLLM's buckets of a thinking budget as a reasoning effort (reasoning_effort_from_thinking_budget): the budget
# each effort starts at, the highest first. Gemini's adapter maps the effort back to the same budgets.
REASONING_EFFORTS = ((4096, "high"), (2048, "medium"), (1024, "low"))
# Providers outside Anthropic's family that take a `top_k` (Gemini's topK, Ollama's option, vLLM's and these
# OpenAI-compatible servers' extra parameter); OpenAI and the rest refuse it.
TOP_K_PROVIDERS = frozenset(
    {"gemini", "vertex_ai", "ollama", "ollama_chat", "hosted_vllm", "together_ai", "fireworks_ai", "openrouter"}
)
# Converse reads documents for every Bedrock model, not only Claude.
DOCUMENT_PROVIDERS = frozenset({"bedrock"})
THINKING_TYPES = ("enabled", "disabled", "adaptive")


def invalid(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param, code="invalid_value")


class Seen:
    """Which of the chat format's Anthropic extensions one request used: what `for_deployment` must adapt."""

    def __init__(self) -> None:
        self.cache = self.thinking_blocks = self.documents = False

    def cached(self, target: dict, source: dict) -> dict:
        if source.get("cache_control"):
            target["cache_control"] = source["cache_control"]
            self.cache = True
        return target


# --- request -------------------------------------------------------------------------------------------------


def system_content(system: Any, seen: Seen) -> str | list[dict]:
    """The system prompt: its blocks as text parts when one sets a cache breakpoint, else one string."""
    if isinstance(system, list) and any(isinstance(block, dict) and block.get("cache_control") for block in system):
        parts = [part(block, f"system[{index}]", seen) for index, block in enumerate(system)]
        if any(item["type"] != "text" for item in parts):
            raise invalid("system: only text blocks are taken.", "system")
        return parts
    return text(system, "system", seen, "\n\n")


def messages(message: Any, index: int, seen: Seen) -> list[dict]:
    """One Anthropic message as chat messages: a user turn's tool results become `tool` messages (first, as chat
    wants them right after the assistant's calls); an assistant's tool_use blocks become its tool_calls, its thinking
    blocks its `thinking_blocks`."""
    param = f"messages[{index}]"
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise invalid(f"{param}: an object with role 'user' or 'assistant' is required.", param)
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise invalid(f"{param}.content: a string or a list of content blocks is required.", f"{param}.content")
    results, parts, calls, thinking = [], [], [], []
    for position, block in enumerate(content):
        where = f"{param}.content[{position}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result" and role == "user":
            result = {"role": "tool", "tool_call_id": str(block.get("tool_use_id")), "content": ""}
            result["content"] = text(block.get("content"), where, seen)
            results.append(seen.cached(result, block))
        elif kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": str(block.get("name")), "arguments": arguments}
            calls.append(seen.cached({"id": str(block.get("id")), "type": "function", "function": function}, block))
        elif kind == "thinking" and role == "assistant":
            thinking.append({"type": "thinking", "thinking": str(block.get("thinking") or "")})
            thinking[-1]["signature"] = str(block.get("signature") or "")
        elif kind == "redacted_thinking" and role == "assistant":
            thinking.append({"type": "redacted_thinking", "data": str(block.get("data") or "")})
        elif kind in ("thinking", "redacted_thinking"):
            raise invalid(f"{where}: thinking blocks are an assistant's.", where)
        else:
            parts.append(part(block, where, seen))
    chat: list[dict] = list(results)
    if parts or calls or thinking:
        turn: dict[str, Any] = {"role": role, "content": parts or None}
        plain = all(item["type"] == "text" and "cache_control" not in item for item in parts)
        if role == "assistant" and plain:
            turn["content"] = "".join(item["text"] for item in parts) or None
        if calls:
            turn["tool_calls"] = calls
        if thinking:
            turn["thinking_blocks"] = thinking
            seen.thinking_blocks = True
        chat.append(turn)
    return chat


def part(block: Any, where: str, seen: Seen) -> dict:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text" and isinstance(block.get("text"), str):
        return seen.cached({"type": "text", "text": block["text"]}, block)
    if kind == "image" and isinstance(block.get("source"), dict):
        source = block["source"]
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
            return seen.cached({"type": "image_url", "image_url": {"url": url}}, block)
        if source.get("type") == "url":
            return seen.cached({"type": "image_url", "image_url": {"url": str(source.get("url"))}}, block)
    if kind == "document":
        return seen.cached(document(block, where, seen), block)
    raise invalid(f"{where}: content block type {kind!r} is not supported here.", where)


def document(block: dict, where: str, seen: Seen) -> dict:
    """Anthropic's document block, kept as it is for the providers that take one: a base64 PDF or plain text."""
    source = block.get("source")
    pdf = isinstance(source, dict) and source.get("type") == "base64" and source.get("media_type") == "application/pdf"
    plain = isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str)
    if not (pdf and isinstance(source.get("data"), str)) and not plain:
        raise invalid(f"{where}: a document's source must be a base64 PDF or plain text.", where)
    seen.documents = True
    return {name: value for name, value in block.items() if name != "cache_control"}


def text(content: Any, where: str, seen: Seen, separator: str = "") -> str:
    """The text of a string or of a list of blocks (a tool result's, the system prompt's); images are not carried."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = [part(block, where, seen) for block in content]
        return separator.join(item["text"] for item in parts if item["type"] == "text")
    raise invalid(f"{where}: content must be a string or a list of blocks.", where)


def tool(spec: Any, seen: Seen) -> dict:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise invalid("tools: each tool needs a string 'name'.", "tools")
    if spec.get("type") not in (None, "custom"):
        return spec  # Anthropic's server tools (web_search_...): only an Anthropic deployment knows them
    function = {"name": spec["name"], "parameters": spec.get("input_schema") or {"type": "object"}}
    if spec.get("description"):
        function["description"] = spec["description"]
    return seen.cached({"type": "function", "function": function}, spec)


def tool_choice(choice: Any) -> dict:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice.get("name"), str):
        chat: dict[str, Any] = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    elif kind in ("auto", "any", "none"):
        chat = {"tool_choice": {"auto": "auto", "any": "required", "none": "none"}[kind]}
    else:
        raise invalid("tool_choice: type must be auto, any, tool (with a name) or none.", "tool_choice")
    if choice.get("disable_parallel_tool_use"):
        chat["parallel_tool_calls"] = False
    return chat


def thinking(value: Any) -> dict:
    if not isinstance(value, dict) or value.get("type") not in THINKING_TYPES:
        raise invalid(
            "thinking: an object with type 'enabled' (and budget_tokens), 'disabled' or 'adaptive'.", "thinking"
        )
    budget = value.get("budget_tokens")
    if value["type"] == "enabled" and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
        raise invalid("thinking.budget_tokens: a positive integer is required.", "thinking.budget_tokens")
    return value


# --- per deployment -------------------------------------------------------------------------------------------


def anthropic_family(provider: str, model: str) -> bool:
    """Deployments that speak Anthropic's Messages underneath and take all of it. A Bedrock ARN is taken for Claude,
    as LiteLLM does on /v1/messages: its name does not say."""
    model = model.lower()
    if provider == "anthropic":
        return True
    if provider == "vertex_ai":
        return model.startswith("claude")
    if provider == "bedrock":
        return "anthropic" in model or "claude" in model or model.startswith("arn:")
    return False


def reasoning_effort(value: dict) -> str | None:
    """LiteLLM's translation of a thinking request for models without Anthropic's: a budget's effort bucket."""
    if value.get("type") == "adaptive":
        return "medium"
    if value.get("type") != "enabled":
        return None
    budget = value.get("budget_tokens") or 0
    return next((effort for least, effort in REASONING_EFFORTS if budget >= least), "minimal")


def for_provider(payload: dict, provider: str, model: str, seen: Seen) -> dict:
    """`payload` as a deployment outside Anthropic's family takes it (see the module's docstring)."""
    if seen.documents and provider not in DOCUMENT_PROVIDERS:
        raise ProviderError(
            400,
            f"Model {payload['model']!r} is served by {provider}, which does not take documents: send the "
            "document's text as a text block, or call a model served by Anthropic, Bedrock or Claude on Vertex AI.",
            retryable=False,
        )
    adapted = dict(payload)
    if provider not in TOP_K_PROVIDERS:
        adapted.pop("top_k", None)
    value = adapted.pop("thinking", None)
    if value is not None and "reasoning_effort" not in adapted and (effort := reasoning_effort(value)):
        adapted["reasoning_effort"] = effort
    if seen.cache or seen.thinking_blocks:
        adapted["messages"] = [_plain_message(message) for message in payload["messages"]]
        if payload.get("tools"):
            adapted["tools"] = [_uncached(spec) for spec in payload["tools"]]
    return adapted


def _uncached(item: dict) -> dict:
    return {name: value for name, value in item.items() if name != "cache_control"} if "cache_control" in item else item


def _plain_message(message: dict) -> dict:
    """A chat message without cache breakpoints or earlier thinking (whose signature only Anthropic can read)."""
    plain = {name: value for name, value in message.items() if name not in ("cache_control", "thinking_blocks")}
    if isinstance(plain.get("content"), list):
        plain["content"] = [_uncached(item) for item in plain["content"]]
    if plain.get("tool_calls"):
        plain["tool_calls"] = [_uncached(call) for call in plain["tool_calls"]]
    return plain
