"""What budget counters start from: each entity's spend, period and epoch as the database holds them now.

The counters (Redis's, this process's) are caches of the ledger. One that has lost its state (Redis restarted
empty, flushed, evicted a key) or that holds an older epoch than the database (spend set by hand) starts again
from here, never from a process's cached key row, which is as old as the moment the process loaded it: an
exhausted key whose counters were re-seeded from that copy got its whole budget back.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from keys.cache import key_cache, limits_of
from keys.caller import Limits
from keys.models import BUDGET_HOLDERS


def read_seeds(limits: Sequence[Limits]) -> list[Limits]:
    """`limits` with the spend, period and epoch the database holds now (one query per kind of entity). An entity
    the database no longer has keeps what it had."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for entity in limits:
        wanted[entity.kind].append(entity.entity_id)
    fresh: dict[tuple[str, str], Limits] = {}
    for kind, entity_ids in wanted.items():
        model, id_field = BUDGET_HOLDERS[kind]
        for row in model.objects.filter(**{f"{id_field}__in": entity_ids}):
            entity_id = getattr(row, id_field)
            fresh[(kind, entity_id)] = limits_of(kind, entity_id, "", row)
    seeded = []
    for entity in limits:
        now = fresh.get((entity.kind, entity.entity_id))
        seeded.append(entity if now is None else replace(entity, spend=now.spend, period=now.period, epoch=now.epoch))
    return seeded


async def seeds(limits: Sequence[Limits]) -> list[Limits]:
    """`read_seeds` off the event loop, on the key cache's reader threads."""
    return await key_cache().run(read_seeds, limits)
