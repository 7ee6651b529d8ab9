# Tags and a key's per-model spend are budget holders too: their resets and pruned spend are kept like a key's.

from django.db import migrations, models

KINDS = [
    ("key", "Key"),
    ("user", "User"),
    ("team", "Team"),
    ("customer", "Customer"),
    ("tag", "Tag"),
    ("keymodel", "Key Model"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("spend", "0006_daily_tag_spend_and_customer"),
    ]

    operations = [
        migrations.AlterField(
            model_name="budgetreset",
            name="kind",
            field=models.CharField(choices=KINDS, max_length=8),
        ),
        migrations.AlterField(
            model_name="prunedspend",
            name="kind",
            field=models.CharField(choices=KINDS, max_length=8),
        ),
    ]
