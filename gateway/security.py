"""Refusing a weak master key: outside DEBUG, `serve`, `migrate` and `check` do not run with one.

The other guard around authentication, the failed-auth throttle, is in keys/throttle.py.
"""

from django.conf import settings
from django.core import checks

MIN_MASTER_KEY_LENGTH = 32
# Keys that appear in LiteLLM's and Tollgate's docs and in countless copied configs.
WELL_KNOWN_MASTER_KEYS = frozenset(
    {
        "sk-1234",
        "sk-12345",
        "sk-123456",
        "sk-1234567890",
        "sk-my-master-key",
        "sk-master-key",
        "sk-litellm-master-key",
        "sk-tollgate",
        "changeme",
        "change-me",
        "password",
        "secret",
        "admin",
        "master_key",
        "master-key",
    }
)
_GENERATE_HINT = "Generate one with: python -c \"import secrets; print('sk-' + secrets.token_urlsafe(32))\""


def master_key_problem(master_key: str) -> str:
    """Why this master key is too weak to guard a gateway, or "" when it is strong enough."""
    if not master_key:
        return ""  # no master key: the management API and the admin key are simply off
    if master_key.lower() in WELL_KNOWN_MASTER_KEYS:
        return "the master key is a well-known example key"
    if len(master_key) < MIN_MASTER_KEY_LENGTH:
        return f"the master key is {len(master_key)} characters long; it must have at least {MIN_MASTER_KEY_LENGTH}"
    if len(set(master_key)) < 8:
        return "the master key repeats too few characters to be random"
    return ""


def check_master_key(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A system check (so `serve`, `migrate` and `check` refuse to run): outside DEBUG, the master key is strong."""
    problem = master_key_problem(settings.TOLLGATE_MASTER_KEY)
    if not problem:
        return []
    hint = f"Set TOLLGATE_MASTER_KEY (or general_settings.master_key) to a random key. {_GENERATE_HINT}"
    if settings.DEBUG:
        return [checks.Warning(f"Weak master key: {problem}.", hint=hint, id="tollgate.W001")]
    return [checks.Error(f"Weak master key: {problem}.", hint=hint, id="tollgate.E001")]
