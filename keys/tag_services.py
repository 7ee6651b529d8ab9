"""Services that change tag holders, as LiteLLM's /tag/* do: each runs in one transaction that appends its
`KeyChange` (every process reads its tag holders again) and syncs this process's cache when it commits.

A tag's spend counts from when it is made (keys.holders.start_period): calls that carried the tag before were not
held to its budget, and are in its reports (the logs, DailyTagSpend), not its spend. Deleting a tag keeps its logs;
made again, it starts from 0.
"""

from django.db import transaction
from django.utils import timezone

from keys.customer_services import BUDGET_FIELDS, AlreadyExists
from keys.holders import start_period
from keys.models import KeyChange, Tag, record_change
from keys.services import NotFound, _after_commit, _apply_budget_fields, _audit

# A budget's limits (per-model budgets are a key's here, not a tag's), and the tag's own description and metadata.
TAG_FIELDS = ("description", "metadata", *(name for name in BUDGET_FIELDS if name != "model_max_budget"))
_TAG_EMPTY = {"description": str, "budget_duration": str, "metadata": dict}


def find_tag(name: str, param: str = "name") -> Tag:
    tag = Tag.objects.filter(name=name).first()
    if tag is None:
        raise NotFound(f"Tag not found: {name}", param=param)
    return tag


@transaction.atomic
def create_tag(data: dict, *, actor: str) -> Tag:
    name = data["name"]
    if Tag.objects.filter(name=name).exists():
        raise AlreadyExists(f"Tag already exists: name={name}", param="name")
    tag = Tag(name=name, created_by=actor)
    _apply_budget_fields(tag, data, TAG_FIELDS, _TAG_EMPTY, timezone.now())
    tag.save()
    start_period(tag, KeyChange.Kind.TAG, name)
    record_change(KeyChange.Kind.TAG, name, action="created", actor=actor, changes=_audit(data))
    _after_commit()
    return tag


@transaction.atomic
def update_tag(tag: Tag, data: dict, *, actor: str) -> Tag:
    """Change a tag's limits; a budget_duration given starts a period now, as a key's does."""
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    _apply_budget_fields(tag, data, TAG_FIELDS, _TAG_EMPTY, timezone.now())
    tag.save()
    record_change(KeyChange.Kind.TAG, tag.name, action="updated", actor=actor, changes=_audit(data))
    _after_commit()
    return tag


@transaction.atomic
def delete_tags(tags: list[Tag], *, actor: str) -> list[str]:
    names = [tag.name for tag in tags]
    for name in names:
        record_change(KeyChange.Kind.TAG, name, action="deleted", deleted=True, actor=actor)
    Tag.objects.filter(pk__in=[tag.pk for tag in tags]).delete()
    _after_commit()
    return names
