"""python manage.py rollup_spend: bring the daily rollups up to date with the spend logs now."""

from django.core.management.base import BaseCommand

from spend.rollups import rollup_spend


class Command(BaseCommand):
    help = (
        "Roll the spend logs up into daily spend now, as the periodic task does (Celery beat, or the server process "
        "without REDIS_URL). Safe to run at any time, twice, or beside a running rollup: nothing counts twice."
    )

    def handle(self, *args, **options):
        run = rollup_spend()
        days = sorted(run.recomputed_days + run.added_days)
        listed = ", ".join(day.isoformat() for day in days)
        self.stdout.write(self.style.SUCCESS(f"Rolled up to spend log {run.last_log_id}: {len(days)} days ({listed})."))
