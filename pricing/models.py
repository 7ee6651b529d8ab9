"""The cost map's versions and entries, and the history of each deployment's custom pricing.

Prices are stored as exact decimal strings (in CharFields and JSON), not numbers: SQLite's NUMERIC would keep only
15 significant digits, and nothing here sums prices in SQL. The running cost map is always parsed from ``CostMapVersion.raw_json``; the entry rows exist for the admin.
"""

from django.db import models
from django.db.models import Q


class CostMapVersion(models.Model):
    """One copy of the cost map a refresh fetched (or the shipped snapshot), with what it changed.

    Exactly one version is active at a time (a partial unique constraint holds that even against two refreshes
    racing); every server process prices with the active one. A refresh that fails is kept as a ``failed`` version
    with its reason and never becomes active.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUPERSEDED = "superseded"
        FAILED = "failed"

    SHIPPED = "shipped"

    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the raw JSON bytes; empty if none arrived.")
    source = models.CharField(max_length=500, help_text='The URL it was fetched from, or "shipped".')
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    checked_at = models.DateTimeField(null=True, blank=True, help_text="When a refresh last found it unchanged.")
    activated_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, db_index=True)
    failure_reason = models.TextField(blank=True)
    entry_count = models.PositiveIntegerField(default=0)
    added_count = models.PositiveIntegerField(default=0)
    removed_count = models.PositiveIntegerField(default=0)
    changed_count = models.PositiveIntegerField(default=0)
    diff = models.JSONField(
        default=dict, blank=True, help_text='{"added": [...], "removed": [...], "changed": {model: {field: ...}}}'
    )
    raw_json = models.TextField(blank=True, help_text="The map as fetched; kept for active and superseded versions.")

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="active"), name="one_active_cost_map")
        ]

    def __str__(self) -> str:
        return f"cost map #{self.pk} ({self.status}, {self.sha256[:12] or 'no data'})"

    @property
    def label(self) -> str:
        """The version name spend logs record (``price_version``) and every process compares."""
        return version_label(self.pk, self.sha256)


def version_label(pk: int, sha256: str) -> str:
    return f"cost-map:{pk}@{sha256[:12]}"


class CostMapEntry(models.Model):
    """One model's entry in a cost map version, for the admin to list, search and filter.

    Kept for the active version only (a new active version replaces them); older versions keep their raw JSON.
    """

    version = models.ForeignKey(CostMapVersion, on_delete=models.CASCADE, related_name="entries")
    model_name = models.CharField(max_length=300, db_index=True)
    provider = models.CharField(max_length=100, blank=True, db_index=True)
    mode = models.CharField(max_length=50, blank=True, db_index=True)
    input_per_million = models.CharField(max_length=60, null=True, blank=True, help_text="USD per 1M input tokens.")
    output_per_million = models.CharField(max_length=60, null=True, blank=True)
    cache_read_per_million = models.CharField(max_length=60, null=True, blank=True)
    cache_write_per_million = models.CharField(max_length=60, null=True, blank=True)
    entry = models.JSONField(default=dict, help_text="The whole entry; prices as exact decimal strings.")

    class Meta:
        verbose_name_plural = "cost map entries"
        ordering = ["model_name"]
        constraints = [models.UniqueConstraint(fields=["version", "model_name"], name="one_entry_per_model")]

    def __str__(self) -> str:
        return self.model_name


class PriceRevision(models.Model):
    """One state of a deployment's custom pricing, kept when it changes: who set which prices, when and why.

    Append-only history. ``model_id`` is the deployment's id as text, not a foreign key, so the history outlives
    the deployment. ``prices`` holds only the fields that are set, as exact decimal strings; ``{}`` means the
    deployment went back to base_model / cost-map pricing.
    """

    model_id = models.CharField(max_length=100, db_index=True, help_text="The deployment's model_info.id.")
    model_name = models.CharField(max_length=200, blank=True, help_text="Its model group at the time.")
    prices = models.JSONField(default=dict, blank=True)
    base_model = models.CharField(max_length=300, blank=True)
    changed_by = models.CharField(max_length=150, blank=True, help_text="Username, or config / api.")
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        get_latest_by = "changed_at"

    def __str__(self) -> str:
        return f"{self.model_id} at {self.changed_at:%Y-%m-%d %H:%M}"

    @property
    def label(self) -> str:
        """The version name a spend log priced with this revision records."""
        return f"revision:{self.pk}"
