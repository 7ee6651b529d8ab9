"""Who is calling: the hot-path authentication of the proxy.

The master key is compared in constant time. Virtual keys plug in behind `authenticate`; whatever they add,
the proxy only ever sees a `Caller`.
"""

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings

from keys.errors import AccessDenied, AuthenticationFailed


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the master key, or a virtual key with its user's and team's limits."""

    is_master: bool
    key_hash: str = ""
    key_alias: str = ""
    user_id: str = ""
    team_id: str = ""
    models: frozenset[str] = frozenset()  # empty: every model
    aliases: Mapping[str, str] = field(default_factory=dict)

    def resolve_model(self, requested: str) -> str:
        """The model group a requested name maps to (the key's aliases, then its team's)."""
        return self.aliases.get(requested, requested)

    def check_model_access(self, group: str, requested: str) -> None:
        if self.models and group not in self.models and requested not in self.models:
            raise AccessDenied(
                f"This key may not call model {requested!r}. Allowed models: {', '.join(sorted(self.models))}",
                param="model",
            )

    def may_use(self, group: str) -> bool:
        return not self.models or group in self.models


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        return ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return authorization.strip()
    return token.strip()


def is_master_key(token: str) -> bool:
    master = settings.TOLLGATE_MASTER_KEY
    return bool(master) and hmac.compare_digest(token.encode(), master.encode())


async def authenticate(authorization: str | None) -> Caller:
    token = bearer_token(authorization)
    if not token:
        raise AuthenticationFailed("No API key provided. Send it as 'Authorization: Bearer <key>'.")
    if is_master_key(token):
        return MASTER
    raise AuthenticationFailed("Invalid API key.")


MASTER = Caller(is_master=True)
