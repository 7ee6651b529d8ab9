"""The model management API in-process: what a live server cannot provoke on demand."""

import pytest
from django.db.models import QuerySet

from gateway.models import Deployment

pytestmark = pytest.mark.django_db

ENTRY = {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {"id": "dup-1"}}


def test_two_model_new_racing_for_one_id_get_a_400_not_a_500(client, master_headers, monkeypatch):
    assert client.post("/model/new", ENTRY, content_type="application/json", **master_headers).status_code == 200
    # The other request checked before this one inserted: its check finds nothing, its insert hits the unique id.
    monkeypatch.setattr(QuerySet, "exists", lambda self: False)

    racing = client.post("/model/new", ENTRY, content_type="application/json", **master_headers)

    assert racing.status_code == 400
    assert racing.json()["error"]["param"] == "model_info.id"
    assert Deployment.objects.filter(model_id="dup-1").count() == 1
