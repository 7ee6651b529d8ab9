"""What the spend overview reads, apart from the page: names for the ledger's ids, spend by tag, and each team's
month so far (its burn-down against its budget and a month-end forecast).

The ledger names its payers by id (a key by the hash of its first secret, a team and a user by their ids): people
know them by alias, hint and email, so every id is turned into a name (keys.names, as the admin names them), in
one query per kind of id.
"""

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import connections
from django.db.models import QuerySet
from django.http import Http404

from keys.models import InternalUser, Tag, Team, VirtualKey
from keys.names import names
from keys.roles import teams_in_scope
from pricing.money import ZERO
from spend.models import DailyTaggedSpend
from spend.rollups import DIMENSIONS as ROLLUP_DIMENSIONS
from spend.rollups import UNTAGGED, tagged_totals
from spend.selectors import CurrentSpend, read_current_spend

# What the overview stacks and narrows by: the page's name for it, and the ledger's column (tags are not a column
# of the rollups: a call has any number of them). A customer is the end user a call names (its `user` field).
DIMENSIONS = {
    "key": "key_hash", "user": "user_id", "customer": "end_user", "team": "team_id", "tag": "tag",
    "model": "model_group",
}  # fmt: skip
TAG = "tag"
_KIND_OF = {column: kind for kind, column in DIMENSIONS.items()}  # the ledger's column -> keys.names's kind
NONE = {"key_hash": "(no key)", "user_id": "(no user)", "end_user": "(no customer)", "team_id": "(no team)",
        "model_group": "(no model)"}  # fmt: skip


def entity_names(column: str, values) -> dict[str, str]:
    """The name people know each value of ``column`` by (keys.names: a key's alias or hint, a team's alias, a user's
    email, a customer's alias; a key or team deleted since is named as such, never by its hash); an empty value is
    the ledger's "no key", "no team"... and a tag or model group is its own name."""
    values = set(values)
    found = names(_KIND_OF.get(column, column), values)
    empty = NONE.get(column, UNTAGGED)
    return {value: found[value].label if value else empty for value in values}


def team_scope(user) -> list[str] | None:
    """The teams whose spend a login may see here: None for every team (who may read the spend logs: Finance,
    Admins), a Team admin's own teams' ids (issue 23); any other login is refused."""
    if user.has_perm("spend.view_spendlog"):
        return None
    teams = teams_in_scope(user)
    if teams is None:
        raise PermissionDenied("The spend overview is for Admins, Finance and Team admins.")
    return list(teams.values_list("team_id", flat=True))


# What the overview may be narrowed to, per dimension, for a login scoped to some teams: the rows tying it to them.
_IN_TEAMS = {
    "team": lambda value, team_ids: value in team_ids,
    "key": lambda value, team_ids: VirtualKey.objects.filter(token_hash=value, team__team_id__in=team_ids).exists(),
    "user": lambda value, team_ids: InternalUser.objects.filter(user_id=value, teams__team_id__in=team_ids).exists(),
}


def scoped_filters(filters: dict, narrowed: dict[str, str], team_ids: list[str] | None) -> dict:
    """The ledger filters narrowed to a scoped login's teams. A team, key or user outside them is missing (404, as
    in the admin: not a 403 that confirms it exists); a customer, tag or model shows only its calls in those teams."""
    if team_ids is None:
        return filters
    for name, belongs in _IN_TEAMS.items():
        if name in narrowed and not belongs(narrowed[name], team_ids):
            raise Http404(f"No {name} {narrowed[name]!r} among your teams.")
    return {**filters, "team_id__in": team_ids}


class TaggedSpend(CurrentSpend):
    """Totals per tag (a call counts once under each of its tags, a call with none under UNTAGGED) of every committed
    call between two days, narrowed to one ``tag`` if given: the rollup by day, tag and every rollup dimension
    (DailyTaggedSpend) plus the logs above its watermark, the tail, split by tag here. Only the tail is read from
    the logs, so the read no longer grows with the range's logs (narrowed to a tag, 2M logs over 30 days took 1.9 s
    from the logs). Read inside ``read_current_spend`` (its recheck of the watermark covers this read too: the
    watermark only grows, so an unchanged one at the end was unchanged all along)."""

    def __init__(self, start: date, end: date, filters: dict[str, str], tag: str = ""):
        self.tag = tag
        super().__init__(start, end, filters)

    def _tail_totals(self, tail: QuerySet) -> list[dict]:
        if self.tag and connections[tail.db].vendor == "postgresql":
            # Only the tag's logs are grouped and sent (tagged_totals still checks each).
            tail = (
                tail.filter(request_tags=[]) if self.tag == UNTAGGED else tail.filter(request_tags__contains=[self.tag])
            )
        return tagged_totals(tail, ["day", *ROLLUP_DIMENSIONS], self.tag)

    def _rollups(self) -> QuerySet:
        rollups = DailyTaggedSpend.objects.using(self.db).filter(**self.filters)
        return rollups.filter(tag=self.tag) if self.tag else rollups


def tag_budgets() -> list[Tag]:
    """The tags with a budget, the most used first."""
    tags = Tag.objects.filter(max_budget__isnull=False)
    return sorted(tags, key=lambda tag: (-(tag.spend / tag.max_budget) if tag.max_budget else 0, tag.name))


@dataclass(frozen=True, slots=True)
class TeamMonth:
    """A team's spend this calendar month, day by day, against its budget; and where it is heading."""

    team_id: str
    name: str
    period_spend: Decimal  # since its last budget reset (what its budget is checked against)
    max_budget: Decimal | None
    month_days: list[date]
    cumulative: list[Decimal]  # month to date, one per day up to today
    month_to_date: Decimal
    forecast: Decimal  # month to date / days so far × days in the month
    reset_at: object


def month_of(today: date) -> tuple[date, date]:
    return today.replace(day=1), today.replace(day=calendar.monthrange(today.year, today.month)[1])


def linear_forecast(month_to_date: Decimal, today: date) -> Decimal:
    """Month-end spend if every remaining day costs the average of the days so far (today counted as a whole day)."""
    first, last = month_of(today)
    return month_to_date / ((today - first).days + 1) * ((last - first).days + 1)


def team_months(today: date, team_ids: list[str] | None = None) -> list[TeamMonth]:
    """Every team's month so far (or those of ``team_ids``), every committed call counted (rollups plus the tail)."""
    first, last = month_of(today)
    only = {} if team_ids is None else {"team_id__in": team_ids}
    rows, _ = read_current_spend(
        first, today, lambda spend: spend.totals(["day", "team_id"], integers=["requests"]), only
    )
    daily: dict[str, dict[date, Decimal]] = {}
    for row in rows:
        daily.setdefault(row["team_id"], {})[row["day"]] = row["cost"]
    days = [first + timedelta(days=offset) for offset in range((today - first).days + 1)]
    months = []
    teams = (
        Team.objects.filter(**only)
        .order_by("team_alias", "team_id")
        .only("team_id", "team_alias", "spend", "max_budget", "budget_reset_at")
    )
    for team in teams:
        running, cumulative = ZERO, []
        for day in days:
            running += daily.get(team.team_id, {}).get(day, ZERO)
            cumulative.append(running)
        months.append(
            TeamMonth(team.team_id, team.team_alias or team.team_id, team.spend, team.max_budget,
                      [first + timedelta(days=n) for n in range((last - first).days + 1)], cumulative, running,
                      linear_forecast(running, today), team.budget_reset_at)
        )  # fmt: skip
    return months
