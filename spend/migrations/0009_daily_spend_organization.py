# Daily spend rolls up by organization too, so /global/spend/report answers group_by=organization from the rollups.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("spend", "0008_organization"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="dailyspend",
            name="daily_spend_unique",
        ),
        migrations.AddField(
            model_name="dailyspend",
            name="organization_id",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddConstraint(
            model_name="dailyspend",
            constraint=models.UniqueConstraint(
                fields=(
                    "day",
                    "team_id",
                    "key_hash",
                    "user_id",
                    "end_user",
                    "organization_id",
                    "model_group",
                    "provider",
                ),
                name="daily_spend_unique",
            ),
        ),
    ]
