"""The database cache table behind the password-reset email limit (config/settings/signin.py):
the "signin" cache uses it when no REDIS_URL is set, so the limit holds across web processes."""

from django.conf import settings
from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", settings.SIGNIN_CACHE_TABLE, database=schema_editor.connection.alias, verbosity=0)


def drop_cache_table(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(settings.SIGNIN_CACHE_TABLE)}")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_staff_permissions"),
    ]

    operations = [
        migrations.RunPython(create_cache_table, drop_cache_table),
    ]
