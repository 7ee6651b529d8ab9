"""Management API authentication: the master key, compared in constant time, behind the failed-auth throttle.

The throttle is the proxy's too (keys.throttle), with the same counts: an address that keeps guessing keys on either
side gets 429 on both, so the management API cannot be used to guess the master key around the proxy's limit. A
missing key counts as a failure, as on the proxy.

A virtual key is let in where LiteLLM lets one: a view that answers a key about itself (`keys_may_call`: /key/info),
and the global spend reports for a key whose permissions say {"get_spend_routes": true}; there as on the proxy, an
expired or blocked key, or a path its allowed_routes leave out, is refused.
"""

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from keys.auth import MASTER, Caller, hash_key, is_master_key, presented_key
from keys.cache import load_caller
from keys.routes import SPEND_TRACKING_ROUTES, route_of
from keys.throttle import check_auth_throttle_sync, client_ip, record_auth_failure


def _virtual_key_caller(request, token: str) -> Caller | None:
    """The caller of a virtual key where one may call (checked as the proxy checks it), else None."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    for_itself = getattr(view, "keys_may_call", False)
    if not for_itself and route_of(request.path) not in SPEND_TRACKING_ROUTES:
        return None
    caller = load_caller(hash_key(token))
    if caller is None or not (for_itself or caller.reads_spend):
        return None
    caller.check_usable(timezone.now())
    caller.check_route(request.path)
    return caller


class MasterKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        address = client_ip(request)
        check_auth_throttle_sync(address)  # AuthThrottled, a domain error: the handler answers it as the proxy does
        token = presented_key(request.headers)
        if token and is_master_key(token):
            return (None, MASTER)
        caller = _virtual_key_caller(request, token) if token else None
        if caller is not None:
            return (None, caller)
        record_auth_failure(address)
        if not token:
            return None
        raise exceptions.AuthenticationFailed(
            "Invalid API key: the management API needs the master key.", code="invalid_api_key"
        )

    def authenticate_header(self, request):
        return "Bearer"


class IsMasterKey(permissions.BasePermission):
    """The master key, or a virtual key that MasterKeyAuthentication let in where keys may call."""

    def has_permission(self, request, view):
        return request.auth is MASTER or isinstance(request.auth, Caller)


def actor_name(auth) -> str:
    """Who made a management-API change, for the audit trail: the master key, or a key (a Caller or a VirtualKey) by
    its hint and its alias or the start of its identity hash, never its secret."""
    if getattr(auth, "is_master", False):
        return "master key"
    hint = getattr(auth, "key_hint", "") or "sk-..."
    identity = getattr(auth, "key_hash", "") or getattr(auth, "token_hash", "")
    label = getattr(auth, "key_alias", "") or identity[:8]
    return f"key {hint} ({label})" if label else f"key {hint}"
