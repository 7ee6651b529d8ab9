from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0009_tags_model_budgets"),
    ]

    operations = [
        migrations.AddField(
            model_name="virtualkey",
            name="allowed_routes",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Paths or LiteLLM route groups the key may call; empty: every route.",
            ),
        ),
        migrations.AddField(
            model_name="virtualkey",
            name="enforced_params",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text='Body params every call must carry ("user", "metadata.generation_name").',
            ),
        ),
        migrations.AddField(
            model_name="virtualkey",
            name="permissions",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='LiteLLM\'s key permissions; {"get_spend_routes": true}: may read spend.',
            ),
        ),
        migrations.AddField(
            model_name="internaluser",
            name="user_role",
            field=models.CharField(
                choices=[
                    ("proxy_admin", "Proxy Admin"),
                    ("proxy_admin_viewer", "Proxy Admin Viewer"),
                    ("internal_user", "Internal User"),
                    ("internal_user_viewer", "Internal User Viewer"),
                ],
                default="internal_user",
                max_length=32,
            ),
        ),
        migrations.AddField(
            model_name="internaluser",
            name="tpm_limit",
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="internaluser",
            name="rpm_limit",
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="internaluser",
            name="max_parallel_requests",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="team",
            name="admin_members",
            field=models.ManyToManyField(
                blank=True,
                help_text="Members whose role in the team is admin (LiteLLM's members_with_roles); the others' is user.",
                related_name="teams_as_admin",
                to="keys.internaluser",
            ),
        ),
    ]
