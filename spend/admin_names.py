"""Spend logs and rollups in the admin name their key, team and user (keys.names) from the ledger's columns."""

from keys.names import names

EMPTY = "—"


# The spend-log / rollup column that names each kind.
COLUMNS = {"key": "key_hash", "team": "team_id", "user": "user_id", "customer": "end_user"}


def attach_names(rows: list) -> None:
    """Each row (a spend log or a day's rollup) gets ``names[kind]`` for its key, team and user: three queries for
    a page of rows, not three per row."""
    found = {kind: names(kind, (getattr(row, column) for row in rows)) for kind, column in COLUMNS.items()}
    for row in rows:
        row.names = {kind: found[kind].get(getattr(row, column)) for kind, column in COLUMNS.items()}


def name_column(kind: str, description: str):
    """A list column naming a row's key, team or user (the row has passed through ``attach_names``)."""

    def show(model_admin, row):
        named = getattr(row, "names", {}).get(kind)
        return named.html() if named else EMPTY

    show.short_description = description
    return show
