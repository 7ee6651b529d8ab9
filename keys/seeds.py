"""What budget counters start from: each entity's spend, period and epoch as the database holds them now.

The counters (Redis's, this process's) are caches of the ledger. One that has lost its state (Redis restarted
empty, flushed, evicted a key) or that holds an older epoch than the database (spend set by hand) starts again
from here, never from a process's cached key row, which is as old as the moment the process loaded it: an
exhausted key whose counters were re-seeded from that copy got its whole budget back.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from keys.budgets import period_of
from keys.cache import key_cache
from keys.caller import Limits
from keys.models import BUDGET_HOLDERS


def read_seeds(limits: Sequence[Limits]) -> list[Limits]:
    """`limits` with the spend, period and epoch the database holds now (one query per kind of entity). An entity
    the database no longer has keeps what it had."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for entity in limits:
        wanted[entity.kind].append(entity.entity_id)
    fresh: dict[tuple[str, str], dict] = {}
    for kind, entity_ids in wanted.items():
        model, id_field = BUDGET_HOLDERS[kind]
        rows = model.objects.filter(**{f"{id_field}__in": entity_ids})
        for entity_id, spend, reset_at, epoch in rows.values_list(id_field, "spend", "budget_reset_at", "spend_epoch"):
            fresh[(kind, entity_id)] = {"spend": spend, "period": period_of(reset_at), "epoch": epoch}
    return [replace(entity, **fresh.get((entity.kind, entity.entity_id), {})) for entity in limits]


async def seeds(limits: Sequence[Limits]) -> list[Limits]:
    """`read_seeds` off the event loop, on the key cache's reader threads."""
    return await key_cache().run(read_seeds, limits)
