"""Reports read the ledger from a replica when there is one (``DATABASE_REPLICA_URL``); everything else stays on the
primary.

Which reads go to the replica is said where they are made, by ``.using(reporting_db())``: the reports, the spend
overview and the spend admin's lists of logs and rollups, whose totals are the rollups plus the logs not rolled up yet
read in one place (spend.selectors.CurrentSpend). A router that sent every read to the replica would break the
ledger: a budget checked against a replica a few hundred milliseconds behind lets calls through past it, and the
rollup, reconcile and retention must see what they are about to write. So the router routes no read; it only keeps
writes on the primary, whichever database a row was read from (Django would otherwise save a row read from the
replica back to it).
"""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

REPLICA = "replica"


def reporting_db() -> str:
    """The database reports read: the replica if one is configured, else the primary."""
    return REPLICA if REPLICA in settings.DATABASES else DEFAULT_DB_ALIAS


class PrimaryReplicaRouter:
    """Writes to the primary. Reads it leaves alone: they go where the caller says (the primary unless ``using``
    names the replica, or to the database of the row they follow a relation from)."""

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS
