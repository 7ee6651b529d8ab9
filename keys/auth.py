"""Who is calling: the hot-path authentication of the proxy.

The master key is compared in constant time. Virtual keys are looked up by the SHA-256 of the bearer token in a
per-process cache (keys.cache): a known key costs no database query, and an unknown one is refused from the
in-memory set of valid hashes without one. Whatever keys add, the proxy only ever sees a `Caller`.
"""

import hashlib
import hmac

from django.conf import settings
from django.utils import timezone

from keys.cache import key_cache
from keys.caller import MASTER, Caller, Limits
from keys.errors import AuthenticationFailed

__all__ = [
    "MASTER",
    "Caller",
    "Limits",
    "authenticate",
    "bearer_token",
    "hash_key",
    "is_master_key",
    "presented_key",
    "sync_key_cache",
]

# Where LiteLLM's proxy reads a key, in its order: its own header, OpenAI's, Azure's, Anthropic's. Clients moving
# from it (the Azure and Anthropic SDKs included) send theirs unchanged.
KEY_HEADERS = ("x-litellm-api-key", "Authorization", "api-key", "x-api-key")


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        return ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return authorization.strip()
    return token.strip()


def presented_key(headers) -> str:
    """The key a request presents: the first of KEY_HEADERS it sends, with any `Bearer ` taken off."""
    for name in KEY_HEADERS:
        token = bearer_token(headers.get(name))
        if token:
            return token
    return ""


def is_master_key(token: str) -> bool:
    master = settings.TOLLGATE_MASTER_KEY
    return bool(master) and hmac.compare_digest(token.encode(), master.encode())


def hash_key(raw_key: str) -> str:
    """The stored form of a key: the hex SHA-256 of the raw secret."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


async def authenticate(authorization: str | None) -> Caller:
    token = bearer_token(authorization)
    if not token:
        raise AuthenticationFailed("No API key provided. Send it as 'Authorization: Bearer <key>'.")
    if is_master_key(token):
        return MASTER
    caller = await key_cache().caller(hash_key(token))
    if caller is None:
        raise AuthenticationFailed("Invalid API key.")
    caller.check_usable(timezone.now())
    return caller


def sync_key_cache() -> None:
    """Apply every key, user and team change since the last call to this process's key cache (sync thread)."""
    key_cache().sync()
