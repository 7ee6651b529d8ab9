"""Deployments (LiteLLM's model_list entries), the router's settings and the audit trail of people's changes."""

import uuid
from decimal import Decimal

from django.db import models, transaction
from django.utils import timezone

from pricing.audit import ActorType
from pricing.fields import MoneyField
from pricing.revisions import record_price_revision

PRICE_FIELD_OPTIONS = {"null": True, "blank": True}

# Custom pricing a deployment may carry in model_info; any other `*cost*` field is kept in extra_pricing.
CUSTOM_PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "input_cost_per_second",
    "output_cost_per_second",
    "output_cost_per_reasoning_token",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
)


def new_model_id() -> str:
    return uuid.uuid4().hex


class Deployment(models.Model):
    """One upstream model a model group routes to: LiteLLM's `model_list` entry."""

    class Source(models.TextChoices):
        CONFIG = "config", "config.yaml"
        ADMIN = "admin", "admin"
        API = "api", "API"

    model_id = models.CharField(max_length=100, unique=True, default=new_model_id, help_text="model_info.id")
    model_name = models.CharField(max_length=200, db_index=True, help_text="The model group clients ask for.")
    litellm_model = models.CharField(max_length=300, help_text="provider/model, as litellm_params.model")
    api_base = models.CharField(max_length=500, blank=True)
    api_version = models.CharField(max_length=50, blank=True)
    api_key = models.TextField(blank=True, help_text="Encrypted, or an os.environ/NAME reference.")
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds; the router's timeout when empty.")
    rpm = models.PositiveIntegerField(null=True, blank=True)
    tpm = models.PositiveIntegerField(null=True, blank=True)
    weight = models.PositiveIntegerField(null=True, blank=True)
    extra_params = models.JSONField(default=dict, blank=True, help_text="Other litellm_params (secrets encrypted).")
    base_model = models.CharField(max_length=300, blank=True, help_text="Cost-map entry to price this deployment by.")
    input_cost_per_token = MoneyField(**PRICE_FIELD_OPTIONS)
    output_cost_per_token = MoneyField(**PRICE_FIELD_OPTIONS)
    cache_read_input_token_cost = MoneyField(**PRICE_FIELD_OPTIONS)
    cache_creation_input_token_cost = MoneyField(**PRICE_FIELD_OPTIONS)
    input_cost_per_second = MoneyField(**PRICE_FIELD_OPTIONS)
    output_cost_per_second = MoneyField(**PRICE_FIELD_OPTIONS)
    output_cost_per_reasoning_token = MoneyField(**PRICE_FIELD_OPTIONS)
    input_cost_per_audio_token = MoneyField(**PRICE_FIELD_OPTIONS)
    output_cost_per_audio_token = MoneyField(**PRICE_FIELD_OPTIONS)
    extra_pricing = models.JSONField(
        default=dict, blank=True, help_text="Other model_info price fields, as exact decimal strings."
    )
    model_info = models.JSONField(default=dict, blank=True, help_text="Other model_info fields.")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.ADMIN)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(
        max_length=300,
        blank=True,
        help_text="Why Tollgate cannot serve this deployment (a provider it has no adapter for): it stays disabled.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_name", "id"]

    def __str__(self) -> str:
        return f"{self.model_name} → {self.litellm_model}"

    @property
    def provider(self) -> str:
        return self.litellm_model.split("/", 1)[0] if "/" in self.litellm_model else "openai"

    @property
    def access_groups(self) -> list[str]:
        """model_info.access_groups: names a key or team may list to reach this deployment's model group."""
        return list(self.model_info.get("access_groups") or ())

    @property
    def provider_model(self) -> str:
        return self.litellm_model.split("/", 1)[1] if "/" in self.litellm_model else self.litellm_model

    def custom_pricing(self) -> dict:
        """The custom price fields that are set, as Decimals (empty when the deployment has none)."""
        prices = {name: getattr(self, name) for name in CUSTOM_PRICE_FIELDS if getattr(self, name) is not None}
        prices.update({name: Decimal(value) for name, value in self.extra_pricing.items()})
        return prices

    def record_price_revision(self, *, changed_by: str, note: str) -> None:
        """Keep this deployment's pricing in its history if it changed (call it in the saving transaction)."""
        record_price_revision(
            model_id=self.model_id,
            model_name=self.model_name,
            custom_prices=self.custom_pricing(),
            base_model=self.base_model,
            changed_by=changed_by,
            note=note,
        )

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        bump_routing_version_on_commit()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        bump_routing_version_on_commit()
        return result


class RouterSettings(models.Model):
    """LiteLLM's router_settings: one row."""

    routing_strategy = models.CharField(max_length=50, default="simple-shuffle")
    routing_strategy_args = models.JSONField(
        default=dict, blank=True, help_text="latency-based-routing: ttl (seconds), lowest_latency_buffer (fraction)."
    )
    num_retries = models.PositiveIntegerField(default=2)
    timeout = models.FloatField(default=600.0, help_text="Seconds per upstream attempt.")
    cooldown_time = models.FloatField(default=5.0, help_text="Seconds a failing deployment is skipped.")
    allowed_fails = models.PositiveIntegerField(default=3, help_text="Failures within a minute before cooldown.")
    fallbacks = models.JSONField(default=list, blank=True, help_text='[{"group": ["fallback-group", ...]}]')

    class Meta:
        verbose_name_plural = "router settings"

    def __str__(self) -> str:
        return "Router settings"

    @classmethod
    def load(cls) -> "RouterSettings":
        return cls.objects.get_or_create(pk=1)[0]

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)
        bump_routing_version_on_commit()


class RoutingVersion(models.Model):
    """A counter every server process polls: when it moves, deployments and router settings are reloaded."""

    version = models.PositiveBigIntegerField(default=0)


def bump_routing_version_on_commit() -> None:
    """Bump the routing version once the current transaction commits: once, however many rows it saves (a config
    import of 500 deployments made 500 bumps, each a commit of its own: 0.8 s of the server's start)."""
    pending = transaction.get_connection().run_on_commit
    if not any(function is bump_routing_version for _savepoints, function, _robust in pending):
        transaction.on_commit(bump_routing_version)


def bump_routing_version() -> None:
    updated = RoutingVersion.objects.filter(pk=1).update(version=models.F("version") + 1)
    if not updated:
        RoutingVersion.objects.get_or_create(pk=1, defaults={"version": 1})


class AuditEntry(models.Model):
    """One change a person made (gateway.audit records it): who, from where, when, to what, and the fields' values
    before and after. Append-only: the admin shows and exports it, and nobody may add, change or delete a row.

    Secrets are never stored: provider keys, key hashes and passwords appear as "[hidden]" (changed or not)."""

    class Action(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        DELETED = "deleted"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=200, help_text='An admin login, "master key", "key sk-...abcd (alias)"…')
    actor_type = models.CharField(max_length=10, choices=ActorType.CHOICES)
    address = models.CharField(max_length=64, blank=True, help_text="The client's address, as the throttle reads it.")
    model = models.CharField(max_length=100, db_index=True, help_text="app_label.model")
    object_id = models.CharField(max_length=200)
    object_repr = models.CharField(max_length=300, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    before = models.JSONField(null=True, blank=True, help_text="Changed fields' values before (all, when deleted).")
    after = models.JSONField(null=True, blank=True, help_text="Changed fields' values after (all, when created).")

    class Meta:
        ordering = ["-at", "-id"]
        default_permissions = ("view",)  # history: no role, Admins included, may add, change or delete it
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["model", "object_id"], name="audit_entry_by_object")]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.model} {self.object_repr or self.object_id}"
