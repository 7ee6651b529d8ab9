"""The three roles (Admins, Finance, Team admins) as groups with their permissions (gateway.roles, issue 23)."""

from django.db import migrations


def make_roles(apps, schema_editor):
    from gateway.roles import sync_roles

    sync_roles(apps, schema_editor.connection.alias)


def remove_roles(apps, schema_editor):
    from gateway.roles import ROLES

    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("gateway", "0003_router_settings_routing_strategy_args"),
        ("keys", "0007_team_administrators"),
        ("pricing", "0002_install_shipped_cost_map"),
        ("spend", "0004_interrupted_status"),
    ]

    operations = [migrations.RunPython(make_roles, remove_roles)]
