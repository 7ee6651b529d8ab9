"""The shipped cost map snapshot becomes the first active version (skipped when a version is already active)."""

from django.db import migrations


def install(apps, schema_editor):
    from pricing.versions import install_shipped_version

    install_shipped_version(apps.get_model("pricing", "CostMapVersion"), apps.get_model("pricing", "CostMapEntry"))


class Migration(migrations.Migration):
    dependencies = [("pricing", "0001_cost_map_versions_and_price_revisions")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop, elidable=True)]
