"""One error vocabulary: every domain error answers with the same status, type and code on the proxy and on the
management API, DRF's own exceptions take the same type for the same status, and nothing unexpected leaks.

Each error is raised where a real request meets it first, authentication: the proxy's (gateway.proxy.service) and the
management API's (its failed-auth throttle check), so the responses are the ones the two handlers really give.
"""

import inspect

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from rest_framework import exceptions as drf

import gateway.proxy.errors as proxy_errors
import keys.errors as key_errors
import keys.services as key_services
import keys.throttle as throttle
import pricing.errors as pricing_errors
import spend.ledger as ledger
from gateway.proxy import service
from keys.api import authentication
from tests.e2e.server import MASTER_KEY
from tests.keys.factories import make_key

VOCABULARY = [pricing_errors, key_errors, key_services, throttle, ledger, proxy_errors]

# (error, status, type, code): what a client is told.
DOMAIN_ERRORS = [
    (pricing_errors.TollgateError("Refused."), 400, "invalid_request_error", None),
    (pricing_errors.UnpricedModelBlocked("demo"), 400, "invalid_request_error", "unpriced_model"),
    (key_errors.KeyRefusal("Refused."), 400, "invalid_request_error", "invalid_request"),
    (key_errors.AuthenticationFailed("No such key."), 401, "auth_error", "invalid_api_key"),
    (key_errors.AccessDenied("Not this model."), 403, "auth_error", "key_model_access_denied"),
    (key_errors.CustomerBlocked("Customer blocked."), 403, "auth_error", "customer_blocked"),
    (key_errors.MissingParam("No user.", param="user"), 400, "invalid_request_error", "missing_param"),
    (key_errors.BudgetExceeded("Spent."), 400, "budget_exceeded", "budget_exceeded"),
    (
        key_errors.RateLimited("Slow down.", headers={"retry-after": "3"}),
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    ),
    (key_errors.BudgetsUnavailable("No database."), 503, "api_error", "budgets_unavailable"),
    (throttle.AuthThrottled(7), 429, "rate_limit_error", "too_many_failed_auth"),
    (key_services.Conflict("Key in use.", param="key"), 400, "invalid_request_error", "invalid_value"),
    (key_services.NotFound("Key not found: sk-...abcd", param="key"), 404, "not_found_error", "not_found"),
    (ledger.LedgerUnavailable("The ledger is down."), 503, "api_error", "ledger_unavailable"),
    (proxy_errors.ProxyError("Refused."), 400, "invalid_request_error", None),
    (
        proxy_errors.BadRequest("No model.", param="model", code="model_not_found"),
        400,
        "invalid_request_error",
        "model_not_found",
    ),
    (proxy_errors.Forbidden("Master key only."), 403, "auth_error", "forbidden"),
    (proxy_errors.PayloadTooLarge("Too big."), 413, "invalid_request_error", "request_too_large"),
    (proxy_errors.NotFound("Nothing here."), 404, "not_found_error", "not_found"),
    (
        proxy_errors.UpstreamFailed("Timed out.", status=504, code="upstream_timeout"),
        504,
        "api_error",
        "upstream_timeout",
    ),
    (proxy_errors.UpstreamRejected("Slow down.", status=429), 429, "rate_limit_error", "upstream_429"),
    (proxy_errors.InternalError(), 500, "api_error", "internal_error"),
]

# DRF's own exceptions, as the management API's views raise them: the same type as a domain error of their status.
DRF_ERRORS = [
    (drf.ValidationError({"max_budget": ["Must be positive."]}), 400, "invalid_request_error"),
    (drf.ParseError(), 400, "invalid_request_error"),
    (drf.AuthenticationFailed(), 401, "auth_error"),
    (drf.NotAuthenticated(), 401, "auth_error"),
    (drf.PermissionDenied(), 403, "auth_error"),
    (drf.NotFound(), 404, "not_found_error"),
    (drf.MethodNotAllowed("PUT"), 405, "invalid_request_error"),
    (drf.Throttled(wait=5), 429, "rate_limit_error"),
]


def _ids(cases) -> list[str]:
    return [type(case[0]).__name__ for case in cases]


def _raising(error):
    def raise_it(*args, **kwargs):
        raise error

    return raise_it


async def _async_raising(error, *args, **kwargs):
    raise error


def _answers(monkeypatch, error) -> list:
    """(status, error body, headers) from the proxy and from the management API, each refusing with `error`."""
    monkeypatch.setattr(service, "authenticate_request", lambda request: _async_raising(error))
    monkeypatch.setattr(authentication, "check_auth_throttle_sync", _raising(error))
    proxy = Client().post("/v1/chat/completions", "{}", "application/json", HTTP_AUTHORIZATION="Bearer sk-x")
    management = Client().get("/key/info?key=sk-x", HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    return [(r.status_code, orjson.loads(r.content)["error"], r.get("retry-after")) for r in (proxy, management)]


def test_every_domain_error_class_is_in_the_table():
    declared = {
        cls
        for module in VOCABULARY
        for cls in vars(module).values()
        if inspect.isclass(cls) and issubclass(cls, pricing_errors.TollgateError) and cls.__module__ == module.__name__
    }

    assert declared == {type(error) for error, *_ in DOMAIN_ERRORS}


@pytest.mark.parametrize(("error", "status", "error_type", "code"), DOMAIN_ERRORS, ids=_ids(DOMAIN_ERRORS))
def test_a_domain_error_is_answered_alike_by_the_proxy_and_the_management_api(
    monkeypatch, error, status, error_type, code
):
    proxy, management = _answers(monkeypatch, error)

    assert proxy == management
    assert proxy[0] == status
    assert proxy[1] == {"message": error.message, "type": error_type, "param": error.param, "code": code}
    assert proxy[2] == error.headers.get("retry-after")


def test_a_status_has_one_type_but_where_litellm_names_its_own():
    named = {type(error) for error, *_ in DOMAIN_ERRORS if type(error).error_type is not None}
    by_status = {(status, error_type) for error, status, error_type, _ in DOMAIN_ERRORS if type(error) not in named}

    assert named == {key_errors.BudgetExceeded}
    assert len({status for status, _ in by_status}) == len(by_status)


@pytest.mark.parametrize(("error", "status", "error_type"), DRF_ERRORS, ids=_ids(DRF_ERRORS))
def test_drf_errors_take_the_type_of_their_status(monkeypatch, error, status, error_type):
    monkeypatch.setattr(authentication, "check_auth_throttle_sync", _raising(error))

    response = Client().get("/key/info?key=sk-x", HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")

    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert response.get("Retry-After") == ("5" if status == 429 else None)
    domain = {status: error_type for _, status, error_type, _ in DOMAIN_ERRORS if status != 400}
    assert domain.get(status, error_type) == error_type


@pytest.mark.django_db
def test_a_wrong_key_is_the_same_401_on_the_proxy_and_the_management_api():
    proxy = Client().post("/v1/chat/completions", "{}", "application/json", HTTP_AUTHORIZATION="Bearer sk-wrong")
    management = Client().get("/key/info?key=sk-x", HTTP_AUTHORIZATION="Bearer sk-wrong")

    assert proxy.status_code == management.status_code == 401
    assert proxy.json()["error"]["type"] == management.json()["error"]["type"] == "auth_error"
    assert proxy.json()["error"]["code"] == management.json()["error"]["code"] == "invalid_api_key"


def test_an_unexpected_exception_is_a_bare_500_on_both(monkeypatch):
    answers = _answers(monkeypatch, RuntimeError("the database password is hunter2"))

    bare = {"message": "Internal server error", "type": "api_error", "param": None, "code": "internal_error"}
    assert answers == [(500, bare, None), (500, bare, None)]


@pytest.mark.django_db(transaction=True)
async def test_health_refuses_a_key_that_is_not_the_master_key_with_403():
    raw_key, _ = await sync_to_async(make_key)()

    response = await AsyncClient().get("/health", headers={"Authorization": f"Bearer {raw_key}"})

    assert response.status_code == 403
    assert orjson.loads(response.content) == {
        "error": {
            "message": "Only the master key may read /health.",
            "type": "auth_error",
            "param": None,
            "code": "forbidden",
        }
    }
