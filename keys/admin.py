"""Keys, users and teams in the admin: spend against budgets, expiry, limits; generating a key shows its secret once.

Every change made here is made by keys.services, as the API's are, so it lands in the same change log (KeyChange:
who, when, what) and the proxy processes pick it up within a sync interval; Django's LogEntry keeps the admin's own
history as well.
"""

from collections.abc import Callable
from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, F, Prefetch, Q
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from keys import services
from keys.forms import BudgetRulesForm
from keys.models import InternalUser, KeyChange, Team, TeamAdministrator, VirtualKey
from keys.names import attach_entity_names, names
from keys.roles import teams_in_scope
from keys.selectors import key_with_spend, team_with_spend, user_with_spend
from pricing.admin_base import EMPTY, MoneyAdmin, ReadOnlyAdmin, ShowsMoney, money_html
from pricing.calculator import format_money
from pricing.money import usd

# Panels a key's, team's or user's page shows below its usage: (kind, entity id) -> HTML. The spend app adds its
# chart and recent calls (spend.admin): keys may not import spend.
activity_panels: list[Callable[[str, str], str]] = []


def budget_bar(spend: Decimal, budget: Decimal | None):
    """Spend against budget as a small bar: rounded amounts to read, the exact ones in the title."""
    if budget is None:
        return format_html("{} <small>(no budget)</small>", money_html(spend))
    share = min(spend / budget, Decimal(1)) if budget > 0 else Decimal(1)
    percent = int(share * 100)
    colour = "#ba2121" if spend >= budget else "#e0a800" if percent >= 80 else "#417690"
    return format_html(
        '<div title="{} of {}" style="width:100%;max-width:120px;min-width:60px;background:#eee;border-radius:3px">'
        '<div style="width:{}%;background:{};height:10px;border-radius:3px"></div></div>'
        '<small class="nowrap">{} / {} ({}%)</small>',
        format_money(spend),
        format_money(budget),
        percent,
        colour,
        usd(spend),
        usd(budget),
        percent,
    )


def rate_limits(holder) -> str:
    """A key's, team's or budget's rpm, tpm and parallel limits in one short cell: 60 / – / 4."""
    limits = (holder.rpm_limit, holder.tpm_limit, holder.max_parallel_requests)
    return " / ".join("–" if value is None else str(value) for value in limits)


def name_over_id(name: str, identity: str):
    """A row's name with its id in small type under it; the id alone when it has no name."""
    return format_html('{}<small class="secondary">{}</small>', name, identity) if name else identity


def admin_link(obj, label=None):
    """A link to a row's admin page, named as people know it (its __str__: alias, email, hint)."""
    if obj is None:
        return EMPTY
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or obj)


def link_column(field: str, ordering: str):
    """An admin column linking to the row `field` points to (admin_link), headed and sorted as given."""

    @admin.display(description=field, ordering=ordering)
    def link(self, obj):
        return admin_link(getattr(obj, field))

    return link


def _actor(request) -> str:
    return f"admin:{request.user.get_username()}"


def _service_data(form, change: bool) -> dict:
    """The form's values as keys.services takes them, in the API's names: a team or user by its id. A new row takes
    every field (what the form showed is what is made); a changed one only those the form changed."""
    data = {name: form.cleaned_data[name] for name in (form.changed_data if change else form.cleaned_data)}
    for relation in ("team", "user"):
        if relation in data:
            data[f"{relation}_id"] = getattr(data.pop(relation), f"{relation}_id", None)
    if "teams" in data:
        data["teams"] = [team.team_id for team in data["teams"]]
    return data


def _adopt(obj, saved) -> None:
    """The form's instance becomes the row the service saved: the admin's own steps after save_model (inlines,
    many-to-many fields, its LogEntry, the response) work on that instance."""
    obj.__dict__.update({name: value for name, value in vars(saved).items() if name != "_state"})
    obj._state.adding, obj._state.db = False, saved._state.db


class _SavedByServices(MoneyAdmin):
    """Adding, changing and deleting go through keys.services, as the API's do: one transaction that appends the
    KeyChange (every proxy process reloads), derives what follows (budget_reset_at, the key's secret and hint) and
    refreshes this process's key cache when it commits. Django's LogEntry keeps the admin's own history as well."""

    # Each subclass names its services: create(data, actor=) -> row, update(row, data, actor=) -> row and
    # delete(rows, actor=).
    create = update = delete = None

    def save_model(self, request, obj, form, change):
        if change and not form.changed_data:
            return  # nothing to record: the change log holds changes, not saves
        data = _service_data(form, change)
        actor = _actor(request)
        _adopt(obj, self.update(obj, data, actor=actor) if change else self.create(data, actor=actor))

    def delete_model(self, request, obj):
        self.delete([obj], actor=_actor(request))

    def delete_queryset(self, request, queryset):
        self.delete(list(queryset), actor=_actor(request))


class _AnswersAdmin(_SavedByServices):
    """A key's, team's or user's page answers first what people come for: its spend against its budget, its
    limits, and (activity_panels) its spend over time and its last calls. Its form picks models and aliases and
    refuses what the API refuses (keys.forms)."""

    form = BudgetRulesForm
    kind = ""  # "key", "team" or "user": the ledger's name for it
    id_field = ""
    answers = ("Spend and usage", {"fields": ["usage", "activity"]})

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        return self.form.picker_for(db_field) or super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "usage", "activity"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if obj is None else [self.answers, *fieldsets]

    @admin.display(description="budget and limits")
    def usage(self, holder):
        live = self.with_spend(holder).live_spend
        rows = [("spend / budget", budget_bar(live, holder.max_budget))]
        if getattr(holder, "soft_budget", None) is not None:
            rows.append(("soft budget (alert)", money_html(holder.soft_budget)))
        rows.append(("budget resets", holder.budget_reset_at or f"never ({holder.budget_duration or 'no duration'})"))
        for name in ("rpm_limit", "tpm_limit", "max_parallel_requests"):
            if hasattr(holder, name):
                rows.append((name.replace("_", " "), getattr(holder, name) or "no limit"))
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="rpm / tpm / parallel")
    def limits(self, holder):
        return rate_limits(holder)

    @admin.display(description="spend over time")
    def activity(self, holder):
        entity_id = getattr(holder, self.id_field)
        return mark_safe("".join(str(panel(self.kind, entity_id)) for panel in activity_panels)) or EMPTY


class _BudgetHolderAdmin(_AnswersAdmin):
    """A team or a user: their keys counted (annotated as key_total) and their spend against their budget."""

    def get_readonly_fields(self, request, obj=None):
        # Keys name their team and user by this id (to_field), as the API's callers do: it is fixed once made.
        fields = super().get_readonly_fields(request, obj)
        return [*fields, self.id_field] if obj is not None else fields

    @admin.display(description="keys", ordering="key_total")
    def key_count(self, holder):
        return holder.key_total

    @admin.display(description="spend / budget")
    def spend_vs_budget(self, holder):
        return budget_bar(holder.spend, holder.max_budget)


class KeyInline(ShowsMoney, admin.TabularInline):
    model = VirtualKey
    fields = ["key_alias", "key_hint", "spend", "max_budget", "expires", "blocked"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # A member's page lists, to a Team admin, only its keys of the admin's teams.
        keys = super().get_queryset(request)
        return keys if (teams := administered_teams(request)) is None else keys.filter(team__in=teams)


class _TableFilter(admin.SimpleListFilter):
    """A list filter read from a table: each choice's value, its label, and the Q it keeps, made when the list is
    asked for (an expiry is compared with that moment)."""

    table: dict[str, tuple[str, Callable[[], Q]]]

    def lookups(self, request, model_admin):
        return [(value, label) for value, (label, _) in self.table.items()]

    def queryset(self, request, queryset):
        chosen = self.table.get(self.value())
        return queryset.filter(chosen[1]()) if chosen else queryset


class ExpiryFilter(_TableFilter):
    title = parameter_name = "expiry"
    table = {
        "expired": ("Expired", lambda: Q(expires__lte=timezone.now())),
        "active": ("Not expired", lambda: Q(expires__gt=timezone.now()) | Q(expires__isnull=True)),
        "never": ("Never expires", lambda: Q(expires__isnull=True)),
    }


class OverBudgetFilter(_TableFilter):
    title = parameter_name = "budget"
    table = {
        "over": ("Over budget", lambda: Q(max_budget__isnull=False, spend__gte=F("max_budget"))),
        "soft": ("Past soft budget", lambda: Q(soft_budget__isnull=False, spend__gte=F("soft_budget"))),
        "none": ("No budget", lambda: Q(max_budget__isnull=True)),
    }


def administered_teams(request):
    """The teams this request's login may see here: None for every team, else its own (keys.roles.teams_in_scope)."""
    return teams_in_scope(request.user)


class _TeamScoped:
    """A key's, team's or user's admin for a Team admins login: another team's row is missing (404) by URL, whether
    its change, delete or history page is asked for; Django's admin would redirect to the index saying it "doesn't
    exist", which an unscoped login still gets. (The rows themselves are narrowed by each admin's get_queryset.)"""

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None and administered_teams(request) is not None:
            raise Http404(f"No {self.opts.verbose_name} {object_id!r} among your teams.")
        return obj


@admin.register(VirtualKey)
class VirtualKeyAdmin(_TeamScoped, _AnswersAdmin):
    kind, id_field = "key", "token_hash"
    with_spend = staticmethod(key_with_spend)
    # What fits at 1280 px: the hint folded under the name, the three limits in one column.
    list_display = ["name", "team_link", "user_link", "spend_vs_budget", "expiry", "limits", "blocked"]
    list_select_related = ["team", "user"]
    list_filter = [ExpiryFilter, "blocked", OverBudgetFilter, "team", "user"]
    search_fields = ["key_alias", "key_hint", "=token_hash", "user__user_id", "user__user_email", "team__team_alias"]

    def get_queryset(self, request):
        teams = administered_teams(request)
        queryset = super().get_queryset(request)
        return queryset if teams is None else queryset.filter(team__in=teams)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if administered_teams(request) is None:
            return form
        return type(form.__name__, (form,), {"capped_by_team": True})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        teams = administered_teams(request)
        if db_field.name == "team" and teams is not None:
            kwargs["queryset"] = teams
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    readonly_fields = [
        "key_hint",
        "token_hash",
        "spend",
        "budget_reset_at",
        "soft_budget_alerted_at",
        "created_at",
        "created_by",
    ]
    autocomplete_fields = ["team", "user"]
    actions = ["block", "unblock", "regenerate"]
    fieldsets = [
        (None, {"fields": ["key_alias", "key_hint", "token_hash", "team", "user", "blocked", "expires"]}),
        ("Models", {"fields": ["models", "aliases"]}),
        (
            "Budget",
            {"fields": ["max_budget", "soft_budget", "soft_budget_alerted_at", "budget_duration", "budget_reset_at"]},
        ),
        ("Spend", {"fields": ["spend"]}),
        ("Rate limits", {"fields": ["rpm_limit", "tpm_limit", "max_parallel_requests"]}),
        ("More", {"fields": ["config", "metadata", "created_at", "created_by"], "classes": ["collapse"]}),
    ]

    @admin.display(description="key", ordering="key_alias")
    def name(self, key):
        return name_over_id(key.key_alias, key.key_hint)

    team_link = link_column("team", "team__team_alias")
    user_link = link_column("user", "user__user_email")

    @admin.display(description="spend / budget", ordering="spend")
    def spend_vs_budget(self, key):
        bar = budget_bar(key.spend, key.max_budget)
        if key.soft_budget is not None and key.spend >= key.soft_budget:
            return format_html('{}<br><small style="color:#e0a800">past soft budget</small>', bar)
        return bar

    @admin.display(description="expiry", ordering="expires")
    def expiry(self, key):
        if key.expires is None:
            return "never"
        if key.expires <= timezone.now():
            return format_html('<span style="color:#ba2121">expired {}</span>', key.expires.strftime("%Y-%m-%d %H:%M"))
        return key.expires.strftime("%Y-%m-%d %H:%M")

    def create(self, data, *, actor):
        # The secret is made by the service and shown once, by response_add; only its hash is stored.
        raw_key, key = services.generate_key(data, actor=actor)
        key.raw_key = raw_key
        return key

    update = staticmethod(services.update_key)
    delete = staticmethod(services.delete_keys)

    def response_add(self, request, obj, post_url_continue=None):
        return _show_secrets(request, self, [(obj, obj.raw_key)], "The new key")

    @admin.action(description="Block the selected keys", permissions=["change"])
    def block(self, request, queryset):
        self._set_blocked(request, queryset, True)

    @admin.action(description="Unblock the selected keys", permissions=["change"])
    def unblock(self, request, queryset):
        self._set_blocked(request, queryset, False)

    def _set_blocked(self, request, queryset, blocked: bool):
        for key in queryset:
            services.update_key(
                key, {"blocked": blocked}, actor=_actor(request), action="blocked" if blocked else "unblocked"
            )
            self.log_change(request, key, "Blocked" if blocked else "Unblocked")
        self.message_user(request, f"{'Blocked' if blocked else 'Unblocked'} {len(queryset)} key(s).", messages.SUCCESS)

    @admin.action(description="Regenerate the selected keys (shows the new secrets once)", permissions=["change"])
    def regenerate(self, request, queryset):
        regenerated = []
        for key in queryset:
            raw_key, key = services.regenerate_key(key, {}, actor=_actor(request))
            self.log_change(request, key, "Regenerated the secret")
            regenerated.append((key, raw_key))
        return _show_secrets(request, self, regenerated, "The regenerated keys")


class _ShownOnce(str):
    """A secret on the page that shows it: rendered as itself, but its repr is its hint. Django's template engine
    logs the whole context with repr() at DEBUG whenever a lookup fails (the admin's `subtitle`, on every page)."""

    def __repr__(self):
        return repr(services.key_hint(self))


def _show_secrets(request, model_admin, keys_and_secrets, title: str):
    """A page that shows new secrets once: they are never stored, so they cannot be shown again."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "secrets": [(key, _ShownOnce(secret)) for key, secret in keys_and_secrets],
    }
    return TemplateResponse(request, "admin/keys/virtualkey/secrets.html", context)


def _membership_label(membership) -> str:
    return str(membership.internaluser)


# The team page lists its members by this: Django's default for the auto-made table is "InternalUser_teams object (1)".
InternalUser.teams.through.__str__ = _membership_label


class MembershipInline(admin.TabularInline):
    model = InternalUser.teams.through
    extra = 0
    autocomplete_fields = ["internaluser"]
    verbose_name = "member"
    verbose_name_plural = "members"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("internaluser")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **{"label": "user", **kwargs})


class TeamAdministratorInline(admin.TabularInline):
    """The logins that administer the team (issue 23), for the Admins: a team admin does not see it (get_inlines),
    so it cannot add itself to another team."""

    model = TeamAdministrator
    extra = 0
    verbose_name, verbose_name_plural = "team administrator (login)", "team administrators (logins)"


@admin.register(Team)
class TeamAdmin(_TeamScoped, _BudgetHolderAdmin):
    kind, id_field = "team", "team_id"
    with_spend = staticmethod(team_with_spend)
    list_display = ["name", "member_count", "key_count", "spend_vs_budget", "limits", "blocked"]
    list_filter = ["blocked"]
    search_fields = ["team_alias", "team_id"]
    readonly_fields = ["spend", "budget_reset_at", "created_at"]
    fieldsets = [
        (None, {"fields": ["team_alias", "team_id", "blocked"]}),
        ("Models", {"fields": ["models", "model_aliases"]}),
        ("Budget", {"fields": ["max_budget", "budget_duration", "budget_reset_at", "spend"]}),
        ("Rate limits", {"fields": ["rpm_limit", "tpm_limit", "max_parallel_requests"]}),
        ("More", {"fields": ["metadata", "created_at"], "classes": ["collapse"]}),
    ]
    inlines = [MembershipInline, TeamAdministratorInline, KeyInline]
    # What only the Admins set on a team: its budget and limits cap its Team admins' keys (keys.forms).
    limits_of_admins = ["max_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests", "blocked"]

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if administered_teams(request) is None:
            return fields
        return [*fields, *self.limits_of_admins, *(self.money_fields[name] for name in ["max_budget"])]

    def get_inlines(self, request, obj):
        # Who administers a team is the Admins' to see and set, not a team admin's (issue 23).
        scoped = administered_teams(request) is not None
        return [inline for inline in self.inlines if not (scoped and inline is TeamAdministratorInline)]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(member_total=Count("members", distinct=True), key_total=Count("keys", distinct=True))
            .filter(**({} if (teams := administered_teams(request)) is None else {"pk__in": teams}))
        )

    @admin.display(description="team", ordering="team_alias")
    def name(self, team):
        return name_over_id(team.team_alias, team.team_id)

    @admin.display(description="members", ordering="member_total")
    def member_count(self, team):
        return team.member_total

    create = staticmethod(services.create_team)
    update = staticmethod(services.update_team)
    delete = staticmethod(services.delete_teams)


@admin.register(InternalUser)
class InternalUserAdmin(_TeamScoped, _BudgetHolderAdmin):
    kind, id_field = "user", "user_id"
    with_spend = staticmethod(user_with_spend)
    list_display = ["__str__", "team_list", "key_count", "spend_vs_budget", "user_id"]
    search_fields = ["user_id", "user_email"]
    readonly_fields = ["spend", "budget_reset_at", "created_at"]
    filter_horizontal = ["teams"]
    fieldsets = [
        (None, {"fields": ["user_email", "user_id", "teams"]}),
        ("Models", {"fields": ["models"]}),
        ("Budget", {"fields": ["max_budget", "budget_duration", "budget_reset_at", "spend"]}),
        ("More", {"fields": ["metadata", "created_at"], "classes": ["collapse"]}),
    ]
    inlines = [KeyInline]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        teams = administered_teams(request)
        if db_field.name == "teams" and teams is not None:
            kwargs["queryset"] = teams
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        teams = administered_teams(request)
        if teams is None:
            return form

        def clean_teams(form):
            """A Team admin picks among its own teams; the member's other teams, which it does not see, stay."""
            others = form.instance.teams.exclude(pk__in=teams) if form.instance.pk else []
            return [*form.cleaned_data["teams"], *others]

        return type(form.__name__, (form,), {"clean_teams": clean_teams})

    def get_queryset(self, request):
        teams = administered_teams(request)
        if teams is None:
            return super().get_queryset(request).annotate(key_total=Count("keys")).prefetch_related("teams")
        # A Team admin sees its members and, of their teams and keys, only its own teams' (the list's columns, the
        # page's choices): a count of the keys of other teams would tell what it may not open.
        users = super().get_queryset(request).annotate(key_total=Count("keys", filter=Q(keys__team__in=teams)))
        in_scope = users.filter(pk__in=InternalUser.objects.filter(teams__in=teams))
        return in_scope.prefetch_related(Prefetch("teams", queryset=Team.objects.filter(pk__in=teams)))

    @admin.display(description="teams")
    def team_list(self, user):
        return format_html_join(", ", "{}", ((admin_link(team),) for team in user.teams.all())) or EMPTY

    def create(self, data, *, actor):
        user, _, _ = services.create_user(data, actor=actor)
        return user

    update = staticmethod(services.update_user)
    delete = staticmethod(services.delete_users)


class EntityNamedChangeList(ChangeList):
    """A page of rows naming one key, user or team each (kind, entity_id), named in a query per kind."""

    def get_results(self, request):
        super().get_results(request)
        attach_entity_names(list(self.result_list))


class EntityNamedAdmin(ReadOnlyAdmin):
    """History naming a key, team or user by kind and id (key changes, budget resets): shown by name, linked."""

    def get_changelist(self, request, **kwargs):
        return EntityNamedChangeList

    @admin.display(description="key, user or team", ordering="entity_id")
    def entity(self, row):
        named = getattr(row, "named", None) or names(row.kind, [row.entity_id])[row.entity_id]  # a change page
        return format_html("{} {}", row.kind, named.html())


@admin.register(KeyChange)
class KeyChangeAdmin(EntityNamedAdmin):
    """The audit trail of keys, users and teams: read-only."""

    list_display = ["changed_at", "entity", "action", "actor", "changes"]
    list_filter = ["kind", "action"]
    search_fields = ["=entity_id", "actor"]
    date_hierarchy = "changed_at"


# Customers, budgets and organizations, read-only here: registered from their own modules, which build on the
# helpers above.
from keys import admin_customers, admin_organizations, admin_tags  # noqa: E402, F401
