"""The history of each deployment's custom pricing: a revision is kept whenever its prices or base_model change."""

from collections.abc import Iterable, Mapping
from decimal import Decimal

from pricing.calculator import format_money
from pricing.models import PriceRevision


def record_price_revision(
    *,
    model_id: str,
    model_name: str,
    custom_prices: Mapping[str, Decimal | None],
    base_model: str,
    changed_by: str,
    note: str = "",
) -> PriceRevision | None:
    """Keep the deployment's pricing as a new revision if it differs from its latest one; None if it does not.

    Call it in the transaction that saves the deployment. A deployment that never had custom pricing or a base_model
    has no history to keep until it gets one."""
    prices = {name: format_money(Decimal(value)) for name, value in custom_prices.items() if value is not None}
    latest = PriceRevision.objects.filter(model_id=model_id).only("prices", "base_model").first()
    if latest is None and not prices and not base_model:
        return None
    if latest is not None and latest.prices == prices and latest.base_model == base_model:
        return None
    return PriceRevision.objects.create(
        model_id=model_id,
        model_name=model_name,
        prices=prices,
        base_model=base_model,
        changed_by=changed_by[:150],
        note=note[:500],
    )


def latest_revision_labels(model_ids: Iterable[str]) -> dict[str, str]:
    """``{model_id: "revision:<id>"}`` of each deployment's current revision (one query), for price_version."""
    labels: dict[str, str] = {}
    rows = PriceRevision.objects.filter(model_id__in=list(model_ids)).order_by("model_id", "-changed_at", "-id")
    for model_id, pk in rows.values_list("model_id", "pk"):
        labels.setdefault(model_id, f"revision:{pk}")
    return labels
