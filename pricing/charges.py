"""What the cost map charges beyond tokens, and how a request and a model name say which rate applies (issue 17).

- **Search fees.** An entry with ``search_context_cost_per_query`` (Perplexity's sonar models, OpenAI's search
  models) charges each web search at the rate of the call's search context size, ``search_context_size_low``,
  ``_medium`` or ``_high``. The size is the one the upstream reports (Perplexity's ``usage.search_context_size``),
  else the one the request asked for (``web_search_options.search_context_size``, or a ``web_search`` tool's),
  else the provider's default: ``low`` for Perplexity (its API's default), ``medium`` for the rest (OpenAI's, and
  LiteLLM's ``get_default_cost_for_web_search``). The map's figures are dollars per query, as the providers publish
  them (Perplexity's "$5 per 1,000 requests" is ``0.005``), and are charged as written.
- **Citation tokens** (Perplexity's deep research): ``citation_cost_per_token`` each, beside the prompt.
- **Together AI's size buckets.** A ``together_ai/`` model the map does not name is priced at the bucket of its
  parameter count (``together-ai-21.1b-41b``, ...), read from its name as LiteLLM does
  (litellm/llms/together_ai/cost_calculator.py): the first ``<digits>b`` for chat models, else the first
  ``<digits>m`` for embedding models.

Pure Python, no Django: the calculator and the price resolution call these.
"""

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

SEARCH_CONTEXT_SIZES = ("low", "medium", "high")
SEARCH_TOOL_TYPES = frozenset({"web_search", "web_search_preview"})
_DEFAULT_SEARCH_CONTEXT = {"perplexity": "low"}
_FALLBACK_SEARCH_CONTEXT = "medium"

# (largest parameter count in billions, bucket) in ascending order: LiteLLM's TOGETHER_AI_* constants.
_TOGETHER_CHAT_BUCKETS = (
    (4, "together-ai-up-to-4b"),
    (8, "together-ai-4.1b-8b"),
    (21, "together-ai-8.1b-21b"),
    (41, "together-ai-21.1b-41b"),
    (80, "together-ai-41.1b-80b"),
    (110, "together-ai-81.1b-110b"),
)
_TOGETHER_EMBEDDING_BUCKETS = ((150, "together-ai-embedding-up-to-150m"), (350, "together-ai-embedding-151m-to-350m"))
_BILLIONS = re.compile(r"(\d+)b")
_MILLIONS = re.compile(r"(\d+)m")


def requested_search(request: Mapping[str, Any] | None) -> tuple[bool, str]:
    """Whether a request asks for a web search (``web_search_options``, or a web search tool among its
    ``tools``), and the search context size it names ("" when none)."""
    if not isinstance(request, Mapping):
        return False, ""
    options = request.get("web_search_options")
    if isinstance(options, Mapping):
        return True, _size(options.get("search_context_size"))
    tools = request.get("tools")
    for tool in tools if isinstance(tools, list | tuple) else ():  # a body's `tools: true` is the upstream's to refuse
        if isinstance(tool, Mapping) and (tool.get("type") in SEARCH_TOOL_TYPES or "search_context_size" in tool):
            return True, _size(tool.get("search_context_size"))
    return False, ""


def most_searches(price: Mapping[str, Any], request: Mapping[str, Any] | None) -> tuple[int, str]:
    """The searches a budget reservation counts for a call, and at which size: one at the dearest size when the
    entry prices searches and the call asks for one or goes to Perplexity (whose sonar models search on every
    call); else none. Deep research runs many searches and says how many only afterwards: that count is not
    bounded, nor are citation tokens."""
    table = price.get("search_context_cost_per_query")
    if not isinstance(table, Mapping) or not (
        requested_search(request)[0] or price.get("litellm_provider") == "perplexity"
    ):
        return 0, ""
    return 1, max(SEARCH_CONTEXT_SIZES, key=lambda size: _decimal_or_zero(table.get(f"search_context_size_{size}")))


def search_context_key(size: str, provider: object) -> str:
    """The ``search_context_cost_per_query`` key a call of this size (or "" for the default) is charged at."""
    if size not in SEARCH_CONTEXT_SIZES:
        size = _DEFAULT_SEARCH_CONTEXT.get(provider if isinstance(provider, str) else "", _FALLBACK_SEARCH_CONTEXT)
    return f"search_context_size_{size}"


def together_ai_bucket(model: str) -> str | None:
    """The cost-map bucket a Together AI model's size puts it in, or None when its name gives no size in range."""
    name = model.lower()
    for pattern, buckets in ((_BILLIONS, _TOGETHER_CHAT_BUCKETS), (_MILLIONS, _TOGETHER_EMBEDDING_BUCKETS)):
        match = pattern.search(name)
        if match is not None:
            size = int(match[1])
            return next((bucket for limit, bucket in buckets if size <= limit), None)
    return None


def _decimal_or_zero(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(0)


def _size(value: object) -> str:
    return value if isinstance(value, str) and value in SEARCH_CONTEXT_SIZES else ""
