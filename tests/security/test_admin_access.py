"""The admin takes staff logins only: a virtual key (or the master key) in a header opens none of its pages."""

import pytest

from tests.e2e.server import MASTER_KEY
from tests.keys.factories import make_key

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/keys/virtualkey/", "/admin/spend/spendlog/", "/admin/gateway/deployment/"]
)
@pytest.mark.parametrize("who", ["virtual key", "master key"])
def test_a_bearer_key_opens_no_admin_page(client, path, who):
    key = make_key()[0] if who == "virtual key" else MASTER_KEY

    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
