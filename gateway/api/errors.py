"""Management API errors in the OpenAI shape, like LiteLLM's: {"error": {message, type, param, code}}.

DRF's handler hook, delegating to the proxy's one mapper (gateway.proxy.errors.error_response): a domain error
(TollgateError) is answered as the proxy answers it, and DRF's own exceptions (validation, authentication, 404,
405...) become a TollgateError of their status first, so the same status has the same `type` on both sides.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import set_rollback

from gateway.proxy.errors import error_response
from pricing.errors import TollgateError

logger = logging.getLogger(__name__)


def _first_message(detail, path: str = "") -> tuple[str, str | None]:
    """The first error in DRF's nested detail, with the field path it belongs to."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            name = field if field != "non_field_errors" else ""
            message, param = _first_message(value, f"{path}.{name}".strip(".") if name else path)
            return message, param
    if isinstance(detail, list) and detail:
        return _first_message(detail[0], path)
    message = str(detail)
    return (f"{path}: {message}" if path else message), (path or None)


def _as_domain_error(exc: exceptions.APIException) -> TollgateError:
    message, param = _first_message(exc.detail)
    code = exc.get_codes()
    while isinstance(code, dict | list) and code:
        code = next(iter(code.values())) if isinstance(code, dict) else code[0]
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(exc.wait)
    return TollgateError(
        message, status=exc.status_code, code=str(code) if code else None, param=param, headers=headers
    )


def exception_handler(exc, context):
    """The error's response: a plain JSON response, not DRF's Response, so that an error is JSON whatever renderer the
    request negotiated (?format=csv). Anything unexpected is logged with its traceback and answered as the proxy
    answers it, a bare 500."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        exc = _as_domain_error(exc)
    elif not isinstance(exc, TollgateError):
        request = context.get("request")
        logger.error("management API call to %s failed", getattr(request, "path", "?"), exc_info=exc)
    set_rollback()
    return error_response(exc)
