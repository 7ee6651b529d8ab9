"""The reservation bound is memoized per deployment (gateway.proxy.service._deployment_worst_cost): a memo hit must
give the bound compute_cost gives for that call, never one priced for a shorter body or a smaller ask, which on a
tiered price would reserve less than the call can be charged."""

from decimal import Decimal
from types import SimpleNamespace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.providers import get_provider
from gateway.providers.base import Target
from gateway.proxy.registry import RoutedDeployment
from gateway.proxy.service import Call, worst_case_cost
from pricing.calculator import Usage, compute_cost
from pricing.resolve import ResolvedPrice

D = Decimal
# Alibaba-style all-or-nothing tiers: a prompt above 1,000 tokens bills every token at the dearer row.
TIERED = {
    "litellm_provider": "dashscope",
    "mode": "chat",
    "output_cost_per_token": D("0.000002"),
    "tiered_pricing": [
        {"range": [0, 1000], "input_cost_per_token": D("0.000001"), "output_cost_per_token": D("0.000002")},
        {"range": [1000, 1000000], "input_cost_per_token": D("0.000005"), "output_cost_per_token": D("0.00002")},
    ],
}


def deployment(entry) -> RoutedDeployment:
    return RoutedDeployment(
        model_id="m1",
        model_name="tiered",
        litellm_model="dashscope/qwen-plus",
        provider=get_provider("openai"),
        target=Target(provider="openai", model="qwen-plus", api_base="", api_key="", api_version=None, extra={}),
        public_api_base="",
        timeout=None,
        rpm=None,
        tpm=None,
        weight=None,
        price=ResolvedPrice(entry=entry, source="custom", matched="", version="v1"),
        max_output_tokens=None,
    )


def state_of(routed: RoutedDeployment):
    config = SimpleNamespace(fallbacks={}, timeout=600.0)
    return SimpleNamespace(table=SimpleNamespace(config=config, group=lambda name: (routed,)))


def chat_call(text: str, max_tokens: int) -> Call:
    call = Call("chat", 0.0, None)
    call.payload = {"model": "tiered", "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    call.body_size = len(orjson.dumps(call.payload))
    call.group = "tiered"
    return call


def test_a_memoized_bound_is_never_below_the_charge_of_a_longer_body_on_tiered_prices():
    routed = deployment(TIERED)
    state = state_of(routed)
    short = worst_case_cost(state, chat_call("hi", 100))  # fills the memo below the tier boundary
    call = chat_call("x" * 5000, 100)
    charged = compute_cost(TIERED, Usage(prompt_tokens=call.body_size, completion_tokens=100)).total
    assert short < charged
    assert worst_case_cost(state, call) >= charged


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 4000)), min_size=1, max_size=12))
def test_the_memoized_bound_is_exactly_the_computed_one_for_any_sequence_of_calls(calls):
    routed = deployment(TIERED)
    state = state_of(routed)
    for length, max_tokens in calls:
        call = chat_call("y" * length, max_tokens)
        usage = Usage(prompt_tokens=call.prompt_bound.tokens(), completion_tokens=max_tokens)
        assert worst_case_cost(state, call) == compute_cost(TIERED, usage, D("600.0")).total
