"""The management API refuses JSON nested past any use (400 in the OpenAI shape) and stores nothing of it."""

import json

import pytest

from gateway.models import Deployment
from keys.models import InternalUser, KeyChange, Team, VirtualKey

pytestmark = pytest.mark.django_db

MAX_DEPTH = 64


def nested(levels: int) -> str:
    """A JSON object `levels` containers deep, {"a": {"a": ... {} ...}}, as text (json.dumps would recurse)."""
    return '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)


# Every management endpoint that reads a JSON body, with a body otherwise valid; DEEP marks where the nesting goes.
JSON_ENDPOINTS = [
    ("/key/generate", '{"metadata": DEEP}'),
    ("/key/update", '{"key": "sk-none", "metadata": DEEP}'),
    ("/key/delete", '{"keys": [DEEP]}'),
    ("/team/new", '{"team_alias": "x", "metadata": DEEP}'),
    ("/team/update", '{"team_id": "x", "metadata": DEEP}'),
    ("/user/new", '{"user_id": "x", "metadata": DEEP}'),
    ("/model/new", '{"model_name": "m", "litellm_params": {"model": "mock/m"}, "model_info": DEEP}'),
    ("/spend/calculate", '{"model": "gpt-4o", "usage": DEEP}'),
]


def _post(client, master_headers, path: str, body: str, content_type="application/json"):
    return client.post(path, body.encode(), content_type=content_type, **master_headers)


def _nothing_stored() -> bool:
    return not any(model.objects.exists() for model in (VirtualKey, Team, InternalUser, KeyChange, Deployment))


def _assert_too_deep(response) -> None:
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "too_deeply_nested")
    assert f"nested more than {MAX_DEPTH} levels" in error["message"]


@pytest.mark.parametrize("levels", [MAX_DEPTH, 5000])  # the whole body one level more than allowed, and far more
@pytest.mark.parametrize(("path", "template"), JSON_ENDPOINTS)
def test_deeply_nested_bodies_are_refused_and_change_nothing(client, master_headers, path, template, levels):
    body = template.replace("DEEP", nested(levels))  # the body's own object is one level more

    response = _post(client, master_headers, path, body)  # 5000 levels was a 500 (RecursionError)

    _assert_too_deep(response)
    assert _nothing_stored()


def test_curl_d_bodies_are_held_to_the_same_depth(client, master_headers):
    body = '{"metadata": DEEP}'.replace("DEEP", nested(5000))

    response = _post(client, master_headers, "/key/generate", body, "application/x-www-form-urlencoded")

    _assert_too_deep(response)
    assert _nothing_stored()


@pytest.mark.parametrize("body", ["[" * 65 + "]" * 65, '{"a": [' * 40 + "1" + "]}" * 40])
def test_lists_count_as_levels_like_objects(client, master_headers, body):
    _assert_too_deep(_post(client, master_headers, "/key/generate", body))


def test_metadata_as_deep_as_allowed_is_kept(client, master_headers):
    metadata = nested(MAX_DEPTH - 1)  # the body's own object is the 64th level

    response = _post(client, master_headers, "/key/generate", f'{{"metadata": {metadata}}}')

    assert response.status_code == 200, response.content[:300]
    assert VirtualKey.objects.get().metadata == json.loads(metadata)
