"""Keys get a `secret_hash` apart from their identity: regenerating a key changes its secret, not its name.

Every key made so far still has its first secret, so its secret hash is its token hash. The column is added
nullable, filled, then made required and unique: on SQLite and PostgreSQL alike, whatever rows the table holds.
"""

from django.db import migrations, models
from django.db.models import F


def secret_is_the_first_secret(apps, schema_editor):
    VirtualKey = apps.get_model("keys", "VirtualKey")
    VirtualKey.objects.using(schema_editor.connection.alias).update(secret_hash=F("token_hash"))


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0004_spend_epoch"),
    ]

    operations = [
        migrations.AddField(
            model_name="virtualkey",
            name="secret_hash",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.RunPython(secret_is_the_first_secret, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="virtualkey",
            name="secret_hash",
            field=models.CharField(
                help_text="sha256 hex of the current secret (changes when regenerated).", max_length=64, unique=True
            ),
        ),
        migrations.AlterField(
            model_name="virtualkey",
            name="token_hash",
            field=models.CharField(
                help_text="The key's identity: sha256 hex of its first secret.", max_length=64, unique=True
            ),
        ),
        migrations.AlterField(
            model_name="keychange",
            name="entity_id",
            field=models.CharField(help_text="token_hash (a key's identity), user_id or team_id", max_length=200),
        ),
    ]
