"""python manage.py reconcile_spend [--fix]: does every stored spend equal the sum of its logs?"""

from django.core.management.base import BaseCommand, CommandError

from pricing.calculator import format_money
from spend.reconcile import find_drift, fix_drift


class Command(BaseCommand):
    help = (
        "Check that each budget holder's stored spend (keys, users, teams, organizations, customers, tags, keys' "
        "per-model spend) equals the exact sum of its spend logs since its last budget reset; report every drift, and "
        "with --fix set the stored spend to what the logs say."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Correct drifted spend from the logs.")

    def handle(self, *args, fix=False, **options):
        drifts = find_drift()
        for drift in drifts:
            self.stdout.write(
                f"{drift.kind} {drift.entity_id}: stored {format_money(drift.stored)}, "
                f"logs {format_money(drift.expected)} (drift {format_money(drift.difference)})"
            )
        if not drifts:
            self.stdout.write(self.style.SUCCESS("Spend reconciles: every budget holder matches its logs."))
            return
        if not fix:
            raise CommandError(f"{len(drifts)} spend totals drifted from their logs; run with --fix to correct them.")
        fixed = [fixed for drift in drifts if (fixed := fix_drift(drift)) is not None]
        self.stdout.write(self.style.SUCCESS(f"Corrected {len(fixed)} of {len(drifts)} drifted spend totals."))
