"""Provider API keys at rest: either an `os.environ/NAME` reference (kept as is) or Fernet-encrypted."""

import base64
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ENV_PREFIX = "os.environ/"
_ENCRYPTED_PREFIX = "fernet:"


def _fernet() -> Fernet:
    material = settings.TOLLGATE_ENCRYPTION_KEY or settings.SECRET_KEY
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest()))


def seal(secret: str) -> str:
    """What to store for a provider secret: references stay readable, literal secrets are encrypted."""
    if not secret or secret.startswith((ENV_PREFIX, _ENCRYPTED_PREFIX)):
        return secret
    return _ENCRYPTED_PREFIX + _fernet().encrypt(secret.encode()).decode()


def is_sealed(stored) -> bool:
    return isinstance(stored, str) and stored.startswith(_ENCRYPTED_PREFIX)


def unseal(stored: str) -> str:
    """The usable secret: decrypts, or reads the referenced environment variable."""
    if not stored:
        return ""
    if stored.startswith(ENV_PREFIX):
        return resolve_env_reference(stored)
    if stored.startswith(_ENCRYPTED_PREFIX):
        try:
            return _fernet().decrypt(stored.removeprefix(_ENCRYPTED_PREFIX).encode()).decode()
        except InvalidToken as exc:
            raise ImproperlyConfigured("a stored provider key cannot be decrypted with this SECRET_KEY") from exc
    return stored


def resolve_env_reference(value: str) -> str:
    name = value.removeprefix(ENV_PREFIX)
    if name not in os.environ:
        raise ImproperlyConfigured(f"environment variable {name} is not set (referenced as {value})")
    return os.environ[name]


def hint(stored: str) -> str:
    """How a stored secret may be shown: the reference itself, or the last four characters of the key."""
    if not stored:
        return ""
    if stored.startswith(ENV_PREFIX):
        return stored
    plain = unseal(stored)
    return f"{plain[:3]}...{plain[-4:]}" if len(plain) > 8 else "****"
