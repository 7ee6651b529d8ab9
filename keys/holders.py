"""Tag holders and a key's per-model spend on the proxy's path: which limits a call's tags bring, and the spend row
a per-model budget starts when the key first calls that model.

Unlike customers, tags are not made on first sight: a call may carry any tag, and one nobody manages has no limits
(its spend is reported from the logs, spend.rollups' DailyTagSpend). The holders (/tag/new, the admin) are few, so
each process reads them all at once into the key cache (`KeyCache.tags`), and reads them again after any tag's
`KeyChange`: a call then costs no query for its tags.
"""

from django.db import transaction
from django.utils import timezone

from keys.budgets import InvalidModelBudget, model_budget
from keys.cache import key_cache, limits_of
from keys.caller import Caller, Limits
from keys.models import KeyChange, KeyModelSpend, Tag, VirtualKey, key_model_id, record_change
from keys.services import budget_reset_for
from keys.signals import period_started


def tag_limits(tag: Tag) -> Limits:
    return limits_of("tag", tag.name, f"tag {tag.name}", tag, tag.soft_budget)


def load_tags() -> dict[str, Limits]:
    return {tag.name: tag_limits(tag) for tag in Tag.objects.all()}


def call_tags(requested: list[str], caller: Caller) -> list[str]:
    """The tags a call carries, as its log keeps them: its own (metadata.tags or tags), then its key's, each once."""
    return list(dict.fromkeys([*requested, *caller.tags]))


async def tag_holders(tags: list[str]) -> tuple[Limits, ...]:
    """The limits of the tag holders among `tags` that have any (from this process's cache, read when needed)."""
    if not tags:
        return ()
    cache = key_cache()
    known = cache.tags
    if known is None:
        generation = cache.generation
        known = await cache.run(load_tags)
        if generation == cache.generation:  # no change applied meanwhile that this read may predate
            cache.tags = known
    held = (known.get(tag) for tag in tags)  # every one: the ledger charges every one
    return tuple(limits for limits in held if limits is not None and limits.limited)


def start_period(holder, kind: str, entity_id: str) -> None:
    """A holder whose spend counts from now: the spend app records where its logs begin (keys.signals)."""
    period_started.send(sender=type(holder), kind=kind, entity_id=entity_id, next_reset_at=holder.budget_reset_at)


def start_model_spend(token_hash: str, model: str) -> None:
    """Make the key's spend row for `model` if its model_max_budget has an entry for it and no row exists yet.

    The key's row is locked first, as the ledger locks it before charging a call of the key: every log of the key
    committed before is before the period's start, every one after is charged to the row."""
    with transaction.atomic():
        key = VirtualKey.objects.select_for_update().filter(token_hash=token_hash).first()
        holder_id = key_model_id(token_hash, model)
        if key is None or KeyModelSpend.objects.filter(holder_id=holder_id).exists():
            return
        try:
            budget = model_budget(key.model_max_budget[model])
        except (KeyError, InvalidModelBudget):
            return
        spend = KeyModelSpend.objects.create(
            holder_id=holder_id, key=key, model=model, budget_reset_at=budget_reset_for(budget.duration, timezone.now())
        )
        start_period(spend, KeyChange.Kind.KEY_MODEL, holder_id)
        record_change(KeyChange.Kind.KEY_MODEL, holder_id, action="created", actor="proxy", changes={"model": model})
