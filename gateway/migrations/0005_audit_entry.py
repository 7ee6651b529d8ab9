"""The audit trail of people's changes (gateway.audit, issue 23)."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0004_roles"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                (
                    "actor",
                    models.CharField(
                        help_text='An admin login, "master key", "key sk-...abcd (alias)"…', max_length=200
                    ),
                ),
                (
                    "actor_type",
                    models.CharField(
                        choices=[
                            ("login", "admin login"),
                            ("api", "API key"),
                            ("command", "command"),
                            ("task", "task"),
                        ],
                        max_length=10,
                    ),
                ),
                (
                    "address",
                    models.CharField(
                        blank=True, help_text="The client's address, as the throttle reads it.", max_length=64
                    ),
                ),
                ("model", models.CharField(db_index=True, help_text="app_label.model", max_length=100)),
                ("object_id", models.CharField(max_length=200)),
                ("object_repr", models.CharField(blank=True, max_length=300)),
                (
                    "action",
                    models.CharField(
                        choices=[("created", "Created"), ("updated", "Updated"), ("deleted", "Deleted")], max_length=10
                    ),
                ),
                (
                    "before",
                    models.JSONField(
                        blank=True, help_text="Changed fields' values before (all, when deleted).", null=True
                    ),
                ),
                (
                    "after",
                    models.JSONField(
                        blank=True, help_text="Changed fields' values after (all, when created).", null=True
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "ordering": ["-at", "-id"],
                "default_permissions": ("view",),
                "indexes": [models.Index(fields=["model", "object_id"], name="audit_entry_by_object")],
            },
        ),
    ]
