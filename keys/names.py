"""Keys, teams and users by the names people know them by, from the ids the ledger and the change log keep: a key by
its alias (its hint when it has none), a team by its alias, a user by their email; each linked to its admin page.
The spend log, the rollups, budget resets and key changes keep ids only (a key's token_hash, a team_id, a user_id)
so that renaming costs nothing: the names of a page's ids are read in one query per kind."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from keys.models import Customer, InternalUser, Team, VirtualKey


@dataclass(frozen=True, slots=True)
class Named:
    label: str
    url: str  # the admin change page; empty for an entity deleted since

    def html(self) -> SafeString:
        if not self.url:
            return format_html('<span title="deleted since">{}</span>', self.label)
        return format_html('<a href="{}">{}</a>', self.url, self.label)


# kind: (model, the id field the ledger names it by, the fields its label is read from, best first)
KINDS = {
    "key": (VirtualKey, "token_hash", ("key_alias", "key_hint")),
    "team": (Team, "team_id", ("team_alias",)),
    "user": (InternalUser, "user_id", ("user_email",)),
    "customer": (Customer, "end_user_id", ("alias",)),
}


# What an id names once its key or team is deleted. A key is known by a hash, and a hash (or a prefix of one) is
# not a name; the spend log keeps no alias of its own to fall back on. A user's or customer's id is one the caller
# chose, a name in itself.
GONE = {"key": "(deleted key)", "team": "(deleted team)"}


def names(kind: str, ids: Iterable[str]) -> dict[str, Named]:
    """The name and admin page of each id of one kind, in one query (a kind without a page here: the id)."""
    wanted = {entity_id for entity_id in ids if entity_id}
    if kind not in KINDS:
        return {entity_id: Named(entity_id, "") for entity_id in wanted}
    model, id_field, label_fields = KINDS[kind]
    found = {}
    change = f"admin:{model._meta.app_label}_{model._meta.model_name}_change"
    for row in model.objects.filter(**{f"{id_field}__in": wanted}).values("pk", id_field, *label_fields):
        label = next((row[field] for field in label_fields if row[field]), row[id_field])
        found[row[id_field]] = Named(label, reverse(change, args=[row["pk"]]))
    return {entity_id: found.get(entity_id) or Named(GONE.get(kind, entity_id), "") for entity_id in wanted}


def known_labels(kind: str, ids: Iterable[str]) -> dict[str, str]:
    """The label of each id that still names a key, team, user or customer; an id named by nothing any more is left
    out, for an API that answers with the id itself instead (LiteLLM's team_name falls back to the team id)."""
    return {entity_id: named.label for entity_id, named in names(kind, ids).items() if named.url}


def attach_entity_names(rows: list) -> None:
    """Each row naming one entity by ``kind`` and ``entity_id`` (a budget reset) gets ``named``: a query per kind."""
    found = {kind: names(kind, (row.entity_id for row in rows if row.kind == kind)) for kind in {r.kind for r in rows}}
    for row in rows:
        row.named = found[row.kind][row.entity_id]


def ids_named(kind: str, text: str) -> list[str]:
    """The ids of the keys, teams, users or customers a person may mean by ``text``: its id, or exactly one of its
    names (case-insensitive), as the spend-log search box takes them."""
    model, id_field, label_fields = KINDS[kind]
    matches = Q(**{id_field: text})
    for field in label_fields:
        matches |= Q(**{f"{field}__iexact": text})
    return list(model.objects.filter(matches).values_list(id_field, flat=True)[:100])
