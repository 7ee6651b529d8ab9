"""Who pays for a call: its virtual key, the key's user and the key's team, and the customer (end user) it names,
each with a running period spend.

The models live in the keys app; spend reaches them through the app registry, by label, so the ledger does not
care which of them a given installation has populated.
"""

from dataclasses import dataclass

from django.apps import apps
from django.db import models

from spend.models import EntityKind


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


PAYERS = (
    Payer(EntityKind.KEY, "keys.VirtualKey", "token_hash", "key_hash"),
    Payer(EntityKind.USER, "keys.InternalUser", "user_id", "user_id"),
    Payer(EntityKind.TEAM, "keys.Team", "team_id", "team_id"),
    Payer(EntityKind.CUSTOMER, "keys.Customer", "end_user_id", "end_user"),
)
PAYER_BY_KIND = {payer.kind: payer for payer in PAYERS}
