"""Management API authentication: the master key, compared in constant time, behind the failed-auth throttle.

The throttle is the proxy's too (keys.throttle), with the same counts: an address that keeps guessing keys on either
side gets 429 on both, so the management API cannot be used to guess the master key around the proxy's limit. A
missing key counts as a failure, as on the proxy.
"""

from rest_framework import authentication, exceptions, permissions, status

from keys.auth import MASTER, is_master_key, presented_key
from keys.throttle import AuthThrottled, check_auth_throttle_sync, client_ip, record_auth_failure


class TooManyFailedAuthentications(exceptions.APIException):
    """The throttle's refusal in DRF's terms: 429 with the proxy's message and code, and its retry-after."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, refusal: AuthThrottled):
        super().__init__(str(refusal), refusal.code)
        self.wait = refusal.retry_after


class MasterKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        address = client_ip(request)
        try:
            check_auth_throttle_sync(address)
        except AuthThrottled as refusal:
            raise TooManyFailedAuthentications(refusal) from None
        token = presented_key(request.headers)
        if token and is_master_key(token):
            return (None, MASTER)
        record_auth_failure(address)
        if not token:
            return None
        raise exceptions.AuthenticationFailed("Invalid API key: the management API needs the master key.")

    def authenticate_header(self, request):
        return "Bearer"


class IsMasterKey(permissions.BasePermission):
    def has_permission(self, request, view):
        return request.auth is MASTER
