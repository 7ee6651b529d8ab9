"""Who pays for a call: its virtual key, the key's user, the key's team and that team's organization, and the
customer (end user) it names, each with a running period spend.

The models live in the keys app; spend reaches them through the app registry, by label, so the ledger does not
care which of them a given installation has populated.

Most name one entity per log, in one column. Two do not: a log charges each tag it carries (`request_tags`, a list),
and a key's spend on the log's model group (named by both columns, for a per-model budget).
"""

from dataclasses import dataclass
from decimal import Decimal, localcontext

from django.apps import apps
from django.db import connections, models

from keys.models import key_model_id
from pricing.money import exact_sum
from spend.models import EntityKind

# A budget holder's id is at most this long (Reservation, BudgetReset and KeyChange hold 200 characters).
_MAX_ID_LENGTH = 200


def _field(log, name: str):
    """A field of a SpendEntry, a SpendLog, or a dict of a log's values."""
    return log[name] if isinstance(log, dict) else getattr(log, name)


@dataclass(frozen=True, slots=True)
class Payer:
    """One kind of entity a call is charged to, and how a spend log names it."""

    kind: EntityKind
    model_label: str
    id_field: str  # the entity's own identifier
    log_field: str  # the SpendLog (and SpendEntry) field holding that identifier

    @property
    def model(self) -> type[models.Model]:
        return apps.get_model(self.model_label)

    def lookup(self, entity_id: str) -> dict:
        return {self.id_field: entity_id}

    @property
    def log_fields(self) -> tuple[str, ...]:
        """The log fields that name this kind's entities."""
        return (self.log_field,)

    def ids_in(self, log) -> set[str]:
        """The entities of this kind a log (a SpendEntry, a SpendLog, or a dict of its `log_fields`) is charged to."""
        entity_id = _field(log, self.log_field)
        return {entity_id} if entity_id else set()

    def logged_cost(self, logs: models.QuerySet, entity_id: str) -> Decimal:
        """The exact cost of those of `logs` charged to the entity."""
        return exact_sum(logs.filter(**{self.log_field: entity_id}), "cost")

    def holders_among(self, entity_ids: set[str]) -> set[str]:
        """Those of `entity_ids` whose pruned or swept logs are kept account of: all of them (a key, user, team or
        customer made again later still counts the logs of its id)."""
        return entity_ids


@dataclass(frozen=True, slots=True)
class _MadeHolderPayer(Payer):
    """A kind whose holders are made on purpose, their spend counting from then: a log names one whether or not it
    exists, and only those that exist keep account of it."""

    def holders_among(self, entity_ids: set[str]) -> set[str]:
        if not entity_ids:
            return set()
        return set(
            self.model.objects.filter(**{f"{self.id_field}__in": entity_ids}).values_list(self.id_field, flat=True)
        )


@dataclass(frozen=True, slots=True)
class TagPayer(_MadeHolderPayer):
    """Each tag a log carries, once (a tag longer than a holder's id is never a holder)."""

    def ids_in(self, log) -> set[str]:
        tags = _field(log, self.log_field) or ()
        return {tag for tag in tags if isinstance(tag, str) and 0 < len(tag) <= _MAX_ID_LENGTH}

    def logged_cost(self, logs: models.QuerySet, entity_id: str) -> Decimal:
        if connections[logs.db].vendor == "postgresql":
            return exact_sum(logs.filter(request_tags__contains=[entity_id]), "cost")
        # SQLite cannot look inside a JSON list: the logs are read (reconcile's occasional pass, on small installs).
        with localcontext(prec=80):
            rows = logs.values_list("request_tags", "cost").iterator()
            return sum((cost for tags, cost in rows if isinstance(tags, list) and entity_id in tags), Decimal(0))


@dataclass(frozen=True, slots=True)
class KeyModelPayer(_MadeHolderPayer):
    """The key's spend on the log's model group (a no-op charge unless the key has a budget for that group)."""

    @property
    def log_fields(self) -> tuple[str, ...]:
        return ("key_hash", "model_group")

    def ids_in(self, log) -> set[str]:
        key_hash, group = _field(log, "key_hash"), _field(log, "model_group")
        holder = key_model_id(key_hash, group)
        return {holder} if key_hash and group and len(holder) <= _MAX_ID_LENGTH else set()

    def logged_cost(self, logs: models.QuerySet, entity_id: str) -> Decimal:
        key_hash, _, group = entity_id.partition(":")  # the key's identity is 64 hex digits: the first ":" ends it
        return exact_sum(logs.filter(key_hash=key_hash, model_group=group), "cost")


PAYERS = (
    Payer(EntityKind.KEY, "keys.VirtualKey", "token_hash", "key_hash"),
    Payer(EntityKind.USER, "keys.InternalUser", "user_id", "user_id"),
    Payer(EntityKind.TEAM, "keys.Team", "team_id", "team_id"),
    Payer(EntityKind.CUSTOMER, "keys.Customer", "end_user_id", "end_user"),
    Payer(EntityKind.ORGANIZATION, "keys.Organization", "organization_id", "organization_id"),
    TagPayer(EntityKind.TAG, "keys.Tag", "name", "request_tags"),
    KeyModelPayer(EntityKind.KEY_MODEL, "keys.KeyModelSpend", "holder_id", ""),
)
PAYER_BY_KIND = {payer.kind: payer for payer in PAYERS}
# The log fields that name a call's payers: logs grouped by them are charged to the same holders.
LOG_FIELDS = tuple(sorted({name for payer in PAYERS for name in payer.log_fields}))
