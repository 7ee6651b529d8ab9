"""Upstream faults against a live server, with the openai SDK as the client and the ledger read after each call.

Every fault ends one of two ways: retries (or a fallback) make the call succeed, and the upstream saw each attempt;
or the client gets an OpenAI-shaped error whose status says what happened: 429 when the upstream kept rate
limiting (with its retry-after), 502 for a bad or broken answer, 503 when no connection could be made, 504 when
the upstream took too long. A stream that already started cannot change its status: it ends with an error event
instead of `[DONE]`, which the SDK raises as an APIError.

Either way the call has exactly one spend log: a failure costs 0 and counts its attempts; a stream cut mid-way is
charged for its prompt and for the words relayed before the cut (estimated at 4 characters a token when the
upstream never reported its usage). And the key's spend is the sum of its logs.
"""

import uuid
from decimal import Decimal

import openai
import orjson
import pytest

from tests.e2e.server import GatewayServer, free_port
from tests.fakes.upstream import Behaviour, FakeUpstream
from tests.polling import wait_until

pytestmark = pytest.mark.live

INPUT, OUTPUT = Decimal("0.000001"), Decimal("0.000002")

CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-upstream-faults-secret-7, timeout: 1}}
    model_info: {{id: openai-1, input_cost_per_token: {input}, output_cost_per_token: {output}}}
  - model_name: llama3.2
    litellm_params: {{model: ollama_chat/llama3.2, api_base: "{up}", timeout: 1}}
    model_info: {{id: ollama-1, input_cost_per_token: {input}, output_cost_per_token: {output}}}
  - model_name: refused
    litellm_params: {{model: openai/gpt-4o, api_base: "http://127.0.0.1:{dead}/v1", api_key: sk-x}}
    model_info: {{id: refused-1}}
  - model_name: dead-primary
    litellm_params: {{model: openai/gpt-4o, api_base: "http://127.0.0.1:{dead}/v1", api_key: sk-x}}
    model_info: {{id: dead-1}}
router_settings:
  num_retries: 2
  cooldown_time: 0
  fallbacks: [{{"dead-primary": ["gpt-4o"]}}]
"""

REPLY = "Hello from the fake upstream!"


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(reply=REPLY, prompt_tokens=12, completion_tokens=7) as up:
        yield up


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    config = CONFIG.format(up=upstream.url, dead=free_port(), input=INPUT, output=OUTPUT)
    with GatewayServer(tmp_path_factory.mktemp("faults"), config) as live:
        yield live


@pytest.fixture
def up(upstream):
    upstream.reset()
    return upstream


@pytest.fixture
def client(server, key):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key["key"], max_retries=0, timeout=20) as sdk:
        yield sdk


class Call:
    """One call, tagged so that its spend log can be found whatever it returned."""

    def __init__(self, client: openai.OpenAI, model: str = "gpt-4o", stream: bool = False):
        self.client = client
        self.model = model
        self.stream = stream
        self.tag = uuid.uuid4().hex
        self.text = ""  # what the client received

    def run(self):
        """The raw response of a whole answer, or the text of a stream read to its end."""
        arguments = {"model": self.model, "messages": [{"role": "user", "content": "Hello"}]}
        if not self.stream:
            return self.client.chat.completions.with_raw_response.create(**arguments, metadata={"tag": self.tag})
        for chunk in self.client.chat.completions.create(**arguments, stream=True, metadata={"tag": self.tag}):
            self.text += "".join(choice.delta.content or "" for choice in chunk.choices)
        return self.text

    def log(self, server: GatewayServer, key: dict) -> dict:
        """The call's one spend log, once committed (a stream cut by its client is charged in the background)."""
        columns = "status, error_class, attempts, prompt_tokens, completion_tokens, cost, deployment_id, metadata"

        def logged() -> list[dict]:
            rows = [
                dict(zip(columns.split(", "), row, strict=True))
                for row in server.query(f"SELECT {columns} FROM spend_spendlog WHERE key_hash = %s", key["token"])
            ]
            return [row for row in rows if _json(row.pop("metadata")).get("tag") == self.tag]

        mine = wait_until(logged, "the call's spend log")
        assert len(mine) == 1, mine
        log = mine[0]
        log["cost"] = Decimal(str(log["cost"]))
        assert log["cost"] == log["prompt_tokens"] * INPUT + log["completion_tokens"] * OUTPUT
        assert_key_spend_is_the_sum_of_its_logs(server, key)
        return log


def _json(value) -> dict:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def assert_key_spend_is_the_sum_of_its_logs(server: GatewayServer, key: dict) -> None:
    logs = server.query("SELECT cost FROM spend_spendlog WHERE key_hash = %s", key["token"])
    [(spend,)] = server.query("SELECT spend FROM keys_virtualkey WHERE token_hash = %s", key["token"])
    assert Decimal(str(spend)) == sum((Decimal(str(cost)) for (cost,) in logs), Decimal(0))


def failed_call(call: Call, exception=openai.APIStatusError) -> openai.APIError:
    with pytest.raises(exception) as raised:
        call.run()
    return raised.value


SERVED = 12 * INPUT + 7 * OUTPUT  # the fake's usage, at the deployment's prices

# --- faults before an answer: retried, then served or refused ---------------------------------------------------

# (fault, status, code, whether a stream meets it before its answer starts: then it is retried like a whole answer)
FAULTS = [
    ("500", Behaviour(status=500), 502, "upstream_error", True),
    ("503", Behaviour(status=503), 502, "upstream_error", True),
    ("reset-before-answering", Behaviour(drop="before"), 502, "upstream_error", True),
    ("reset-mid-response", Behaviour(drop="mid_stream"), 502, "upstream_error", False),
    ("malformed-json", Behaviour(malformed=True), 502, "upstream_error", False),
    ("slow-first-byte", Behaviour(first_byte_delay=1.5), 504, "upstream_timeout", True),
]


@pytest.mark.parametrize("fault", [pytest.param(fault, id=name) for name, fault, *_ in FAULTS])
def test_a_fault_that_passes_is_retried_and_served(server, key, client, up, fault):
    up.script(fault, fault)
    call = Call(client)

    raw = call.run()

    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers["x-litellm-attempted-retries"] == "2"
    assert len(up.requests) == 3
    log = call.log(server, key)
    assert (log["status"], log["attempts"], log["cost"]) == ("success", 3, SERVED)


@pytest.mark.parametrize(
    ("fault", "status", "code", "stream"),
    [
        pytest.param(fault, status, code, stream, id=f"{name}-{'stream' if stream else 'whole'}")
        for name, fault, status, code, streams_too in FAULTS
        for stream in ((False, True) if streams_too else (False,))
    ],
)
def test_a_fault_that_lasts_is_an_error_with_its_status_and_costs_nothing(
    server, key, client, up, fault, status, code, stream
):
    up.behaviour = fault
    call = Call(client, stream=stream)

    error = failed_call(call)

    assert (error.status_code, error.body["code"], error.body["type"]) == (status, code, "api_error")
    assert set(error.body) == {"message", "type", "param", "code"}
    assert error.response.headers["x-litellm-attempted-retries"] == "2"
    assert "sk-upstream" not in error.response.text
    assert len(up.requests) == 3
    log = call.log(server, key)
    assert (log["status"], log["error_class"], log["attempts"], log["cost"]) == ("failure", "UpstreamFailed", 3, 0)
    assert log["deployment_id"] == "openai-1"  # the deployment that failed last


def test_connection_refused_is_503_after_every_attempt(server, key, client):
    call = Call(client, model="refused")

    error = failed_call(call, openai.InternalServerError)

    assert (error.status_code, error.body["code"]) == (503, "upstream_unavailable")
    assert "could not be made" in error.message
    log = call.log(server, key)
    assert (log["status"], log["attempts"], log["cost"], log["deployment_id"]) == ("failure", 3, 0, "refused-1")


def test_connection_refused_falls_back_to_the_next_group(server, key, client, up):
    call = Call(client, model="dead-primary")

    raw = call.run()

    assert raw.headers["x-litellm-attempted-fallbacks"] == "1"
    assert raw.headers["x-litellm-model-group"] == "dead-primary"
    assert raw.headers["x-litellm-model-id"] == "openai-1"
    assert len(up.requests) == 1
    log = call.log(server, key)
    assert (log["status"], log["attempts"], log["deployment_id"], log["cost"]) == ("success", 4, "openai-1", SERVED)


def test_429_waits_its_retry_after_then_serves(server, key, client, up):
    up.script(Behaviour(status=429, retry_after="1"))
    call = Call(client)

    raw = call.run()

    assert raw.headers["x-litellm-attempted-retries"] == "1"
    assert len(up.requests) == 2
    log = call.log(server, key)
    assert (log["status"], log["attempts"], log["cost"]) == ("success", 2, SERVED)


def test_429_that_lasts_is_passed_on_with_its_retry_after(server, key, client, up):
    up.behaviour = Behaviour(status=429, retry_after="1", message="Rate limit reached for gpt-4o")
    call = Call(client)

    error = failed_call(call, openai.RateLimitError)

    assert (error.status_code, error.body["type"], error.body["code"]) == (429, "rate_limit_error", "upstream_429")
    assert "Rate limit reached for gpt-4o" in error.message
    assert error.response.headers["retry-after"] == "1"
    assert len(up.requests) == 3
    log = call.log(server, key)
    assert (log["status"], log["error_class"], log["attempts"], log["cost"]) == ("failure", "UpstreamRejected", 3, 0)


# --- faults once a stream is under way: an error event, and a charge for what was relayed ------------------------


@pytest.mark.parametrize(
    ("model", "fault", "code", "error_class"),
    [
        pytest.param(
            "gpt-4o",
            Behaviour(chunk_delay=0.02, drop="mid_stream"),
            "upstream_stream_error",
            "ReadError",
            id="disconnect-mid-stream",
        ),
        pytest.param(
            "gpt-4o",
            Behaviour(chunk_delay=0.02, malformed=True),
            "upstream_stream_error",
            "ProviderError",
            id="malformed-frame",
        ),
        pytest.param(
            "gpt-4o", Behaviour(chunk_delay=1.5), "upstream_timeout", "ReadTimeout", id="first-frame-after-timeout"
        ),
        pytest.param(
            "llama3.2",
            Behaviour(stream_end="missing"),
            "upstream_stream_incomplete",
            "IncompleteStream",
            id="ends-before-the-answer",
        ),
    ],
)
def test_a_stream_cut_by_the_upstream_ends_in_an_error_and_is_charged_for_what_was_relayed(
    server, key, client, up, model, fault, code, error_class
):
    up.script(fault)
    call = Call(client, model=model, stream=True)

    error = failed_call(call, openai.APIError)

    assert (error.body["code"], error.body["type"]) == (code, "api_error")
    assert REPLY.startswith(call.text)
    log = call.log(server, key)
    assert (log["status"], log["error_class"], log["attempts"]) == ("failure", error_class, 1)
    # The upstream answered 200, so it took the prompt (estimated: it never said); the words are those relayed.
    assert log["prompt_tokens"] > 0
    assert log["completion_tokens"] == (len(call.text) + 3) // 4


def test_a_stream_that_hangs_after_its_answer_is_cut_at_the_timeout_and_charged_its_usage(server, key, client, up):
    up.script(Behaviour(stream_end="hang"))
    call = Call(client, stream=True)

    error = failed_call(call, openai.APIError)

    assert error.body["code"] == "upstream_timeout"
    assert call.text == REPLY
    up.wait_for_idle()  # the gateway closed the hanging stream
    log = call.log(server, key)
    assert (log["status"], log["error_class"], log["cost"]) == ("failure", "ReadTimeout", SERVED)


def test_a_stream_without_done_whose_answer_finished_is_served(server, key, client, up):
    up.script(Behaviour(stream_end="missing"))
    call = Call(client, stream=True)

    assert call.run() == REPLY

    log = call.log(server, key)
    assert (log["status"], log["prompt_tokens"], log["completion_tokens"], log["cost"]) == ("success", 12, 7, SERVED)
