"""People's roles: three Django groups whose permissions Tollgate sets, so an account's role is its group.

- Admins: every permission of every model.
- Finance: view (and nothing else) on every model of Tollgate's apps: deployments, prices, keys, teams, users,
  spend logs, rollups, and what later migrations add (customers, budgets). The spend overview and its exports ask
  for `spend.view_spendlog`, which Finance has.
- Team admins: view and change on keys, teams and internal users, and adding keys; which rows is the admin
  classes' business (keys.roles.teams_in_scope), and a key's budget and rate limits stay within its team's. The
  spend overview shows them their own teams' spend (spend.overview.team_scope).

The groups are made by a migration (gateway 0004) and made to match these definitions again after every
`migrate` (post_migrate, connected in gateway.apps) and by `manage.py sync_roles`: a model added later gets its
permissions in the roles without a migration of its own, and a permission given to a role by hand is taken back.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions

from keys.roles import ADMINS, FINANCE, ROLES, TEAM_ADMINS

# Finance reads everything Tollgate itself stores; Django's own tables (users, groups, sessions) are not spend.
PRODUCT_APPS = frozenset({"gateway", "keys", "pricing", "spend"})
TEAM_ADMIN_PERMISSIONS = frozenset(
    {
        ("keys", f"{action}_{model}")
        for action in ("view", "change")
        for model in ("virtualkey", "team", "internaluser", "teamadministrator")
    }
    - {("keys", "change_teamadministrator")}
    # A Team admin makes keys for its teams (within the team's limits: keys.forms.BudgetRulesForm.capped_by_team).
    | {("keys", "add_virtualkey")}
)


def role_of(app_label: str, codename: str) -> set[str]:
    """The roles that hold this permission (pure: the one place the roles are defined)."""
    roles = {ADMINS}
    if app_label in PRODUCT_APPS and codename.startswith("view_"):
        roles.add(FINANCE)
    if (app_label, codename) in TEAM_ADMIN_PERMISSIONS:
        roles.add(TEAM_ADMINS)
    return roles


def sync_roles(apps=global_apps, using: str = "default") -> dict[str, int]:
    """Make the three groups (if missing) hold exactly their roles' permissions; returns each role's count.

    Permissions are created first for every app: on a fresh database post_migrate has not made them yet for
    the apps that come after this one, and the migration runs before any post_migrate."""
    for app_config in apps.get_app_configs():
        # A migration's apps are stubs without a models module, which create_permissions would skip.
        stub = getattr(app_config, "models_module", None) is None
        app_config.models_module = getattr(app_config, "models_module", None) or True
        try:
            create_permissions(app_config, verbosity=0, interactive=False, using=using, apps=apps)
        finally:
            if stub:
                app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    chosen: dict[str, list[int]] = {role: [] for role in ROLES}
    for pk, app_label, codename in permission_model.objects.using(using).values_list(
        "pk", "content_type__app_label", "codename"
    ):
        for role in role_of(app_label, codename):
            chosen[role].append(pk)
    for role, permission_ids in chosen.items():
        group, _ = group_model.objects.using(using).get_or_create(name=role)
        group.permissions.set(permission_ids)
    return {role: len(permission_ids) for role, permission_ids in chosen.items()}


def sync_roles_after_migrate(sender, apps=global_apps, using: str = "default", **kwargs) -> None:
    """post_migrate receiver (sent once per migrate with gateway's app config as its sender)."""
    sync_roles(apps, using)
