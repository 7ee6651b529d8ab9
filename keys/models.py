"""Keys, users and teams (virtual keys): who may call what, until when, for how much.

Money is exact on every database (pricing.fields.MoneyField: numeric(38, 20), or fixed-width text on SQLite).

Every service that creates, changes or deletes one of them appends a `KeyChange` row in the same transaction;
each server process reads the rows it has not seen yet and refreshes its in-memory key cache from them.
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from keys.budgets import InvalidModelBudget, model_budget
from pricing.fields import MoneyField


def new_id() -> str:
    return uuid.uuid4().hex


# Teams, users and keys keep the same fields for their spend and limits. Made by a call in the class body (not an
# abstract base) so that each model keeps its own field order, which the admin's forms and the migrations follow.
def spend_fields() -> tuple[models.Field, models.Field, models.Field]:
    """budget_reset_at, spend and spend_epoch."""
    return (
        models.DateTimeField(null=True, blank=True),
        MoneyField(default=Decimal(0)),
        models.PositiveBigIntegerField(
            default=0,
            editable=False,
            help_text="Moves when spend is set by hand: every process's budget counters re-read it.",
        ),
    )


def rate_limit_fields() -> tuple[models.Field, models.Field, models.Field]:
    """tpm_limit, rpm_limit and max_parallel_requests (a team's or a key's)."""
    return (
        models.PositiveBigIntegerField(null=True, blank=True),
        models.PositiveBigIntegerField(null=True, blank=True),
        models.PositiveIntegerField(null=True, blank=True),
    )


class Team(models.Model):
    """A group of users and keys sharing a budget, rate limits, allowed models and model aliases."""

    team_id = models.CharField(max_length=200, unique=True, default=new_id)
    team_alias = models.CharField(max_length=200, blank=True)
    model_aliases = models.JSONField(default=dict, blank=True, help_text="Requested model → model group.")
    max_budget = MoneyField(null=True, blank=True, help_text="USD; empty: no budget.")
    budget_duration = models.CharField(max_length=20, blank=True, help_text='"30d", "1mo"…; empty: never resets.')
    budget_reset_at, spend, spend_epoch = spend_fields()
    tpm_limit, rpm_limit, max_parallel_requests = rate_limit_fields()
    metadata = models.JSONField(default=dict, blank=True)
    blocked = models.BooleanField(default=False)
    admin_members = models.ManyToManyField(
        "InternalUser",
        related_name="teams_as_admin",
        blank=True,
        help_text="Members whose role in the team is admin (LiteLLM's members_with_roles); the others' is user.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    organization = models.ForeignKey(
        "Organization",
        to_field="organization_id",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="teams",
        help_text="The organization above the team: its budget and models hold every key of the team too.",
    )
    # Last field: from here on `models` in this class body is the field, not django.db.models.
    models = models.JSONField(default=list, blank=True, help_text="Model groups the team may call; empty: all.")

    class Meta:
        ordering = ["team_alias", "team_id"]

    def __str__(self) -> str:
        return self.team_alias or self.team_id


class InternalUser(models.Model):
    """A person (LiteLLM's "internal user") who owns keys and belongs to teams; their budget and rate limits cover
    all their keys together."""

    class Role(models.TextChoices):
        """LiteLLM's user roles. Kept and shown: the management API stays the master key's whatever a user's role."""

        PROXY_ADMIN = "proxy_admin"
        PROXY_ADMIN_VIEWER = "proxy_admin_viewer"
        INTERNAL_USER = "internal_user"
        INTERNAL_USER_VIEWER = "internal_user_viewer"

    user_id = models.CharField(max_length=200, unique=True, default=new_id)
    user_email = models.EmailField(blank=True)
    user_role = models.CharField(max_length=32, choices=Role.choices, default=Role.INTERNAL_USER)
    max_budget = MoneyField(null=True, blank=True, help_text="USD; empty: no budget.")
    budget_duration = models.CharField(max_length=20, blank=True)
    budget_reset_at, spend, spend_epoch = spend_fields()
    tpm_limit, rpm_limit, max_parallel_requests = rate_limit_fields()
    teams = models.ManyToManyField(Team, related_name="members", blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    models = models.JSONField(default=list, blank=True, help_text="Model groups the user may call; empty: all.")

    class Meta:
        ordering = ["user_id"]
        verbose_name = "internal user"

    def __str__(self) -> str:
        return self.user_email or self.user_id


class VirtualKey(models.Model):
    """A `sk-...` key the proxy accepts, stored only as the SHA-256 of its secret.

    `token_hash` is the key's identity for good (LiteLLM's `token`: the hash of its first secret): spend logs, budget
    counters, rollups and the change log name the key by it. `secret_hash` is the hash of the secret that works now,
    which authentication looks up; /key/regenerate changes only that, so a new secret keeps the key's spend."""

    token_hash = models.CharField(
        max_length=64, unique=True, help_text="The key's identity: sha256 hex of its first secret."
    )
    secret_hash = models.CharField(
        max_length=64, unique=True, help_text="sha256 hex of the current secret (changes when regenerated)."
    )
    key_hint = models.CharField(max_length=20, help_text="sk-...abcd")
    key_alias = models.CharField(max_length=200, blank=True)
    aliases = models.JSONField(default=dict, blank=True, help_text="Requested model → model group.")
    config = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    max_budget = MoneyField(null=True, blank=True, help_text="USD; empty: no budget.")
    soft_budget = MoneyField(null=True, blank=True, help_text="USD; crossing it sends an alert.")
    soft_budget_alerted_at = models.DateTimeField(
        null=True, blank=True, help_text="When this period's soft-budget alert went out."
    )
    budget_duration = models.CharField(max_length=20, blank=True)
    budget_reset_at, spend, spend_epoch = spend_fields()
    tpm_limit, rpm_limit, max_parallel_requests = rate_limit_fields()
    blocked = models.BooleanField(default=False)
    allowed_routes = models.JSONField(
        default=list, blank=True, help_text="Paths or LiteLLM route groups the key may call; empty: every route."
    )
    enforced_params = models.JSONField(
        default=list, blank=True, help_text='Body params every call must carry ("user", "metadata.generation_name").'
    )
    permissions = models.JSONField(
        default=dict, blank=True, help_text='LiteLLM\'s key permissions; {"get_spend_routes": true}: may read spend.'
    )
    user = models.ForeignKey(
        InternalUser, to_field="user_id", null=True, blank=True, on_delete=models.SET_NULL, related_name="keys"
    )
    team = models.ForeignKey(
        Team, to_field="team_id", null=True, blank=True, on_delete=models.SET_NULL, related_name="keys"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="Tags every call with this key carries (and pays).")
    model_max_budget = models.JSONField(
        default=dict,
        blank=True,
        help_text='Model group → {"budget_limit": USD, "time_period": "1d"} (or USD alone): a budget per model.',
    )
    model_rpm_limit = models.JSONField(default=dict, blank=True, help_text="Model group → requests per minute.")
    model_tpm_limit = models.JSONField(default=dict, blank=True, help_text="Model group → tokens per minute.")
    models = models.JSONField(default=list, blank=True, help_text="Model groups the key may call; empty: all.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "virtual key"

    def __str__(self) -> str:
        return self.key_alias or self.key_hint


class Budget(models.Model):
    """A named set of limits (LiteLLM's budget table) that customers share: each customer attached to it gets these
    limits on its own spend, and a change here applies to all of them at once."""

    budget_id = models.CharField(max_length=200, unique=True, default=new_id)
    max_budget = MoneyField(null=True, blank=True, help_text="USD; empty: no budget.")
    soft_budget = MoneyField(null=True, blank=True, help_text="USD; crossing it sends an alert.")
    budget_duration = models.CharField(max_length=20, blank=True, help_text='"30d", "1mo"…; empty: never resets.')
    tpm_limit, rpm_limit, max_parallel_requests = rate_limit_fields()
    model_max_budget = models.JSONField(default=dict, blank=True, help_text="Kept and shown; not enforced.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.CharField(max_length=200, blank=True)
    updated_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["budget_id"]

    def __str__(self) -> str:
        return self.budget_id


class Customer(models.Model):
    """An end user of an application that calls through Tollgate (LiteLLM's customer): named by the `user` field of
    a call, whatever key makes it. Made on first sight; charged every call it names, like the call's key; its limits
    are its budget's."""

    end_user_id = models.CharField(max_length=200, unique=True, help_text="The call's `user` (LiteLLM's user_id).")
    alias = models.CharField(max_length=200, blank=True)
    blocked = models.BooleanField(default=False, help_text="Refuse every call for this customer.")
    budget = models.ForeignKey(
        Budget, to_field="budget_id", null=True, blank=True, on_delete=models.SET_NULL, related_name="customers"
    )
    default_model = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    budget_reset_at, spend, spend_epoch = spend_fields()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["end_user_id"]

    def __str__(self) -> str:
        return self.alias or self.end_user_id

    # The budget's limits, read where a key's, user's or team's own fields are (limits, resets).
    max_budget = property(lambda self: self.budget.max_budget if self.budget else None)
    soft_budget = property(lambda self: self.budget.soft_budget if self.budget else None)
    budget_duration = property(lambda self: self.budget.budget_duration if self.budget else "")
    tpm_limit = property(lambda self: self.budget.tpm_limit if self.budget else None)
    rpm_limit = property(lambda self: self.budget.rpm_limit if self.budget else None)
    max_parallel_requests = property(lambda self: self.budget.max_parallel_requests if self.budget else None)


class Tag(models.Model):
    """A tag calls carry (`metadata.tags`, `tags`, or their key's tags) as a budget holder (LiteLLM's tag table):
    every call carrying it is charged to it, whatever key makes it. Made on first sight, as a customer is, or by
    /tag/new; its spend counts from then. A call carrying a tag whose budget is spent is refused."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    max_budget = MoneyField(null=True, blank=True, help_text="USD; empty: no budget.")
    soft_budget = MoneyField(null=True, blank=True, help_text="USD; crossing it sends an alert.")
    budget_duration = models.CharField(max_length=20, blank=True, help_text='"30d", "1mo"…; empty: never resets.')
    budget_reset_at, spend, spend_epoch = spend_fields()
    tpm_limit, rpm_limit, max_parallel_requests = rate_limit_fields()
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class KeyModelSpend(models.Model):
    """A key's spend on one model group, for its per-model budget (`VirtualKey.model_max_budget` holds the limit and
    period): a budget holder of its own, charged every call of the key to that group. Made when the key first calls
    the group with a budget set for it; its spend counts from then."""

    holder_id = models.CharField(max_length=200, unique=True, help_text="<token_hash>:<model group>")
    key = models.ForeignKey(VirtualKey, to_field="token_hash", on_delete=models.CASCADE, related_name="model_spends")
    model = models.CharField(max_length=135, help_text="The model group.")
    budget_reset_at, spend, spend_epoch = spend_fields()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key", "model"]
        verbose_name = "key model spend"

    def __str__(self) -> str:
        return f"{self.key} on {self.model}"

    @property
    def budget_duration(self) -> str:
        """The period of the key's budget for this model (read where a key's own is: resets)."""
        try:
            return model_budget(self.key.model_max_budget[self.model]).duration
        except (KeyError, InvalidModelBudget):
            return ""


def key_model_id(token_hash: str, model: str) -> str:
    """A key's per-model holder's id: the key's identity (64 hex digits), ":" and the model group."""
    return f"{token_hash}:{model}"


class Organization(models.Model):
    """The level above teams (LiteLLM's organization): a team belongs to at most one, and every call of the team's
    keys is charged to it and held to its budget (its `Budget`'s limits, on the organization's own spend) and its
    models, as to the team's."""

    organization_id = models.CharField(max_length=200, unique=True, default=new_id)
    organization_alias = models.CharField(max_length=200, blank=True)
    budget = models.ForeignKey(
        Budget, to_field="budget_id", null=True, blank=True, on_delete=models.SET_NULL, related_name="organizations"
    )
    metadata = models.JSONField(default=dict, blank=True)
    budget_reset_at, spend, spend_epoch = spend_fields()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=200, blank=True)
    models = models.JSONField(default=list, blank=True, help_text="Model groups its teams may call; empty: all.")

    class Meta:
        ordering = ["organization_alias", "organization_id"]

    def __str__(self) -> str:
        return self.organization_alias or self.organization_id

    # The budget's limits, read where a team's own fields are (limits, resets), as a customer's are.
    max_budget = Customer.max_budget
    soft_budget = Customer.soft_budget
    budget_duration = Customer.budget_duration
    tpm_limit = Customer.tpm_limit
    rpm_limit = Customer.rpm_limit
    max_parallel_requests = Customer.max_parallel_requests


class OrganizationMembership(models.Model):
    """An internal user's membership of an organization, with its role there (LiteLLM's org_admin,
    internal_user, internal_user_viewer)."""

    class Role(models.TextChoices):
        ORG_ADMIN = "org_admin"
        INTERNAL_USER = "internal_user"
        INTERNAL_USER_VIEWER = "internal_user_viewer"

    organization = models.ForeignKey(
        Organization, to_field="organization_id", on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        InternalUser, to_field="user_id", on_delete=models.CASCADE, related_name="organization_memberships"
    )
    user_role = models.CharField(max_length=30, choices=Role.choices, default=Role.INTERNAL_USER)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="one_membership_per_user_and_organization")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.organization_id} ({self.user_role})"


# Each kind of entity that has a budget: its model and the field that names it (in the ledger, the counters, the log).
BUDGET_HOLDERS = {
    "key": (VirtualKey, "token_hash"),
    "user": (InternalUser, "user_id"),
    "team": (Team, "team_id"),
    "customer": (Customer, "end_user_id"),
    "organization": (Organization, "organization_id"),
    "tag": (Tag, "name"),
    "keymodel": (KeyModelSpend, "holder_id"),
}


class KeyChange(models.Model):
    """An append-only log of key, user, team, customer and budget changes: who changed what, when.

    Every server process applies the rows it has not seen to its key cache (keys.cache), so a change takes effect
    everywhere within a sync interval; the admin shows the log as the audit trail."""

    class Kind(models.TextChoices):
        KEY = "key"
        USER = "user"
        TEAM = "team"
        CUSTOMER = "customer"
        BUDGET = "budget"
        ORGANIZATION = "organization"
        TAG = "tag"
        KEY_MODEL = "keymodel"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    entity_id = models.CharField(
        max_length=200,
        help_text="token_hash (a key's identity), user_id, team_id, end_user_id, budget_id or organization_id",
    )
    action = models.CharField(max_length=20, default="updated", help_text="created, updated, deleted, blocked…")
    deleted = models.BooleanField(default=False, help_text="The entity no longer exists.")
    actor = models.CharField(max_length=200, blank=True, help_text="Who: the master key, an admin user, a task.")
    changes = models.JSONField(default=dict, blank=True, help_text="What: the fields set, as given.")
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["kind", "entity_id"])]

    def __str__(self) -> str:
        return f"#{self.id} {self.kind} {self.entity_id} {self.action}"


def record_change(
    kind: str, entity_id: str, *, action: str = "updated", deleted: bool = False, actor: str = "", changes=None
) -> None:
    """Tell every server process that a key, user or team changed (and keep who/what for the audit trail).

    Call it inside the transaction that made the change: the spend app's budget reset calls it too."""
    KeyChange.objects.create(
        kind=kind, entity_id=entity_id, action=action, deleted=deleted, actor=actor[:200], changes=changes or {}
    )


class Reservation(models.Model):
    """A call in flight's hold on a key's, user's, team's or customer's budget, kept by the database while Redis
    (which keeps them normally) is unreachable. A lease: its process renews `expires_at` while it lives
    (keys.limits_database)."""

    kind = models.CharField(max_length=16)
    entity_id = models.CharField(max_length=200)
    admission_id = models.CharField(max_length=64)
    amount = MoneyField()
    owner = models.CharField(max_length=64, help_text="The server process holding it.")
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["kind", "entity_id", "expires_at"]),
            models.Index(fields=["admission_id"]),
            models.Index(fields=["owner"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.entity_id}: {self.amount} until {self.expires_at:%H:%M:%S}"


class TeamAdministrator(models.Model):
    """A login (a Django user of the admin) that administers one team: the scope of the "Team admins" role.

    Apart from `InternalUser.teams`, which is who may call as the team: a team admin manages the team's keys,
    members and budgets in the admin (keys.roles.teams_in_scope), whether or not they call models."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_administrations")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="administrators")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="one_administration_per_user_and_team")]

    def __str__(self) -> str:
        return f"{self.user} administers {self.team}"
