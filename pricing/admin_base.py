"""The admin bases every app's admin builds on: money shown one way, and read-only history.

Here, in the lowest app, because pricing, keys, spend and gateway all use them and may each import pricing.

Django shows a DecimalField as text through ``display_for_field`` -> ``number_format(value, 20)``: a MoneyField's
twenty places ("0.00049996000000000000", "0E-20" in a title). Every money value the admin shows as text goes through
``money_html`` instead: ``pricing.money.usd`` ($1,234.56, $0.0004500) with the exact digits on hover.
"""

from collections.abc import Iterable
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from pricing.calculator import format_money
from pricing.fields import MoneyField
from pricing.money import usd

EMPTY = "—"
PER_MILLION = Decimal(1_000_000)


def money_html(amount: Decimal | None, *, empty: str = EMPTY) -> SafeString | str:
    """$1,234.56 for people, with every digit of the amount in its title (shown on hover)."""
    if amount is None:
        return empty
    amount = Decimal(amount)
    return format_html('<span class="money" title="{}">{}</span>', format_money(amount), usd(amount))


def per_million_html(per_token: Decimal | None, *, empty: str = EMPTY) -> SafeString | str:
    """A per-token price as people compare them, per 1M tokens ($2.50), exact per-token price on hover."""
    if per_token is None:
        return empty
    per_token = Decimal(per_token)
    return format_html(
        '<span class="money" title="{} per token">{}</span>', format_money(per_token), usd(per_token * PER_MILLION)
    )


def price_html(name: str, price: Decimal | None) -> SafeString | str:
    """A price named as the cost map names them: per token shown per 1M tokens, per second as it is, any other
    (per query, per image) as money."""
    if price is None:
        return EMPTY
    if "per_second" in name:
        return format_html("{} / second", money_html(price))
    if "token" in name:
        return format_html("{} / 1M tokens", per_million_html(price))
    return money_html(price)


def deployment_link(model_id: str):
    """A deployment named by its model_info.id, linked to the deployments list searched for it: the apps below the
    gateway know deployments by id only (never by import), and the admin's URL names are all they need."""
    if not model_id:
        return EMPTY
    url = reverse("admin:gateway_deployment_changelist") + "?" + urlencode({"q": model_id})
    return format_html('<a href="{}">{}</a>', url, model_id)


def money_column(field: str, description: str, *, ordering: str | None = None):
    """A list column or read-only field showing ``field`` as money; sorts by the field itself."""

    @admin.display(description=description, ordering=ordering or field)
    def show(*args):
        return money_html(getattr(args[-1], field))  # (model_admin, obj) on a class, (obj) on an instance

    return show


def _swap(names: Iterable, shown: dict[str, str], swapped, seen: set) -> list:
    """``names`` with each money field that ``swapped`` picks replaced by its display, each name once (Django lists a
    read-only field after the form's fields, where its display already is)."""
    result = []
    for name in names:
        if isinstance(name, list | tuple):
            result.append(tuple(_swap(name, shown, swapped, seen)))
            continue
        name = shown[name] if name in shown and swapped(name) else name
        if name not in seen:
            seen.add(name)
            result.append(name)
    return result


class ShowsMoney:
    """Every MoneyField this admin (or inline) shows as text, in a list column or as a read-only field, is shown
    by ``money_html``; an editable one keeps its input (pricing.fields.MoneyFormField shows its own digits).

    Each money field ``name`` gets a display ``name_shown``, swapped in wherever the field would be text: declared
    once here, so no admin, present or future, prints the twenty places."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.money_fields = {
            field.name: f"{field.name}_shown"
            for field in self.model._meta.concrete_fields
            if isinstance(field, MoneyField)
        }
        for name, shown in self.money_fields.items():
            if not hasattr(self, shown):
                setattr(self, shown, money_column(name, self.model._meta.get_field(name).verbose_name))

    def get_list_display(self, request):
        return _swap(super().get_list_display(request), self.money_fields, lambda name: True, set())

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, *(self.money_fields[name] for name in fields if name in self.money_fields)]

    def get_fieldsets(self, request, obj=None):
        # A page the user may only view shows every field as text.
        text = None if not self.has_change_permission(request, obj) else set(self.get_readonly_fields(request, obj))
        seen = set()

        def swapped(name):
            return text is None or name in text

        return [
            (title, {**options, "fields": _swap(options["fields"], self.money_fields, swapped, seen)})
            for title, options in super().get_fieldsets(request, obj)
        ]


class MoneyAdmin(ShowsMoney, admin.ModelAdmin):
    """A model admin whose money reads as money."""


class ReadOnlyAdmin(MoneyAdmin):
    """History and fetched data (spend logs, price revisions, cost maps, the key change log): shown, never edited by
    hand: no add, change or delete, here or in bulk."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
