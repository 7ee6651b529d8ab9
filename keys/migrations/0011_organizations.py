# Organizations, the level above teams (LiteLLM's): their budget holder rows, their members, a team's organization; the
# change log and reservations name them by a kind of 12 characters, so those kind columns widen to 16.

import django.db.models.deletion
import keys.models
import pricing.fields
from decimal import Decimal
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0010_key_team_user_fields"),
    ]

    operations = [
        migrations.AlterField(
            model_name="keychange",
            name="entity_id",
            field=models.CharField(
                help_text="token_hash (a key's identity), user_id, team_id, end_user_id, budget_id or organization_id",
                max_length=200,
            ),
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
                    ("organization", "Organization"),
                    ("tag", "Tag"),
                    ("keymodel", "Key Model"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="reservation",
            name="kind",
            field=models.CharField(max_length=16),
        ),
        migrations.CreateModel(
            name="Organization",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("organization_id", models.CharField(default=keys.models.new_id, max_length=200, unique=True)),
                ("organization_alias", models.CharField(blank=True, max_length=200)),
                ("metadata", models.JSONField(blank=True, default=dict)),
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
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("created_by", models.CharField(blank=True, max_length=200)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("updated_by", models.CharField(blank=True, max_length=200)),
                (
                    "models",
                    models.JSONField(
                        blank=True, default=list, help_text="Model groups its teams may call; empty: all."
                    ),
                ),
                (
                    "budget",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="organizations",
                        to="keys.budget",
                        to_field="budget_id",
                    ),
                ),
            ],
            options={
                "ordering": ["organization_alias", "organization_id"],
            },
        ),
        migrations.AddField(
            model_name="team",
            name="organization",
            field=models.ForeignKey(
                blank=True,
                help_text="The organization above the team: its budget and models hold every key of the team too.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="teams",
                to="keys.organization",
                to_field="organization_id",
            ),
        ),
        migrations.CreateModel(
            name="OrganizationMembership",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "user_role",
                    models.CharField(
                        choices=[
                            ("org_admin", "Org Admin"),
                            ("internal_user", "Internal User"),
                            ("internal_user_viewer", "Internal User Viewer"),
                        ],
                        default="internal_user",
                        max_length=30,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to="keys.organization",
                        to_field="organization_id",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="organization_memberships",
                        to="keys.internaluser",
                        to_field="user_id",
                    ),
                ),
            ],
            options={
                "ordering": ["organization_id", "user_id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("organization", "user"), name="one_membership_per_user_and_organization"
                    )
                ],
            },
        ),
    ]
