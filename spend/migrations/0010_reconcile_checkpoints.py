# reconcile_spend keeps a checkpoint per budget holder and period, so a run reads only the logs after it.

import pricing.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("spend", "0009_daily_spend_organization"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReconcileCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("key", "Key"),
                            ("user", "User"),
                            ("team", "Team"),
                            ("customer", "Customer"),
                            ("organization", "Organization"),
                            ("tag", "Tag"),
                            ("keymodel", "Key Model"),
                        ],
                        max_length=16,
                    ),
                ),
                ("entity_id", models.CharField(max_length=200)),
                (
                    "period_watermark",
                    models.BigIntegerField(help_text="The log watermark of the reset that began the period."),
                ),
                (
                    "log_id",
                    models.BigIntegerField(
                        help_text="The logs up to this id are summed; none below it can still commit."
                    ),
                ),
                (
                    "spend",
                    pricing.fields.MoneyField(decimal_places=20, help_text="Their exact cost.", max_digits=38),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("kind", "entity_id", "period_watermark"), name="reconcile_checkpoint_unique"
                    )
                ],
            },
        ),
    ]
