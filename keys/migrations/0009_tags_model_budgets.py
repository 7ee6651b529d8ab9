# Tag budget holders, per-model key budgets and rate limits, and the tags a key gives its calls (issue 18).

from decimal import Decimal

import django.db.models.deletion
from django.db import migrations, models

import pricing.fields


def spend_fields():
    return [
        ("budget_reset_at", models.DateTimeField(blank=True, null=True)),
        ("spend", pricing.fields.MoneyField(decimal_places=20, default=Decimal("0"), max_digits=38)),
        (
            "spend_epoch",
            models.PositiveBigIntegerField(
                default=0,
                editable=False,
                help_text="Moves when spend is set by hand: every process's budget counters re-read it.",
            ),
        ),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0008_customers_budgets"),
    ]

    operations = [
        migrations.AddField(
            model_name="virtualkey",
            name="tags",
            field=models.JSONField(
                blank=True, default=list, help_text="Tags every call with this key carries (and pays)."
            ),
        ),
        migrations.AddField(
            model_name="virtualkey",
            name="model_max_budget",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='Model group → {"budget_limit": USD, "time_period": "1d"} (or USD alone): a budget per model.',
            ),
        ),
        migrations.AddField(
            model_name="virtualkey",
            name="model_rpm_limit",
            field=models.JSONField(blank=True, default=dict, help_text="Model group → requests per minute."),
        ),
        migrations.AddField(
            model_name="virtualkey",
            name="model_tpm_limit",
            field=models.JSONField(blank=True, default=dict, help_text="Model group → tokens per minute."),
        ),
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200, unique=True)),
                ("description", models.TextField(blank=True)),
                (
                    "max_budget",
                    pricing.fields.MoneyField(
                        blank=True, decimal_places=20, help_text="USD; empty: no budget.", max_digits=38, null=True
                    ),
                ),
                (
                    "soft_budget",
                    pricing.fields.MoneyField(
                        blank=True,
                        decimal_places=20,
                        help_text="USD; crossing it sends an alert.",
                        max_digits=38,
                        null=True,
                    ),
                ),
                (
                    "budget_duration",
                    models.CharField(blank=True, help_text='"30d", "1mo"…; empty: never resets.', max_length=20),
                ),
                *spend_fields(),
                ("tpm_limit", models.PositiveBigIntegerField(blank=True, null=True)),
                ("rpm_limit", models.PositiveBigIntegerField(blank=True, null=True)),
                ("max_parallel_requests", models.PositiveIntegerField(blank=True, null=True)),
                ("metadata", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("created_by", models.CharField(blank=True, max_length=200)),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="KeyModelSpend",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "holder_id",
                    models.CharField(help_text="<token_hash>:<model group>", max_length=200, unique=True),
                ),
                ("model", models.CharField(help_text="The model group.", max_length=135)),
                *spend_fields(),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "key",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="model_spends",
                        to="keys.virtualkey",
                        to_field="token_hash",
                    ),
                ),
            ],
            options={
                "verbose_name": "key model spend",
                "ordering": ["key", "model"],
            },
        ),
        migrations.AlterField(
            model_name="keychange",
            name="kind",
            field=models.CharField(
                choices=[
                    ("key", "Key"),
                    ("user", "User"),
                    ("team", "Team"),
                    ("customer", "Customer"),
                    ("budget", "Budget"),
                    ("tag", "Tag"),
                    ("keymodel", "Key Model"),
                ],
                max_length=8,
            ),
        ),
    ]
