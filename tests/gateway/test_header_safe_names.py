"""Names and ids that end up in response headers: a control character in one is refused where deployments are
made, and one already stored (older data, a row written by hand) still gets an answer, not a 500 after the
upstream was paid."""

import re
from decimal import Decimal

import orjson
import pytest
from django.test import AsyncClient

from gateway.admin import DeploymentForm
from gateway.config_import import ConfigError, parse_config
from gateway.models import Deployment
from spend.models import SpendLog
from tests.e2e.server import MASTER_KEY

MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}
# What uvicorn refuses to send in a header value (uvicorn.protocols.http.httptools_impl.HEADER_VALUE_RE).
UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
BAD_NAME = "evil\r\nx-injected: yes\x01"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_stored_name_with_control_characters_is_answered_with_safe_headers_and_charged_once(stream):
    await Deployment.objects.acreate(
        model_id="id\r\nx-injected: yes",
        model_name=BAD_NAME,
        litellm_model="mock/demo",
        input_cost_per_token=Decimal("0.000001"),
        output_cost_per_token=Decimal("0.000002"),
    )
    body = {"model": BAD_NAME, "messages": [{"role": "user", "content": "hi"}], "stream": stream}

    response = await AsyncClient().post("/v1/chat/completions", orjson.dumps(body), "application/json", headers=MASTER)

    assert response.status_code == 200
    if stream:
        assert b"[DONE]" in b"".join([part async for part in response.streaming_content])
    assert response["x-litellm-model-group"] == "evil%0D%0Ax-injected: yes%01"
    assert response["x-litellm-model-id"] == "id%0D%0Ax-injected: yes"
    assert "x-injected" not in response.headers
    assert [name for name, value in response.headers.items() if UNSENDABLE.search(value)] == []
    assert await SpendLog.objects.acount() == 1


MODEL = {"model": "openai/gpt-4o"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "entry", "param"),
    [
        ("/model/new", {"model_name": "a\r\nb", "litellm_params": MODEL}, "model_name"),
        ("/model/new", {"model_name": "a\tb", "litellm_params": MODEL}, "model_name"),
        ("/model/new", {"model_name": "a", "litellm_params": MODEL, "model_info": {"id": "x\ny"}}, "model_info.id"),
        ("/model/update", {"model_name": "a\rb", "model_info": {"id": "ok-1"}}, "model_name"),
    ],
)
def test_model_api_refuses_names_and_ids_with_control_characters(client, master_headers, path, entry, param):
    client.post(
        "/model/new",
        {"model_name": "a", "litellm_params": MODEL, "model_info": {"id": "ok-1"}},
        content_type="application/json",
        **master_headers,
    )

    response = client.post(path, entry, content_type="application/json", **master_headers)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert list(Deployment.objects.values_list("model_name", "model_id")) == [("a", "ok-1")]


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ('  - model_name: "a\\r\\nb"\n    litellm_params:\n      model: openai/x\n', "model_list[0].model_name"),
        (
            '  - model_name: a\n    litellm_params:\n      model: openai/x\n    model_info:\n      id: "i\\x7f"\n',
            "model_list[0].model_info.id",
        ),
    ],
)
def test_config_import_refuses_names_and_ids_with_control_characters(entry, field):
    with pytest.raises(ConfigError) as raised:
        parse_config("model_list:\n" + entry)

    assert raised.value.field == field
    assert "control character" in str(raised.value)


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["model_name", "model_id"])
def test_admin_form_refuses_names_and_ids_with_control_characters(field):
    data = {"model_name": "a", "model_id": "admin-1", "litellm_model": "openai/gpt-4o", "source": "admin"}
    data.update(extra_params="{}", model_info="{}", extra_pricing="{}", enabled="on", **{field: "a\r\nb"})

    form = DeploymentForm(data=data)

    assert not form.is_valid()
    assert list(form.errors) == [field]
