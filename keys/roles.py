"""The names of people's roles (Django groups) and which teams a login may see: here, below the apps that ask.

gateway.roles defines what each role may do (its permissions) and makes the groups; the keys admin and the spend
overview only need to know a login's role to scope what they show, and may not import gateway: the names live here.
"""

from django.db import models

from keys.models import Team

ADMINS = "Admins"
FINANCE = "Finance"
TEAM_ADMINS = "Team admins"
ROLES = (ADMINS, FINANCE, TEAM_ADMINS)


def teams_administered_by(user) -> "models.QuerySet[Team]":
    """The teams a login of the "Team admins" role manages: the only teams (and their keys and members) the admin
    may show or change for it (none for an anonymous or unlinked login). Admins see every team: call it only for a
    login without the Admins role (or use teams_in_scope)."""
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(administrators__user=user)


def teams_in_scope(user) -> "models.QuerySet[Team] | None":
    """The teams a login may see: None for every team (a superuser, Admins, any login outside "Team admins"), else
    only those linked to it (issue 23). The groups are read once per request object (the admin asks a few times)."""
    if user.is_superuser:
        return None
    roles = getattr(user, "_tollgate_roles", None)
    if roles is None:
        roles = user._tollgate_roles = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    if TEAM_ADMINS not in roles or ADMINS in roles:
        return None
    return teams_administered_by(user)
