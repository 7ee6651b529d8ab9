"""Spend log rows sized to what they prove: the price entry charged stored once and named, metadata bounded."""

import io
from decimal import Decimal

import orjson
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateway.models import Deployment
from spend.ledger import write_batch
from spend.log_rows import TRUNCATED, forget_written_prices, price_digest
from spend.models import ChargedPrice, SpendLog
from tests.spend.conftest import charged_entry, make_entry

pytestmark = pytest.mark.django_db
GPT4O = {
    "input_cost_per_token": "0.0000025",
    "output_cost_per_token": "0.00001",
    "cache_read_input_token_cost": "1.25E-6",
}
TINY = {"input_cost_per_token": "1.3E-10", "output_cost_per_token": "0"}


def test_one_price_entry_row_per_distinct_price_across_many_calls():
    write_batch([make_entry(prices=GPT4O if n % 3 else TINY) for n in range(30)])
    write_batch([make_entry(prices=dict(reversed(GPT4O.items()))) for _ in range(10)])  # the same entry, reordered
    forget_written_prices()  # as another process would, that never wrote them
    write_batch([make_entry(prices=TINY), make_entry(prices={})])

    assert sorted(ChargedPrice.objects.values_list("entry", flat=True), key=len) == [TINY, GPT4O]
    assert SpendLog.objects.filter(charged_price=price_digest(GPT4O)).count() == 30
    assert SpendLog.objects.filter(charged_price=None).count() == 1  # unpriced: no entry


def test_a_logs_prices_read_back_exactly():
    prices = {"input_cost_per_token": "1.3E-10", "output_cost_per_token": "0.00000000000000000001", "per_second": "0"}
    write_batch([make_entry(request_id="exact", prices=prices), make_entry(request_id="unpriced")])

    logs = {log.request_id: log for log in SpendLog.objects.select_related("charged_price")}
    assert logs["exact"].prices == prices
    assert all(isinstance(text, str) for text in logs["exact"].prices.values())
    assert logs["unpriced"].prices == {}


@pytest.mark.parametrize(("logged_input_price", "adjustments"), [("0.00003", 0), ("0.00002", 1)])
def test_reprice_reads_the_price_a_call_was_charged_at(payers, logged_input_price, adjustments):
    """A call logged at today's price keeps its charge (even one that pricing again would round otherwise); a call
    logged at another price is priced again."""
    deployment = Deployment.objects.create(
        model_name="prod-gpt4", litellm_model="openai/gpt-4",
        input_cost_per_token=Decimal("0.00003"), output_cost_per_token=Decimal("0.00006"),
    )  # fmt: skip
    prices = {"input_cost_per_token": logged_input_price, "output_cost_per_token": "0.00006"}
    write_batch([charged_entry(payers[0], deployment_id=deployment.model_id, prompt_tokens=1000, completion_tokens=0,
                               cost=Decimal("0.029"), prices=prices, pricing_source="custom")])  # fmt: skip
    out = io.StringIO()
    call_command("reprice", "--since", "2026-03-01", stdout=out)

    assert f"{adjustments} calls would get an adjustment" in out.getvalue()


# LiteLLM's SpendLogs fields, and Tollgate's own: what /spend/logs answered before prices were referenced.
SPEND_LOG_FIELDS = {
    "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
    "cached_tokens", "cache_creation_tokens", "reasoning_tokens", "startTime", "endTime", "model", "model_group",
    "model_id", "custom_llm_provider", "api_base", "user", "team_id", "end_user", "status", "error_class", "attempts",
    "pricing_source", "price_version", "cost_breakdown", "metadata", "request_tags",
}  # fmt: skip


def test_spend_logs_answer_keeps_its_shape(api):
    write_batch([make_entry(request_id="shape", prices=GPT4O, cost_breakdown={"input": "0.1"}, metadata={"a": 1})])

    [log] = orjson.loads(api.get("/spend/logs", {"request_id": "shape"}).content)
    assert set(log) == SPEND_LOG_FIELDS
    assert (log["cost_breakdown"], log["metadata"]) == ({"input": "0.1"}, {"a": 1})


@pytest.mark.django_db(transaction=True)
def test_a_batch_costs_the_same_queries_whatever_its_calls_and_a_known_price_none(payers):
    """PostgreSQL: one round trip, new prices or not. SQLite: one query more for a batch naming a price this process
    has not written, never one per call."""

    def queries(calls: int, prices: dict) -> int:
        with CaptureQueriesContext(connection) as captured:
            write_batch([charged_entry(payers[0], cost=Decimal("0.1"), prices=prices) for _ in range(calls)])
        return len(captured)

    first_price = queries(1, GPT4O)
    assert queries(20, TINY) == first_price  # 20 calls, a new price: as many queries as one call
    assert queries(20, GPT4O) == queries(1, GPT4O) == first_price - (connection.vendor != "postgresql")
    if connection.vendor == "postgresql":
        assert first_price == 1
    assert ChargedPrice.objects.count() == 2


@pytest.mark.parametrize("limit", [256, 2048])
def test_metadata_past_the_cap_is_cut_the_same_way_every_time_saying_so(settings, limit):
    settings.TOLLGATE_SPEND_LOG_METADATA_BYTES = limit
    small = {"tags": ["nightly"], "trace_id": "t-1"}
    large = {"trace_id": "t-2", "user_api_key_alias": "prod", **{f"field_{n}": "x" * 100 for n in range(40)}}
    write_batch([
        make_entry(request_id="small", metadata=small),
        make_entry(request_id="large", metadata=large, request_tags=["nightly"], end_user="customer-1"),
        make_entry(request_id="again", metadata=large),
    ])  # fmt: skip

    logs = {log.request_id: log for log in SpendLog.objects.all()}
    assert logs["small"].metadata == small
    cut = logs["large"].metadata
    assert len(orjson.dumps(cut)) <= limit
    kept = {key for key in cut if key != TRUNCATED}  # the first keys that fit (PostgreSQL's jsonb orders its own)
    assert kept == set(list(large)[: len(kept)]) and len(kept) >= 2
    assert all(cut[key] == large[key] for key in kept)
    assert cut[TRUNCATED] == (
        f"metadata of {len(orjson.dumps(large))} bytes cut to {limit}: {len(large)} keys, "
        f"the last {len(large) - len(kept)} dropped"
    )
    assert logs["again"].metadata == cut
    assert (logs["large"].request_tags, logs["large"].end_user) == (["nightly"], "customer-1")
