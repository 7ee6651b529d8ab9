"""The spend ledger: one append-only row per proxied call, and what is derived from it."""

from django.db import models

from pricing.fields import MoneyField
from pricing.money import usd


class EntityKind(models.TextChoices):
    """Who a call is charged to: every call charges its key, its key's user, its key's team and that team's
    organization, and the customer (end user) it names."""

    KEY = "key"
    USER = "user"
    TEAM = "team"
    CUSTOMER = "customer"
    ORGANIZATION = "organization"
    TAG = "tag"  # each tag a call carries (its own and its key's)
    KEY_MODEL = "keymodel"  # the key's spend on the call's model group, for a per-model budget


def token_counts(field_class: type[models.Field]) -> tuple[models.Field, ...]:
    """The five token counts a call is priced by (prompt, completion, cached, cache creation, reasoning; the order
    of spend.rollups.TOKENS): a call's own, or a day's sums in wider columns. Made in the class body that unpacks
    them, so each model keeps its field order."""
    return tuple(field_class(default=0) for _ in range(5))


class ChargedPrice(models.Model):
    """A price entry calls were charged at, stored once and named by a digest of its content (spend.log_rows).

    Every call of a deployment is charged at the same entry until its price changes: a log names the entry by its
    digest instead of copying it (~400 bytes of exact decimal strings for a cost-map entry, in every row). Never
    edited nor deleted: a log of any age can show the prices it was charged at."""

    digest = models.CharField(max_length=32, primary_key=True)
    entry = models.JSONField(help_text="The price entry charged, as exact decimal strings.")
    first_seen = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.digest


class SpendLog(models.Model):
    """What one call cost and why: tokens, the price it was charged at, who pays. Never edited after writing."""

    class Status(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"
        CLIENT_DISCONNECTED = "client_disconnected"
        INTERRUPTED = "interrupted"  # its server process died mid-call: charged from the spend journal

    request_id = models.CharField(max_length=64)
    call_type = models.CharField(max_length=20)
    key_hash = models.CharField(max_length=64, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    team_id = models.CharField(max_length=200, blank=True)
    end_user = models.CharField(max_length=200, blank=True, help_text="The customer the call was for (`user`).")
    organization_id = models.CharField(max_length=200, blank=True, help_text="The organization of the key's team.")
    requested_model = models.CharField(max_length=300)
    model_group = models.CharField(max_length=300, blank=True)
    deployment_id = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    provider_model = models.CharField(max_length=300, blank=True)
    api_base = models.CharField(max_length=500, blank=True)
    prompt_tokens, completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens = token_counts(
        models.PositiveIntegerField
    )
    cost = MoneyField(default=0)
    cost_breakdown = models.JSONField(default=dict, help_text="Exact decimal strings per part.")
    # No database constraint, nor an index: a log's price is looked up from the log, never the other way, and a
    # constraint would tie the ledger's partitions to this table.
    charged_price = models.ForeignKey(
        ChargedPrice,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
        help_text="The price entry charged (none for an unpriced call).",
    )
    pricing_source = models.CharField(max_length=20, blank=True)
    price_version = models.CharField(max_length=200, blank=True)
    start_time = models.DateTimeField(db_index=True)
    end_time = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.SUCCESS)
    error_class = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    metadata = models.JSONField(default=dict, blank=True)
    request_tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-start_time"]
        # Every call inserts a row into each of these: only what queries use. No single-column index where a
        # composite one leads with the column, and no varchar_pattern_ops twin (db_index and unique make one on
        # PostgreSQL, for LIKE 'prefix%' queries the gateway never runs).
        constraints = [models.UniqueConstraint(fields=["request_id"], name="spend_log_request_id_unique")]
        indexes = [
            models.Index(fields=["status"]),
            models.Index(fields=["pricing_source"]),
            # A payer's logs newest first (-start_time, -id) read straight off its index, each day's partition in
            # turn, stopping at the page's end: no sort of all its logs in the range (issue 22).
            models.Index(fields=["team_id", "start_time", "id"]),
            models.Index(fields=["key_hash", "start_time", "id"]),
            models.Index(fields=["user_id", "start_time", "id"]),
            models.Index(fields=["model_group", "start_time"]),
            models.Index(fields=["end_user", "start_time"]),
            models.Index(fields=["organization_id", "start_time"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_group} {usd(self.cost)}"

    @property
    def prices(self) -> dict:
        """The price entry charged, as exact decimal strings ({} for an unpriced call)."""
        return {} if self.charged_price_id is None else self.charged_price.entry


class BudgetReset(models.Model):
    """One budget period of a key, user or team ending: append-only.

    ``log_watermark`` is the highest SpendLog id committed when the period ended, read while the entity's row was
    locked. The ledger locks the same row before it writes a call's log, so every log charged to the new period
    has a higher id: "the logs since the last reset" are exactly the entity's logs with ``id > log_watermark``.
    """

    kind = models.CharField(max_length=16, choices=EntityKind.choices)
    entity_id = models.CharField(max_length=200, help_text="token_hash, user_id or team_id")
    reset_at = models.DateTimeField(help_text="When the reset ran.")
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="The budget_reset_at it was due at.")
    next_reset_at = models.DateTimeField(null=True, blank=True)
    log_watermark = models.BigIntegerField()
    period_spend = MoneyField(help_text="The spend the period ended with (set back to 0).")

    class Meta:
        indexes = [models.Index(fields=["kind", "entity_id", "-log_watermark"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.entity_id} reset at {self.reset_at:%Y-%m-%d %H:%M}"


class PrunedSpend(models.Model):
    """What retention deleted from an entity's current budget period: append-only.

    Pruning raw logs must not break ``reconcile_spend``: the cost of the pruned logs that belonged to the entity's
    period (all with ids up to ``last_log_id``) is kept here. It counts while the period lasts, i.e. while
    ``last_log_id`` is above the entity's latest reset watermark.
    """

    kind = models.CharField(max_length=16, choices=EntityKind.choices)
    entity_id = models.CharField(max_length=200)
    last_log_id = models.BigIntegerField()
    cost = MoneyField()
    requests = models.PositiveIntegerField()
    pruned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "entity_id", "last_log_id"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.entity_id}: {self.requests} pruned logs"


# A rollup row's dimensions (spend.rollups.DIMENSIONS), in the order of its unique constraint.
ROLLUP_DIMENSIONS = ("team_id", "key_hash", "user_id", "end_user", "organization_id", "model_group", "provider")


class DailyTotals(models.Model):
    """A day's totals per rollup dimension (spend.rollups.DIMENSIONS) with exact cost: DailySpend's, and per tag
    DailyTaggedSpend's."""

    day = models.DateField()
    team_id = models.CharField(max_length=200, blank=True)
    key_hash = models.CharField(max_length=64, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    end_user = models.CharField(max_length=200, blank=True)
    organization_id = models.CharField(max_length=200, blank=True)
    model_group = models.CharField(max_length=300, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    requests = models.PositiveIntegerField(default=0)
    failed_requests = models.PositiveIntegerField(default=0)
    unpriced_requests = models.PositiveIntegerField(default=0)
    prompt_tokens, completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens = token_counts(
        models.PositiveBigIntegerField
    )
    cost = MoneyField(default=0)

    class Meta:
        abstract = True


class DailySpend(DailyTotals):
    """Spend logs rolled up per day (in settings.TIME_ZONE) × team × key × user × customer × organization × model group
    × provider.

    Derived, never edited by hand: ``rollup_spend`` replaces a day's rows whole from its logs.
    """

    class Meta:
        verbose_name_plural = "daily spend"
        constraints = [
            models.UniqueConstraint(
                fields=["day", *ROLLUP_DIMENSIONS],
                name="daily_spend_unique",
            )
        ]
        indexes = [
            models.Index(fields=["day", "team_id"]),
            models.Index(fields=["day", "model_group"]),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.team_id or '-'} {self.model_group}: {usd(self.cost)}"


class DailyTagSpend(models.Model):
    """Spend logs rolled up per day × request tag × model group: what /spend/tags and group_by=tag read.

    A call with several tags counts whole under each of them, as LiteLLM's DailyTagSpend does, so tag totals do not
    add up to the day's spend. Derived like DailySpend: ``rollup_spend`` replaces a day's rows whole from its logs.
    """

    day = models.DateField()
    tag = models.TextField()
    model_group = models.CharField(max_length=300, blank=True)
    requests = models.PositiveIntegerField(default=0)
    failed_requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = MoneyField(default=0)

    class Meta:
        verbose_name_plural = "daily tag spend"
        constraints = [models.UniqueConstraint(fields=["day", "tag", "model_group"], name="daily_tag_spend_unique")]

    def __str__(self) -> str:
        return f"{self.day} {self.tag} {self.model_group}: {self.cost}"


class DailyTaggedSpend(DailyTotals):
    """Spend logs rolled up per day × request tag × DailySpend's dimensions, with DailySpend's sums: what the spend
    overview reads when it stacks or narrows by tag (spend.overview.TaggedSpend).

    A call with several tags counts whole under each of them (once each, however often it repeats one), a call with
    none under "(untagged)", so a day's rows add up to more than its spend. Derived like DailySpend, in the same
    run: ``rollup_spend`` replaces a day's rows whole from its logs, so the rows hold exactly the logs up to
    RollupState.last_log_id.
    """

    day = models.DateField()
    tag = models.TextField()

    class Meta:
        verbose_name_plural = "daily tagged spend"
        constraints = [
            models.UniqueConstraint(
                fields=["day", "tag", *ROLLUP_DIMENSIONS],
                name="daily_tagged_spend_unique",
            )
        ]
        indexes = [models.Index(fields=["tag", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.tag} {self.team_id or '-'} {self.model_group}: {usd(self.cost)}"


class RollupState(models.Model):
    """The rollup's progress (one row): its lock, the highest log id it has seen, and the days it has kept."""

    last_log_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rolled up to log {self.last_log_id}"


class ReconcileCheckpoint(models.Model):
    """How far ``reconcile_spend`` has summed one budget holder's current period: derived, rewritten by each run.

    ``spend`` is the exact cost of the holder's logs with ids in (``period_watermark``, ``log_id``], pruned ones
    included (through their PrunedSpend rows). The next run reads only the logs after ``log_id``. A budget reset
    starts a new period, so a new checkpoint; ``reconcile_spend --full`` ignores them all and writes them again.
    """

    kind = models.CharField(max_length=16, choices=EntityKind.choices)
    entity_id = models.CharField(max_length=200)
    period_watermark = models.BigIntegerField(help_text="The log watermark of the reset that began the period.")
    log_id = models.BigIntegerField(help_text="The logs up to this id are summed; none below it can still commit.")
    spend = MoneyField(help_text="Their exact cost.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "entity_id", "period_watermark"], name="reconcile_checkpoint_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.entity_id}: summed to log {self.log_id}"
