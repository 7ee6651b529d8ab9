from django.apps import AppConfig


class SpendConfig(AppConfig):
    name = "spend"

    def ready(self):
        from keys.signals import spend_set
        from spend.adjustments import record_spend_set

        spend_set.connect(record_spend_set, dispatch_uid="spend.adjustments.record_spend_set")
