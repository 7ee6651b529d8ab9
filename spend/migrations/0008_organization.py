# Organizations are budget holders above teams: every call logs its team's organization, and their resets and pruned
# spend are recorded like a team's (a kind of 12 characters: the kind columns widen to 16).

from django.db import migrations, models

KINDS = [
    ("key", "Key"),
    ("user", "User"),
    ("team", "Team"),
    ("customer", "Customer"),
    ("organization", "Organization"),
    ("tag", "Tag"),
    ("keymodel", "Key Model"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("spend", "0007_tag_spend"),
    ]

    operations = [
        migrations.AddField(
            model_name="spendlog",
            name="organization_id",
            field=models.CharField(blank=True, help_text="The organization of the key's team.", max_length=200),
        ),
        migrations.AlterField(
            model_name="budgetreset",
            name="kind",
            field=models.CharField(choices=KINDS, max_length=16),
        ),
        migrations.AlterField(
            model_name="prunedspend",
            name="kind",
            field=models.CharField(choices=KINDS, max_length=16),
        ),
        migrations.AddIndex(
            model_name="spendlog",
            index=models.Index(fields=["organization_id", "start_time"], name="spend_spend_organiz_c3275a_idx"),
        ),
    ]
