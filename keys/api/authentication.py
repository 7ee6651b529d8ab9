"""Management API authentication: the master key, compared in constant time, behind the failed-auth throttle.

The throttle is the proxy's too (keys.throttle), with the same counts: an address that keeps guessing keys on either
side gets 429 on both, so the management API cannot be used to guess the master key around the proxy's limit. A
missing key counts as a failure, as on the proxy.
"""

from rest_framework import authentication, exceptions, permissions

from keys.auth import MASTER, is_master_key, presented_key
from keys.throttle import check_auth_throttle_sync, client_ip, record_auth_failure


class MasterKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        address = client_ip(request)
        check_auth_throttle_sync(address)  # AuthThrottled, a domain error: the handler answers it as the proxy does
        token = presented_key(request.headers)
        if token and is_master_key(token):
            return (None, MASTER)
        record_auth_failure(address)
        if not token:
            return None
        raise exceptions.AuthenticationFailed(
            "Invalid API key: the management API needs the master key.", code="invalid_api_key"
        )

    def authenticate_header(self, request):
        return "Bearer"


class IsMasterKey(permissions.BasePermission):
    def has_permission(self, request, view):
        return request.auth is MASTER


def actor_name(auth) -> str:
    """Who made a management-API change, for the audit trail: the master key, or a key (a Caller or a VirtualKey) by
    its hint and its alias or the start of its identity hash, never its secret."""
    if getattr(auth, "is_master", False):
        return "master key"
    hint = getattr(auth, "key_hint", "") or "sk-..."
    identity = getattr(auth, "key_hash", "") or getattr(auth, "token_hash", "")
    label = getattr(auth, "key_alias", "") or identity[:8]
    return f"key {hint} ({label})" if label else f"key {hint}"
