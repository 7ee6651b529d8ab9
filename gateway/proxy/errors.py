"""The one mapper from an error to a response: `{"error": {message, type, param, code}}` with the error's status.

Every refusal is a pricing.errors.TollgateError, whichever app raised it (keys, pricing, spend, or the proxy's own
below); the proxy views, /health, the body-limit middleware and the management API's DRF handler all answer through
`error_response`. Anything else is a bare 500 that tells the caller nothing of what went wrong.
"""

import orjson
from django.http import HttpResponse

from pricing.errors import TollgateError


class ProxyError(TollgateError):
    """A refusal of the proxy's own: the request cannot be served as sent."""


class BadRequest(ProxyError):
    """The body or the route is not one the proxy can serve (a missing model, a malformed field)."""


class Forbidden(ProxyError, status=403, code="forbidden"):
    """The key is valid but may not use this endpoint (the master key's endpoints)."""


class PayloadTooLarge(ProxyError, status=413, code="request_too_large"):
    """The body is over the size the proxy reads (gateway.body_limit)."""


class NotFound(ProxyError, status=404, code="not_found"):
    """No endpoint or no object by that name."""


class UpstreamFailed(ProxyError):
    """Every deployment tried failed; the status says how (502 bad answer, 503 unreachable, 504 timed out)."""

    def __init__(self, message: str, *, status: int, code: str, headers=None):
        super().__init__(message, code=code, headers=headers, status=status)


class UpstreamRejected(ProxyError):
    """The upstream refused the request itself (a 4xx): passed through with its own status and message."""

    def __init__(self, message: str, *, status: int, headers=None):
        super().__init__(message, code=f"upstream_{status}", headers=headers, status=status)


class InternalError(TollgateError, status=500, code="internal_error"):
    """What an unexpected exception becomes: the caller learns only that it was not their fault."""

    def __init__(self):
        super().__init__("Internal server error")


def error_payload(exc: TollgateError) -> dict:
    return {"error": {"message": exc.message, "type": exc.openai_type, "param": exc.param, "code": exc.code}}


def error_response(exc: BaseException) -> HttpResponse:
    """The HTTP response for a refusal; anything unexpected is a bare 500 with no detail leaked."""
    if not isinstance(exc, TollgateError):
        exc = InternalError()
    response = HttpResponse(orjson.dumps(error_payload(exc)), status=exc.status, content_type="application/json")
    for name, value in exc.headers.items():
        response[name] = value
    return response


def is_domain_error(exc: BaseException) -> bool:
    return isinstance(exc, TollgateError)
