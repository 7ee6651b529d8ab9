"""The admin base for history and fetched data (spend logs, price revisions, cost maps, the key change log).

Here, in the lowest app, because pricing, keys and spend all use it and may each import pricing.
"""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, never edited by hand: no add, change or delete, here or in bulk."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
