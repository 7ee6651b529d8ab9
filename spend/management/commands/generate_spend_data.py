"""python manage.py generate_spend_data --logs 1000000 --days 90: a benchmark ledger for the spend overview."""

import random
import time
import uuid
from datetime import timedelta
from decimal import Decimal

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from spend.models import SpendLog
from spend.rollups import rollup_spend

MODELS = (("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet", "anthropic"), ("llama3", "ollama"),
          ("mystery-model", "openai"))  # fmt: skip


class Command(BaseCommand):
    help = "Generate synthetic spend logs (teams, keys, users, models over N days), then roll them up."

    def add_arguments(self, parser):
        parser.add_argument("--logs", type=int, default=1_000_000)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--teams", type=int, default=12)
        parser.add_argument("--keys", type=int, default=200)

    def handle(self, *args, logs, days, teams, keys, **options):
        began = time.monotonic()
        team_ids = self._teams(teams)
        key_hashes = [uuid.uuid5(uuid.NAMESPACE_OID, f"bench-key-{n}").hex * 2 for n in range(keys)]
        if connection.vendor == "postgresql":
            self._insert_in_sql(logs, days, team_ids, key_hashes)
        else:
            self._insert_in_batches(logs, days, team_ids, key_hashes)
        self.stdout.write(f"{logs} logs in {time.monotonic() - began:.1f}s; rolling up…")
        rollup_spend()
        self.stdout.write(self.style.SUCCESS(f"done in {time.monotonic() - began:.1f}s"))

    def _teams(self, count: int) -> list[str]:
        team_model = apps.get_model("keys", "Team")
        ids = [f"bench-team-{n}" for n in range(count)]
        for n, team_id in enumerate(ids):
            team_model.objects.get_or_create(
                team_id=team_id,
                defaults={"team_alias": f"Team {n}", "max_budget": Decimal(1000 * (n + 1)), "budget_duration": "1mo",
                          "budget_reset_at": timezone.now() + timedelta(days=n + 1)},
            )  # fmt: skip
        return ids

    def _insert_in_sql(self, logs, days, team_ids, key_hashes):
        # One INSERT … SELECT over generate_series: a million rows without a million Python objects.
        models_sql = "ARRAY[" + ",".join(f"'{model}'" for model, _ in MODELS) + "]"
        providers_sql = "ARRAY[" + ",".join(f"'{provider}'" for _, provider in MODELS) + "]"
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO spend_spendlog (request_id, call_type, key_hash, user_id, team_id, requested_model,
                    model_group, deployment_id, provider, provider_model, api_base, prompt_tokens, completion_tokens,
                    cached_tokens, cache_creation_tokens, reasoning_tokens, cost, cost_breakdown, prices,
                    pricing_source, price_version, start_time, end_time, duration_ms, status, error_class, attempts,
                    metadata, request_tags)
                SELECT 'bench-' || md5(random()::text || n), 'chat', k.hash, 'bench-user-' || (n %% 50),
                    (%(teams)s::text[])[1 + n %% %(team_count)s], m.model, m.model, '', m.provider, m.model, '',
                    t.prompt, t.completion, 0, 0, 0,
                    CASE WHEN m.model = 'mystery-model' THEN 0
                         ELSE t.prompt * 0.0000025 + t.completion * 0.00001 + 0.00000000013 END,
                    '{{}}', '{{}}', CASE WHEN m.model = 'mystery-model' THEN 'unpriced' ELSE 'cost_map' END, '',
                    s.start, s.start + interval '1 second', 1000,
                    CASE WHEN n %% 50 = 0 THEN 'failure' ELSE 'success' END, '', 1, '{{}}', '[]'
                FROM generate_series(1, %(logs)s) AS n
                CROSS JOIN LATERAL (SELECT now() - random() * %(days)s * interval '1 day' AS start) s
                CROSS JOIN LATERAL (SELECT (random() * 2000)::int AS prompt, (random() * 500)::int AS completion) t
                CROSS JOIN LATERAL (SELECT ({models_sql})[1 + (n * 7) %% {len(MODELS)}] AS model,
                                           ({providers_sql})[1 + (n * 7) %% {len(MODELS)}] AS provider) m
                CROSS JOIN LATERAL (SELECT (%(keys)s::text[])[1 + (n * 13) %% %(key_count)s] AS hash) k
                """,
                {"teams": team_ids, "team_count": len(team_ids), "logs": logs, "days": days, "keys": key_hashes,
                 "key_count": len(key_hashes)},
            )  # fmt: skip

    def _insert_in_batches(self, logs, days, team_ids, key_hashes, batch=5000):
        rng = random.Random(1)
        now = timezone.now()
        for offset in range(0, logs, batch):
            rows = []
            for n in range(offset, min(offset + batch, logs)):
                model, provider = MODELS[n * 7 % len(MODELS)]
                start = now - timedelta(seconds=rng.uniform(0, days * 86400))
                prompt, completion = rng.randint(0, 2000), rng.randint(0, 500)
                unpriced = model == "mystery-model"
                cost = Decimal(0) if unpriced else prompt * Decimal("0.0000025") + completion * Decimal("0.00001")
                rows.append(
                    SpendLog(request_id=f"bench-{uuid.uuid4().hex}", call_type="chat", key_hash=key_hashes[n * 13 % len(key_hashes)],
                             user_id=f"bench-user-{n % 50}", team_id=team_ids[n % len(team_ids)], requested_model=model,
                             model_group=model, provider=provider, provider_model=model, prompt_tokens=prompt,
                             completion_tokens=completion, cost=cost, pricing_source="unpriced" if unpriced else "cost_map",
                             start_time=start, end_time=start + timedelta(seconds=1),
                             status="failure" if n % 50 == 0 else "success")
                )  # fmt: skip
            SpendLog.objects.bulk_create(rows)
