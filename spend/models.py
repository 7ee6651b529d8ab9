"""The spend ledger: one append-only row per proxied call."""

from django.db import models

MONEY = {"max_digits": 38, "decimal_places": 20}


class SpendLog(models.Model):
    """What one call cost and why: tokens, the price it was charged at, who pays. Never edited after writing."""

    class Status(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"
        CLIENT_DISCONNECTED = "client_disconnected"

    request_id = models.CharField(max_length=64, unique=True)
    call_type = models.CharField(max_length=20)
    key_hash = models.CharField(max_length=64, blank=True, db_index=True)
    user_id = models.CharField(max_length=200, blank=True, db_index=True)
    team_id = models.CharField(max_length=200, blank=True, db_index=True)
    requested_model = models.CharField(max_length=300)
    model_group = models.CharField(max_length=300, blank=True, db_index=True)
    deployment_id = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    provider_model = models.CharField(max_length=300, blank=True)
    api_base = models.CharField(max_length=500, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cache_creation_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(**MONEY, default=0)
    cost_breakdown = models.JSONField(default=dict, help_text="Exact decimal strings per part.")
    prices = models.JSONField(default=dict, help_text="The price entry charged, as exact decimal strings.")
    pricing_source = models.CharField(max_length=20, blank=True, db_index=True)
    price_version = models.CharField(max_length=200, blank=True)
    start_time = models.DateTimeField(db_index=True)
    end_time = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.SUCCESS, db_index=True)
    error_class = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    metadata = models.JSONField(default=dict, blank=True)
    request_tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-start_time"]
        indexes = [
            models.Index(fields=["team_id", "start_time"]),
            models.Index(fields=["key_hash", "start_time"]),
            models.Index(fields=["model_group", "start_time"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_group} {self.cost}"
