"""One limit on request bodies, TOLLGATE_MAX_REQUEST_BYTES, refused the same way on every endpoint: 413, in the
OpenAI error shape, code `request_too_large`.

Django holds bodies to the same number (settings.DATA_UPLOAD_MAX_MEMORY_SIZE) by raising RequestDataTooBig when
`request.body` is read past it, from the Content-Length or, for a chunked body, from the bytes received. That is a
SuspiciousOperation: Django answers it with an HTML 400, and the proxy, which does not know it, with a 500. Here it
becomes a refusal like any other. The middleware reads the body of every request behind Django's middleware (the
management API, the admin) before a view runs, even one that never reads it; the proxy's handler has no middleware
and reads its body through `read_body`.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils.deprecation import MiddlewareMixin

from gateway.proxy.errors import PayloadTooLarge, error_response


def read_body(request) -> bytes:
    """`request.body`, or PayloadTooLarge past the limit."""
    try:
        return request.body
    except RequestDataTooBig:
        limit = settings.TOLLGATE_MAX_REQUEST_BYTES
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.") from None


class BodyLimitMiddleware(MiddlewareMixin):
    def process_request(self, request):
        try:
            body = read_body(request)  # at most the limit's bytes: Django stops reading past it
        except PayloadTooLarge as refusal:
            return error_response(refusal)
        if body and not request.META.get("CONTENT_LENGTH"):
            # A chunked body: DRF reads one without a Content-Length as empty (a restricted key asked for that way
            # came out unrestricted). Its length is known now.
            request.META["CONTENT_LENGTH"] = str(len(body))
        return None
