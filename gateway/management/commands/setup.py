"""`manage.py setup`: make the embedded default's data folder and secret key (settings.py only names them)."""

from django.core.management.base import BaseCommand

from gateway.local_files import prepare_local_files


class Command(BaseCommand):
    help = "Make the local data folder and, without SECRET_KEY in the environment, its secret key file."
    # Runs before anything else exists: the checks (and the database they may reach) come after it.
    requires_system_checks = []

    def handle(self, *args, **options):
        made = prepare_local_files()
        for path in made:
            self.stdout.write(f"made {path}")
        if not made:
            self.stdout.write("nothing to make")
