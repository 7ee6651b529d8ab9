"""Management API errors in the OpenAI shape, like LiteLLM's: {"error": {message, type, param, code}}."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from gateway.api.renderers import DecimalJSONRenderer


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


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    set_rollback()
    message, param = _first_message(exc.detail)
    code = exc.get_codes()
    while isinstance(code, dict | list) and code:
        code = next(iter(code.values())) if isinstance(code, dict) else code[0]
    error_type = {
        status.HTTP_401_UNAUTHORIZED: "auth_error",
        status.HTTP_403_FORBIDDEN: "auth_error",
        status.HTTP_404_NOT_FOUND: "not_found_error",
        status.HTTP_429_TOO_MANY_REQUESTS: "rate_limit_error",
    }.get(exc.status_code, "invalid_request_error")
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(exc.wait)
    body = {"error": {"message": message, "type": error_type, "param": param, "code": str(code) if code else None}}
    request = context.get("request")
    if request is not None:
        # An error is JSON whatever the request asked for (?format=csv): DRF renders it as the request negotiated.
        request.accepted_renderer = DecimalJSONRenderer()
        request.accepted_media_type = DecimalJSONRenderer.media_type
    return Response(body, status=exc.status_code, headers=headers)
