"""`manage.py import_config FILE`: make the deployments and router settings match a LiteLLM config.yaml."""

from django.core.management.base import BaseCommand, CommandError

from gateway.config_import import ConfigError, import_config_file


class Command(BaseCommand):
    help = "Import a LiteLLM-style config.yaml (idempotent; a bad file changes nothing)."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        try:
            summary = import_config_file(path)
        except (ConfigError, OSError) as exc:
            raise CommandError(f"{path}: {exc}") from None
        self.stdout.write(f"{path}: {summary}")
