"""python manage.py prune_spend_logs: remove the raw spend logs older than SPEND_LOG_RETENTION_DAYS now."""

from django.core.management.base import BaseCommand

from spend.retention import prune_spend_logs


class Command(BaseCommand):
    help = (
        "Remove the rolled-up spend logs older than SPEND_LOG_RETENTION_DAYS now, as the periodic task does: on "
        "PostgreSQL whole day partitions are detached and dropped, on SQLite logs are deleted in batches. Their cost "
        "in current budget periods is kept, so reconcile_spend still balances."
    )

    def handle(self, *args, **options):
        pruned = prune_spend_logs()
        days = ", ".join(day.isoformat() for day in pruned.days) or "none"
        self.stdout.write(
            self.style.SUCCESS(
                f"Pruned {pruned.rows} spend logs: {len(pruned.partitions)} partitions dropped "
                f"({', '.join(pruned.partitions) or 'none'}), days {days}."
            )
        )
