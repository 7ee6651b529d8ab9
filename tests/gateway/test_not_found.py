"""Unknown paths answer OpenAI's error shape (404 not_found_error) from the one error mapper; the admin keeps Django's
HTML 404 page."""

import orjson
import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/team/member_nonsense"), ("post", "/global/spend/nothing"), ("get", "/v1/nope"), ("delete", "/")],
)
def test_unknown_paths_answer_json(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert orjson.loads(response.content) == {
        "error": {
            "message": f"No endpoint {method.upper()} {path}",
            "type": "not_found_error",
            "param": None,
            "code": "not_found",
        }
    }


def test_the_admin_keeps_its_html_page(admin_client):
    response = admin_client.get("/admin/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
