"""Fixtures the live-server tests share; each module defines its own `server` (its config and upstreams)."""

import pytest


@pytest.fixture(scope="module")
def key(server) -> dict:
    """A virtual key on the module's server, with no limits: its /key/generate answer (`key`, `token`, ...)."""
    response = server.api("POST", "/key/generate", json={"key_alias": "e2e"})
    assert response.status_code == 200, response.text
    return response.json()
