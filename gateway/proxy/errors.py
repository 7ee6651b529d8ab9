"""The proxy's one error vocabulary: every refusal becomes `{"error": {message, type, param, code}}`.

Domain errors raised by keys and pricing carry a message and a code; this module alone decides their HTTP status.
"""

import orjson
from django.http import HttpResponse

from keys import errors as key_errors
from pricing.errors import UnpricedModelBlocked
from spend.ledger import LedgerUnavailable


class ProxyError(Exception):
    status = 400
    error_type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, headers=None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.code
        self.headers = headers or {}


class BadRequest(ProxyError):
    pass


class PayloadTooLarge(ProxyError):
    status = 413
    code = "request_too_large"


class NotFound(ProxyError):
    status = 404
    code = "not_found"


class UpstreamFailed(ProxyError):
    """Every deployment tried failed; the status says how (502 bad answer, 503 unreachable, 504 timed out)."""

    error_type = "api_error"

    def __init__(self, message: str, *, status: int, code: str, headers=None):
        super().__init__(message, code=code, headers=headers)
        self.status = status


class UpstreamRejected(ProxyError):
    """The upstream refused the request itself (a 4xx): passed through with its own status and message."""

    def __init__(self, message: str, *, status: int, headers=None):
        super().__init__(message, code=f"upstream_{status}", headers=headers)
        self.status = status
        if status == 429:
            self.error_type = "rate_limit_error"


# Domain errors: (HTTP status, OpenAI error type).
_DOMAIN_STATUS = {
    key_errors.AuthenticationFailed: (401, "invalid_request_error"),
    key_errors.AccessDenied: (403, "invalid_request_error"),
    key_errors.BudgetExceeded: (400, "budget_exceeded"),
    key_errors.RateLimited: (429, "rate_limit_error"),
    UnpricedModelBlocked: (400, "invalid_request_error"),
    LedgerUnavailable: (503, "api_error"),
    key_errors.BudgetsUnavailable: (503, "api_error"),
}


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": error_type, "param": param, "code": code}})


def error_response(exc: Exception) -> HttpResponse:
    """The HTTP response for a refusal; anything unexpected is a bare 500 with no detail leaked."""
    if isinstance(exc, ProxyError):
        status, error_type, code, param, headers = exc.status, exc.error_type, exc.code, exc.param, exc.headers
        message = exc.message
    else:
        known = next((fields for exc_class, fields in _DOMAIN_STATUS.items() if isinstance(exc, exc_class)), None)
        if known is not None:
            (status, error_type), code = known, exc.code
            message, param, headers = str(exc), getattr(exc, "param", None), getattr(exc, "headers", None) or {}
        else:
            status, error_type, code, param, headers = 500, "api_error", "internal_error", None, {}
            message = "Internal server error"
    response = HttpResponse(
        error_body(message, error_type, param, code), status=status, content_type="application/json"
    )
    for name, value in headers.items():
        response[name] = value
    return response


def is_domain_error(exc: Exception) -> bool:
    return isinstance(exc, (ProxyError, *_DOMAIN_STATUS))
