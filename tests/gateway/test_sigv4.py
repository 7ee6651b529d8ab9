"""SigV4 and the event-stream framing that SageMaker and Bedrock share (gateway.providers.aws), against AWS's own
published test vectors (tests/gateway/sigv4_vectors.json says where they come from). No Django needed."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.providers import get_provider
from gateway.providers.aws import Credentials, EventStreamDecoder, canonical_request, sign_v4, string_to_sign
from gateway.providers.base import ProviderError, Target
from tests.fakes.upstream import event_stream_message

SUITE = json.loads((Path(__file__).parent / "sigv4_vectors.json").read_text(encoding="utf-8"))
SUITE_KEYS = SUITE["credentials"]
SIGNED_AT = datetime.strptime(SUITE_KEYS["date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
SESSION_TOKEN_HEADER = "X-Amz-Security-Token"


def _request(vector: dict) -> tuple[str, dict[str, str], str | None]:
    """The vector's URL, its headers (a name given twice joined with commas, in order), and its session token."""
    headers: dict[str, str] = {}
    for name, value in vector["headers"]:
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    token = headers.pop(SESSION_TOKEN_HEADER, None)
    return f"https://{SUITE_KEYS['host']}{vector['target']}", headers, token


@pytest.mark.parametrize("vector", SUITE["vectors"], ids=[vector["name"] for vector in SUITE["vectors"]])
def test_signature_matches_the_aws_test_suite(vector):
    url, headers, token = _request(vector)
    credentials = Credentials(SUITE_KEYS["access_key"], SUITE_KEYS["secret_key"], token, SUITE_KEYS["region"])

    signed = sign_v4(
        vector["method"],
        url,
        headers,
        vector["body"].encode(),
        credentials=credentials,
        service=SUITE_KEYS["service"],
        now=SIGNED_AT,
    )

    assert signed["Authorization"] == vector["authz"]
    assert signed["X-Amz-Date"] == SUITE_KEYS["date"]
    assert signed.get(SESSION_TOKEN_HEADER) == token
    canonical, _names = canonical_request(
        vector["method"], url, {k: v for k, v in signed.items() if k != "Authorization"}, vector["body"].encode()
    )
    if vector["creq"] is not None:
        assert canonical == vector["creq"]
    scope = f"{SUITE_KEYS['date'][:8]}/{SUITE_KEYS['region']}/{SUITE_KEYS['service']}/aws4_request"
    if vector["sts"] is not None:
        assert string_to_sign(SUITE_KEYS["date"], scope, canonical) == vector["sts"]


def test_signature_matches_the_signing_guide_example():
    """The IAM ListUsers example of AWS's SigV4 guide: a real service, a query string, a content type."""
    credentials = Credentials(SUITE_KEYS["access_key"], SUITE_KEYS["secret_key"], None, "us-east-1")

    signed = sign_v4(
        "GET",
        "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        b"",
        credentials=credentials,
        service="iam",
        now=SIGNED_AT,
    )

    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


AWS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret", "aws_region_name": "eu-west-1"}


@pytest.mark.parametrize(
    ("provider", "model", "scope"),
    [
        ("sagemaker", "ep", "/eu-west-1/sagemaker/aws4_request"),
        ("bedrock", "amazon.nova-lite-v1:0", "/eu-west-1/bedrock/aws4_request"),
    ],
)
def test_providers_sign_temporary_credentials(provider, model, scope):
    deployment = Target(provider=provider, model=model, extra={**AWS, "aws_session_token": "tok"})
    payload = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}

    headers = get_provider(provider).build_request(deployment, "chat", payload, False).headers

    assert headers[SESSION_TOKEN_HEADER] == "tok"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert f"{scope}, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in headers["Authorization"]


# --- event streams --------------------------------------------------------------------------------------------

FRAMES = [
    event_stream_message(b'{"role":"assistant"}', {":event-type": "messageStart", ":message-type": "event"}),
    event_stream_message(b"", {":event-type": "empty", ":message-type": "event"}),
    event_stream_message(b'{"stopReason":"end_turn"}', {":event-type": "messageStop", ":message-type": "event"}),
]


@pytest.mark.parametrize("cut", [1, 7, 13, 50, 1000])
def test_event_stream_messages_survive_any_cut(cut):
    data = b"".join(FRAMES)
    decoder = EventStreamDecoder("bedrock")

    messages = []
    for start in range(0, len(data), cut):
        messages += decoder.feed(data[start : start + cut])

    assert [(headers[":event-type"], payload) for headers, payload in messages] == [
        ("messageStart", b'{"role":"assistant"}'),
        ("empty", b""),
        ("messageStop", b'{"stopReason":"end_turn"}'),
    ]


@pytest.mark.parametrize("flipped", [5, -2], ids=["prelude", "message"])
def test_event_stream_refuses_a_frame_whose_crc_does_not_match(flipped):
    frame = bytearray(FRAMES[0])
    frame[flipped] ^= 0xFF

    with pytest.raises(ProviderError) as error:
        EventStreamDecoder("bedrock").feed(bytes(frame))

    assert (error.value.status, error.value.message) == (502, "bedrock: corrupt event-stream frame")
