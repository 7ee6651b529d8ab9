"""`manage.py sync_roles`: make the Admins, Finance and Team admins groups hold their roles' permissions now.

`migrate` does it too (after every run); this is for a database whose groups were edited by hand."""

from django.core.management.base import BaseCommand

from gateway.roles import sync_roles


class Command(BaseCommand):
    help = "Make the Admins, Finance and Team admins groups hold exactly their roles' permissions."

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default")

    def handle(self, *args, database, **options):
        for role, count in sync_roles(using=database).items():
            self.stdout.write(f"{role}: {count} permissions")
