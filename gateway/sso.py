"""Single sign-on for the admin with OpenID Connect: mozilla-django-oidc's authorization code flow with PKCE, the
provider found by discovery from OIDC_ISSUER, and the role (and a team admin's teams) taken from its claims.

mozilla-django-oidc is configured with one endpoint setting each; Tollgate asks only for the issuer and reads the
endpoints from its discovery document (fetched on the first sign-in, kept an hour), so the settings stay a plain
read of the environment. The library decodes the id token without checking its audience or issuer: here both are
checked (a token the provider made for another client is refused). A person whose claims map to none of the
roles is refused: no account is made, no session starts, and the login page says why.
"""

import logging
import time

import jwt
import requests
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from gateway.roles import ROLES
from keys.models import Team, TeamAdministrator

logger = logging.getLogger(__name__)

# A provider's discovery document (its endpoints, its keys' address) is read again after this long.
_DISCOVERY_SECONDS = 3600.0
_discovered: dict[str, tuple[float, dict]] = {}
_ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def discovery() -> dict:
    """The issuer's OpenID configuration (404 when single sign-on is not configured)."""
    issuer = settings.OIDC_ISSUER
    if not issuer:
        raise Http404("Single sign-on is not configured (OIDC_ISSUER).")
    cached = _discovered.get(issuer)
    if cached is not None and time.monotonic() - cached[0] < _DISCOVERY_SECONDS:
        return cached[1]
    response = requests.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
    response.raise_for_status()
    document = response.json()
    if document.get("issuer") != issuer:
        raise ImproperlyConfigured(
            f"OIDC_ISSUER is {issuer!r} but its discovery document names {document.get('issuer')!r}"
        )
    _discovered[issuer] = (time.monotonic(), document)
    return document


def _setting(attr: str, *default):
    """mozilla-django-oidc's settings, its endpoints from discovery."""
    if attr in _ENDPOINTS:
        return discovery()[_ENDPOINTS[attr]]
    return import_from_settings(attr, *default)


def claim_values(claims: dict, name: str) -> list[str]:
    """A claim as a list of strings (providers send one value as a string, several as a list)."""
    value = claims.get(name) if name else None
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def roles_from(claims: dict) -> set[str]:
    """The Tollgate roles the claims give, through OIDC_ROLE_CLAIM and OIDC_ROLE_MAP."""
    mapped = {settings.OIDC_ROLE_MAP.get(value) for value in claim_values(claims, settings.OIDC_ROLE_CLAIM)}
    return mapped & set(ROLES)


class SignIn(OIDCAuthenticationRequestView):
    """/oidc/authenticate/: redirects to the provider with a state, a nonce and a PKCE challenge."""

    get_settings = staticmethod(_setting)


class SignInCallback(OIDCAuthenticationCallbackView):
    """/oidc/callback/: the provider sends the browser back here with the code."""

    get_settings = staticmethod(_setting)


class RoleMappingBackend(OIDCAuthenticationBackend):
    """Signs in the person the provider vouches for, as a staff login whose groups are the roles its claims give."""

    get_settings = staticmethod(_setting)

    def __init__(self, *args, **kwargs):
        # Django makes a backend for every request's session user: the endpoints are read only by a sign-in.
        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: discovery()["token_endpoint"])
    OIDC_OP_USER_ENDPOINT = property(lambda self: discovery()["userinfo_endpoint"])
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: discovery()["jwks_uri"])

    def authenticate(self, request, **kwargs):
        try:
            return super().authenticate(request, **kwargs)
        except (SuspiciousOperation, requests.RequestException) as exc:
            logger.warning("single sign-on refused: %s", exc)
            return None

    def get_payload_data(self, token, key):
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=discovery()["issuer"],
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"id token refused: {exc}") from exc

    def get_userinfo(self, access_token, id_token, payload):
        # A role claim may come in the id token, the userinfo answer or both.
        return {**payload, **super().get_userinfo(access_token, id_token, payload)}

    def verify_claims(self, claims):
        if not claims.get("email"):
            return False
        if not roles_from(claims):
            logger.warning("single sign-on refused %s: no role in claim %r", claims["email"], settings.OIDC_ROLE_CLAIM)
            return False
        return True

    def get_username(self, claims):
        return claims["email"].lower()

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username__iexact=self.get_username(claims))

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(self.get_username(claims), email=claims["email"])
        return self.update_user(user, claims)

    @transaction.atomic
    def update_user(self, user, claims):
        """The provider decides: the roles (and a team admin's teams) are set from the claims at every sign-in."""
        user.is_staff = True
        user.email = claims["email"]
        user.first_name = claims.get("given_name", user.first_name)[:150]
        user.last_name = claims.get("family_name", user.last_name)[:150]
        user.save()
        user.groups.remove(*Group.objects.filter(name__in=ROLES))
        user.groups.add(*Group.objects.filter(name__in=roles_from(claims)))
        if settings.OIDC_TEAM_CLAIM:
            names = claim_values(claims, settings.OIDC_TEAM_CLAIM)
            teams = list(Team.objects.filter(Q(team_id__in=names) | Q(team_alias__in=names)))
            TeamAdministrator.objects.filter(user=user).exclude(team__in=teams).delete()
            for team in teams:
                TeamAdministrator.objects.get_or_create(user=user, team=team)
        return user


def admin_login(request, extra_context=None):
    """The admin's login page: "Sign in with SSO" when configured, no password form when local login is off."""
    context = {
        "sso_enabled": bool(settings.OIDC_ISSUER),
        "local_login": settings.TOLLGATE_LOCAL_LOGIN,
        "sso_refused": request.GET.get("sso") == "refused",
        **(extra_context or {}),
    }
    return admin.site.login(request, extra_context=context)
