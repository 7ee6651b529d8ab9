"""Spend logs name the price entry they were charged at (spend.ChargedPrice, stored once) instead of copying it.

Existing logs' entries move into the new table in batches of logs (by id, so a large ledger is never held in
memory), then the copied column goes."""

import django.db.models.deletion
from django.db import migrations, models

from spend.log_rows import price_digest

_BATCH = 5000


def _logged_prices(apps, schema_editor):
    SpendLog, ChargedPrice = apps.get_model("spend", "SpendLog"), apps.get_model("spend", "ChargedPrice")
    last_id = 0
    while True:
        batch = list(SpendLog.objects.filter(id__gt=last_id).order_by("id").values_list("id", "prices")[:_BATCH])
        if not batch:
            return
        last_id = batch[-1][0]
        logs_by_digest, entries = {}, {}
        for log_id, prices in batch:
            digest = price_digest(prices)
            if digest is not None:
                logs_by_digest.setdefault(digest, []).append(log_id)
                entries[digest] = prices
        ChargedPrice.objects.bulk_create(
            [ChargedPrice(digest=digest, entry=entry) for digest, entry in entries.items()], ignore_conflicts=True
        )
        for digest, log_ids in logs_by_digest.items():
            SpendLog.objects.filter(id__in=log_ids).update(charged_price_id=digest)


def _copied_prices(apps, schema_editor):
    SpendLog, ChargedPrice = apps.get_model("spend", "SpendLog"), apps.get_model("spend", "ChargedPrice")
    for price in ChargedPrice.objects.iterator(chunk_size=100):
        SpendLog.objects.filter(charged_price_id=price.digest).update(prices=price.entry)


class Migration(migrations.Migration):
    dependencies = [
        ("spend", "0011_partitioned_spend_log"),
    ]

    operations = [
        migrations.CreateModel(
            name="ChargedPrice",
            fields=[
                ("digest", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("entry", models.JSONField(help_text="The price entry charged, as exact decimal strings.")),
                ("first_seen", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.AddField(
            model_name="spendlog",
            name="charged_price",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                help_text="The price entry charged (none for an unpriced call).",
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="spend.chargedprice",
            ),
        ),
        migrations.RunPython(_logged_prices, _copied_prices, elidable=True),
        migrations.RemoveField(model_name="spendlog", name="prices"),
    ]
