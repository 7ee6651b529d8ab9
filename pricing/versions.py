"""Storing cost map versions: the shipped snapshot on first migrate, and a refreshed map swapped in atomically.

A new map becomes active in one transaction that holds the active version's row lock, so two refreshes at once
(two workers, beat and the admin's button) serialize: the second finds the first's map already active and
records nothing. Whatever goes wrong is recorded as a failed version and the active map stays.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from pricing import active, audit, store
from pricing.calculator import format_money
from pricing.costmap import CostMapError, diff_cost_maps, exact_strings, load_cost_map, sha256_of, validate_cost_map
from pricing.models import CostMapEntry, CostMapVersion

logger = logging.getLogger(__name__)

_PER_MILLION = Decimal(1_000_000)
_LISTED_PRICES = {
    "input_per_million": "input_cost_per_token",
    "output_per_million": "output_cost_per_token",
    "cache_read_per_million": "cache_read_input_token_cost",
    "cache_write_per_million": "cache_creation_input_token_cost",
}


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refresh did: ``activated`` a new version, found the map ``unchanged``, or ``failed`` (kept the map)."""

    result: str
    version_id: int | None
    message: str = ""

    def as_dict(self) -> dict:
        return {"result": self.result, "version_id": self.version_id, "message": self.message}


def entry_rows(version, entries: dict, entry_model=CostMapEntry) -> list:
    """The admin's rows for a version's entries (``entry_model`` is the migration's historical model there)."""
    return [
        entry_model(
            version=version,
            model_name=name,
            provider=str(entry.get("litellm_provider") or "")[:100],
            mode=str(entry.get("mode") or "")[:50],
            entry=exact_strings(entry),
            **{column: _per_million(entry.get(field)) for column, field in _LISTED_PRICES.items()},
        )
        for name, entry in entries.items()
    ]


def install_shipped_version(version_model=CostMapVersion, entry_model=CostMapEntry) -> bool:
    """Store the shipped snapshot as the active version unless a version is already active. Idempotent."""
    if version_model.objects.filter(status=CostMapVersion.Status.ACTIVE).exists():
        return False
    raw, entries = active.shipped_cost_map()
    version = version_model.objects.create(
        sha256=sha256_of(raw),
        source=CostMapVersion.SHIPPED,
        status=CostMapVersion.Status.ACTIVE,
        activated_at=timezone.now(),
        entry_count=len(entries),
        added_count=len(entries),
        diff={"added": sorted(entries), "removed": [], "changed": {}},
        raw_json=raw.decode(),
    )
    entry_model.objects.bulk_create(entry_rows(version, entries, entry_model), batch_size=1000)
    store.forget_active_version()
    return True


def store_fetched_map(raw: bytes, source: str, max_loss_share: Decimal) -> RefreshOutcome:
    """Make ``raw`` the active cost map if it is valid and new; record a failure (keeping the map) if not."""
    sha = sha256_of(raw)
    if CostMapVersion.objects.filter(status=CostMapVersion.Status.ACTIVE, sha256=sha).exists():
        return _mark_unchanged(sha)
    try:
        entries = load_cost_map(raw.decode())
    except (CostMapError, UnicodeDecodeError) as error:
        return record_failure(source, f"not a cost map: {error}", sha)
    try:
        return _activate(raw, sha, source, entries, max_loss_share)
    except IntegrityError:
        # Two refreshes found no active version and both created one: the constraint let one win. Once more, and
        # this time the lock finds the winner.
        return _activate(raw, sha, source, entries, max_loss_share)


def record_failure(source: str, reason: str, sha: str = "") -> RefreshOutcome:
    version = CostMapVersion.objects.create(
        sha256=sha, source=source, status=CostMapVersion.Status.FAILED, failure_reason=reason[:5000]
    )
    logger.warning("cost map refresh from %s failed, the current map stays: %s", source, reason)
    return RefreshOutcome("failed", version.pk, reason)


def stored_entries(version: CostMapVersion) -> dict:
    """The parsed map of a stored version (this process's copy when it is the one it prices with)."""
    current = active.loaded()
    if current is not None and current.version == version.label:
        return current.entries
    return load_cost_map(CostMapVersion.objects.values_list("raw_json", flat=True).get(pk=version.pk))


def _mark_unchanged(sha: str) -> RefreshOutcome:
    version = CostMapVersion.objects.filter(status=CostMapVersion.Status.ACTIVE, sha256=sha).first()
    if version is None:  # superseded meanwhile; nothing to note
        return RefreshOutcome("unchanged", None, "the fetched map is the one already active")
    CostMapVersion.objects.filter(pk=version.pk).update(checked_at=timezone.now())
    return RefreshOutcome("unchanged", version.pk, "the fetched map is the one already active")


def _activate(raw: bytes, sha: str, source: str, entries: dict, max_loss_share: Decimal) -> RefreshOutcome:
    with transaction.atomic():
        current = _lock_active_version()
        if current is not None and current.sha256 == sha:
            CostMapVersion.objects.filter(pk=current.pk).update(checked_at=timezone.now())
            return RefreshOutcome("unchanged", current.pk, "another refresh activated this map first")
        current_entries = stored_entries(current) if current is not None else None
        try:
            validate_cost_map(entries, current_entries, max_loss_share)
        except CostMapError as error:
            return record_failure(source, f"refused: {error}", sha)
        diff = diff_cost_maps(current_entries or {}, entries)
        now = timezone.now()
        if current is not None:
            CostMapVersion.objects.filter(pk=current.pk).update(status=CostMapVersion.Status.SUPERSEDED)
            audit.record_update(CostMapVersion, current.pk, {"status": current.status},
                                {"status": CostMapVersion.Status.SUPERSEDED})  # fmt: skip
            CostMapEntry.objects.filter(version=current).delete()
        version = CostMapVersion.objects.create(
            sha256=sha,
            source=source,
            status=CostMapVersion.Status.ACTIVE,
            activated_at=now,
            entry_count=len(entries),
            added_count=len(diff.added),
            removed_count=len(diff.removed),
            changed_count=len(diff.changed),
            diff=diff.as_dict(),
            raw_json=raw.decode(),
        )
        CostMapEntry.objects.bulk_create(entry_rows(version, entries), batch_size=1000)
    store.activate_entries(version, entries)
    logger.info(
        "cost map %s active: %d models (%d added, %d removed, %d changed)",
        version.label,
        len(entries),
        len(diff.added),
        len(diff.removed),
        len(diff.changed),
    )
    summary = f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed"
    return RefreshOutcome("activated", version.pk, summary)


def _lock_active_version() -> CostMapVersion | None:
    """The active version, its row locked until the transaction ends.

    On PostgreSQL a refresh that waited for the lock gets nothing back when the row it waited for was superseded
    meanwhile (its snapshot predates the new row): it asks again and locks the new active version."""
    active_versions = CostMapVersion.objects.filter(status=CostMapVersion.Status.ACTIVE)
    for _attempt in range(3):
        version = active_versions.select_for_update().defer("raw_json").order_by().first()
        if version is not None or not active_versions.exists():
            return version
    return active_versions.select_for_update().defer("raw_json").order_by().first()


def _per_million(price: Any) -> str | None:
    if isinstance(price, bool) or not isinstance(price, Decimal | int):
        return None
    return format_money(Decimal(price) * _PER_MILLION)
