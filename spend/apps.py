from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SpendConfig(AppConfig):
    name = "spend"

    def ready(self):
        from keys.signals import period_started, spend_set
        from spend.adjustments import record_spend_set
        from spend.partitions import partitions_after_migrate
        from spend.resets import record_period_start

        spend_set.connect(record_spend_set, dispatch_uid="spend.adjustments.record_spend_set")
        period_started.connect(record_period_start, dispatch_uid="spend.resets.record_period_start")
        post_migrate.connect(partitions_after_migrate, sender=self, dispatch_uid="spend.partitions.after_migrate")
