"""Management API authentication: the master key, compared in constant time."""

from rest_framework import authentication, exceptions, permissions

from keys.auth import MASTER, bearer_token, is_master_key


class MasterKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(request.headers.get("Authorization"))
        if not token:
            return None
        if not is_master_key(token):
            raise exceptions.AuthenticationFailed("Invalid API key: the management API needs the master key.")
        return (None, MASTER)

    def authenticate_header(self, request):
        return "Bearer"


class IsMasterKey(permissions.BasePermission):
    def has_permission(self, request, view):
        return request.auth is MASTER
