"""Keys, users and teams in the admin: spend against budgets, expiry, limits; generating a key shows its secret once.

Every change made here goes through the same change log as the API (KeyChange: who, when, what), so the proxy
processes pick it up within a sync interval, and Django's LogEntry keeps the admin's own history as well.
"""

from decimal import Decimal

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, F, Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from keys import services
from keys.auth import hash_key, sync_key_cache
from keys.models import InternalUser, KeyChange, Team, VirtualKey, record_change
from pricing.admin_base import ReadOnlyAdmin
from pricing.calculator import format_money


def budget_bar(spend: Decimal, budget: Decimal | None):
    """Spend against budget as a small bar; the exact amounts are in the title."""
    if budget is None:
        return format_html("{} <small>(no budget)</small>", format_money(spend))
    share = min(spend / budget, Decimal(1)) if budget > 0 else Decimal(1)
    percent = int(share * 100)
    colour = "#ba2121" if spend >= budget else "#e0a800" if percent >= 80 else "#417690"
    return format_html(
        '<div title="{} of {}" style="width:120px;background:#eee;border-radius:3px">'
        '<div style="width:{}%;background:{};height:10px;border-radius:3px"></div></div>'
        "<small>{} / {} ({}%)</small>",
        format_money(spend),
        format_money(budget),
        percent,
        colour,
        format_money(spend),
        format_money(budget),
        percent,
    )


def _actor(request) -> str:
    return f"admin:{request.user.get_username()}"


class _ChangeLogged(admin.ModelAdmin):
    """Admin edits append a KeyChange (the proxies reload) in the same transaction as the edit."""

    kind: str = ""
    id_field: str = ""

    def save_model(self, request, obj, form, change):
        if "budget_duration" in form.changed_data:
            obj.budget_reset_at = services.budget_reset_for(obj.budget_duration, timezone.now())
        super().save_model(request, obj, form, change)
        changes = {name: str(form.cleaned_data.get(name)) for name in form.changed_data}
        action = "updated" if change else "created"
        record_change(self.kind, getattr(obj, self.id_field), action=action, actor=_actor(request), changes=changes)
        transaction.on_commit(sync_key_cache)


class KeyInline(admin.TabularInline):
    model = VirtualKey
    fields = ["key_alias", "key_hint", "spend", "max_budget", "expires", "blocked"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("expired", "Expired"), ("active", "Not expired"), ("never", "Never expires")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "expired":
            return queryset.filter(expires__lte=now)
        if self.value() == "active":
            return queryset.filter(Q(expires__gt=now) | Q(expires__isnull=True))
        if self.value() == "never":
            return queryset.filter(expires__isnull=True)
        return queryset


class OverBudgetFilter(admin.SimpleListFilter):
    title = "budget"
    parameter_name = "budget"

    def lookups(self, request, model_admin):
        return [("over", "Over budget"), ("soft", "Past soft budget"), ("none", "No budget")]

    def queryset(self, request, queryset):
        if self.value() == "over":
            return queryset.filter(max_budget__isnull=False, spend__gte=F("max_budget"))
        if self.value() == "soft":
            return queryset.filter(soft_budget__isnull=False, spend__gte=F("soft_budget"))
        if self.value() == "none":
            return queryset.filter(max_budget__isnull=True)
        return queryset


@admin.register(VirtualKey)
class VirtualKeyAdmin(_ChangeLogged):
    kind = KeyChange.Kind.KEY
    id_field = "token_hash"
    list_display = ["__str__", "key_hint", "team", "user", "spend_vs_budget", "expiry", "limits", "blocked"]
    list_select_related = ["team", "user"]
    list_filter = [ExpiryFilter, "blocked", OverBudgetFilter, "team", "user"]
    search_fields = ["key_alias", "key_hint", "=token_hash", "user__user_id", "user__user_email", "team__team_alias"]
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

    @admin.display(description="spend / budget")
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

    @admin.display(description="rpm / tpm / parallel")
    def limits(self, key):
        return " / ".join(
            "–" if value is None else str(value) for value in (key.rpm_limit, key.tpm_limit, key.max_parallel_requests)
        )

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # A new key: the secret is made here and shown once, by response_add; only its hash is stored. The first
        # secret's hash is the key's identity (token_hash) for good.
        raw_key = services.new_raw_key()
        obj.token_hash = obj.secret_hash = hash_key(raw_key)
        obj.key_hint = services.key_hint(raw_key)
        obj.created_by = _actor(request)
        obj.raw_key = raw_key
        return super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        return _show_secrets(request, self, [(obj, obj.raw_key)], "The new key")

    def delete_model(self, request, obj):
        services.delete_keys([obj], actor=_actor(request))

    def delete_queryset(self, request, queryset):
        services.delete_keys(list(queryset), actor=_actor(request))

    @admin.action(description="Block the selected keys")
    def block(self, request, queryset):
        self._set_blocked(request, queryset, True)

    @admin.action(description="Unblock the selected keys")
    def unblock(self, request, queryset):
        self._set_blocked(request, queryset, False)

    def _set_blocked(self, request, queryset, blocked: bool):
        for key in queryset:
            services.update_key(
                key, {"blocked": blocked}, actor=_actor(request), action="blocked" if blocked else "unblocked"
            )
            self.log_change(request, key, "Blocked" if blocked else "Unblocked")
        self.message_user(request, f"{'Blocked' if blocked else 'Unblocked'} {len(queryset)} key(s).", messages.SUCCESS)

    @admin.action(description="Regenerate the selected keys (shows the new secrets once)")
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


class MembershipInline(admin.TabularInline):
    model = InternalUser.teams.through
    extra = 0
    autocomplete_fields = ["internaluser"]
    verbose_name = "member"
    verbose_name_plural = "members"


@admin.register(Team)
class TeamAdmin(_ChangeLogged):
    kind = KeyChange.Kind.TEAM
    id_field = "team_id"
    list_display = [
        "__str__",
        "team_id",
        "member_count",
        "key_count",
        "spend_vs_budget",
        "rpm_limit",
        "tpm_limit",
        "blocked",
    ]
    list_filter = ["blocked"]
    search_fields = ["team_alias", "team_id"]
    readonly_fields = ["spend", "budget_reset_at", "created_at"]
    inlines = [MembershipInline, KeyInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(member_total=Count("members", distinct=True), key_total=Count("keys", distinct=True))
        )

    @admin.display(description="members", ordering="member_total")
    def member_count(self, team):
        return team.member_total

    @admin.display(description="keys", ordering="key_total")
    def key_count(self, team):
        return team.key_total

    @admin.display(description="spend / budget")
    def spend_vs_budget(self, team):
        return budget_bar(team.spend, team.max_budget)

    def delete_model(self, request, obj):
        services.delete_teams([obj], actor=_actor(request))

    def delete_queryset(self, request, queryset):
        services.delete_teams(list(queryset), actor=_actor(request))


@admin.register(InternalUser)
class InternalUserAdmin(_ChangeLogged):
    kind = KeyChange.Kind.USER
    id_field = "user_id"
    list_display = ["user_id", "user_email", "team_list", "key_count", "spend_vs_budget"]
    search_fields = ["user_id", "user_email"]
    readonly_fields = ["spend", "budget_reset_at", "created_at"]
    filter_horizontal = ["teams"]
    inlines = [KeyInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(key_total=Count("keys")).prefetch_related("teams")

    @admin.display(description="teams")
    def team_list(self, user):
        return ", ".join(str(team) for team in user.teams.all())

    @admin.display(description="keys", ordering="key_total")
    def key_count(self, user):
        return user.key_total

    @admin.display(description="spend / budget")
    def spend_vs_budget(self, user):
        return budget_bar(user.spend, user.max_budget)

    def delete_model(self, request, obj):
        services.delete_users([obj], actor=_actor(request))

    def delete_queryset(self, request, queryset):
        services.delete_users(list(queryset), actor=_actor(request))


@admin.register(KeyChange)
class KeyChangeAdmin(ReadOnlyAdmin):
    """The audit trail of keys, users and teams: read-only."""

    list_display = ["changed_at", "kind", "entity_id", "action", "actor", "changes"]
    list_filter = ["kind", "action"]
    search_fields = ["=entity_id", "actor"]
    date_hierarchy = "changed_at"
