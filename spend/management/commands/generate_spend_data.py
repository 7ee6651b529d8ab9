"""python manage.py generate_spend_data: a month of synthetic spend to look at in the overview (the defaults, a few
seconds on SQLite); --logs 1000000 --days 90 on PostgreSQL: a benchmark ledger for it.

Traffic is drawn like real traffic, from a seeded generator: a population of teams, users and keys, each key owned
by a user and a team drawn at random (the gateway charges a call to its key's user and team) and calling its own mix
of one to four deployments (an application uses a few models; a deployment is a model group at one provider, with
its own price). Every call then draws its key (a few keys make most calls), a deployment from that key's mix, and
its time, independently of the row number. So the daily rollups get a row per day × key × deployment in use, tens
of thousands over 90 days, as real traffic gives them. Costs are exact decimals (token counts times per-token
prices, one price as small as the cost map's smallest); the keys', users' and teams' stored spend is set to the
sum of their logs (none of them has had a budget reset in a fresh database), so ``reconcile_spend`` finds no
drift on the generated ledger.
"""

import random
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from keys.models import InternalUser, Team, VirtualKey
from pricing.active import active_cost_map
from pricing.calculator import format_money
from pricing.money import grouped_totals
from spend.entities import PAYERS
from spend.log_rows import price_digest
from spend.models import ChargedPrice, SpendLog
from spend.rollups import rollup_spend


@dataclass(frozen=True, slots=True)
class Deployment:
    model_group: str
    provider: str
    provider_model: str
    call_type: str
    input_price: Decimal  # USD per token
    output_price: Decimal
    pricing_source: str
    weight: int  # how many calls in 100 it serves

    @property
    def unpriced(self) -> bool:
        return self.pricing_source == "unpriced"

    def price_entry(self, cost_map: dict) -> dict[str, str]:
        """The entry its logs name, as the gateway snapshots it: its cost-map entry's prices (a dozen, for most
        models), with its own input and output prices over them; none when unpriced."""
        if self.unpriced:
            return {}
        entry = {name: format_money(value) for name, value in cost_map.get(self.provider_model, {}).items()
                 if isinstance(value, Decimal)}  # fmt: skip
        return {**entry, "input_cost_per_token": format_money(self.input_price),
                "output_cost_per_token": format_money(self.output_price)}  # fmt: skip


DEPLOYMENTS = (
    Deployment("gpt-4o", "openai", "gpt-4o", "chat", Decimal("0.0000025"), Decimal("0.00001"), "cost_map", 18),
    Deployment("gpt-4o", "azure", "azure/gpt-4o-eu", "chat", Decimal("0.00000275"), Decimal("0.000011"), "custom", 10),
    Deployment("gpt-4o-mini", "openai", "gpt-4o-mini", "chat", Decimal("0.00000015"), Decimal("0.0000006"),
               "cost_map", 24),
    Deployment("claude-sonnet", "anthropic", "claude-3-5-sonnet-20241022", "chat", Decimal("0.000003"),
               Decimal("0.000015"), "cost_map", 14),
    Deployment("llama3", "ollama", "llama3:70b", "chat", Decimal("0.0000002"), Decimal("0.0000002"), "custom", 8),
    Deployment("llama3", "sagemaker", "jumpstart-llama3-70b", "chat", Decimal("0.00000027"), Decimal("0.00000035"),
               "base_model", 6),
    Deployment("text-embedding-3-small", "openai", "text-embedding-3-small", "embedding", Decimal("0.00000002"),
               Decimal(0), "cost_map", 12),
    Deployment("tiny-embed", "openai", "tiny-embed", "embedding", Decimal("0.00000000013"), Decimal(0), "custom", 5),
    Deployment("mystery-model", "openai", "mystery-model", "chat", Decimal(0), Decimal(0), "unpriced", 3),
)  # fmt: skip
FAILURE_SHARE = 0.02
# A priced call's cost_breakdown, as the gateway writes it: every part of pricing.calculator.CostBreakdown.
BREAKDOWN_PARTS = ("input", "output", "cache_read", "cache_creation", "reasoning", "audio", "per_second", "search",
                   "citation", "total")  # fmt: skip
# A call's key is the KEY_SKEW-th power of a uniform draw, scaled: key i is picked with a probability falling as
# i^-0.6, so a few keys make most of the calls and the tail still shows up.
KEY_SKEW = 2.5
MIX_SLOTS = 10  # a key's mix as ten draws among its deployments: the share of each is a multiple of 10%


# From this many logs, PostgreSQL's secondary indexes on the ledger are dropped and rebuilt around the insert (in
# the same transaction): ~20 indexes updated row by row cost three times the insert itself.
REBUILD_INDEXES_FROM = 100_000


@contextmanager
def _secondary_indexes_rebuilt(cursor, rebuild: bool):
    """Drop the spend log table's indexes that back no constraint, and build them again at the end. DDL is
    transactional in PostgreSQL: if the insert fails, the rollback brings the indexes back as they were. The table
    is locked (ACCESS EXCLUSIVE) until the commit: this is for a benchmark database, not a live one."""
    if not rebuild:
        yield
        return
    table = SpendLog._meta.db_table
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    indexes = cursor.fetchall()
    for name, _definition in indexes:
        cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    yield
    cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for _name, definition in indexes:
        # A partitioned table's index is defined ON ONLY the parent: made again so, it would be an invalid index of
        # the parent alone, every partition left without it (the payer-led reads then scanned every log). ON makes
        # it on each partition too, as migrate did.
        cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))


@dataclass(frozen=True, slots=True)
class Population:
    team_ids: list[str]
    user_ids: list[str]
    key_hashes: list[str]
    key_users: list[str]  # the user of key i
    key_teams: list[str]  # the team of key i
    key_mixes: list[list[int]]  # the deployments key i calls (indexes into DEPLOYMENTS), MIX_SLOTS of them


class Command(BaseCommand):
    help = (
        "Generate synthetic spend logs, seeded: teams, users and keys (named 'Team 0', 'bench key 0', ...) calling "
        "model groups over the last N days, a few keys making most calls. Sets their spend to their logs' sum (so "
        "reconcile_spend agrees), then rolls the days up. Adds to what is there: running it again adds more logs "
        "for the same payers. The defaults make a month to browse in the admin's spend overview in seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument("--logs", type=int, default=5000, help="How many calls (default 5000).")
        parser.add_argument("--days", type=int, default=30, help="Spread over the last N days (default 30).")
        parser.add_argument("--teams", type=int, default=4, help="Teams, each with a budget (default 4).")
        parser.add_argument("--users", type=int, default=12, help="Users owning the keys (default 12).")
        parser.add_argument("--keys", type=int, default=20, help="Keys, each of a user and a team (default 20).")
        parser.add_argument("--seed", type=int, default=1, help="The same seed draws the same traffic (default 1).")
        parser.add_argument("--no-rollup", action="store_true", help="Leave the rollup to the scheduled task.")

    def handle(self, *args, logs, days, teams, users, keys, seed, no_rollup, **options):
        if min(logs, days, teams, users, keys) < 1:
            raise CommandError("--logs, --days, --teams, --users and --keys must be at least 1.")
        rng = random.Random(seed)
        began = time.monotonic()
        population = self._population(rng, teams, users, keys)
        # A run tag keeps request ids unique when the command runs twice on one database.
        run = uuid.uuid4().hex[:8]
        with transaction.atomic():
            price_digests = self._charged_prices()
            if connection.vendor == "postgresql":
                self._insert_in_sql(rng, run, logs, days, population, price_digests)
            else:
                self._insert_in_batches(rng, run, logs, days, population, price_digests)
            self._charge_payers(population)
        self.stdout.write(f"{logs} logs in {time.monotonic() - began:.1f}s")
        if not no_rollup:
            rolled = time.monotonic()
            rollup_spend()
            self.stdout.write(f"rolled up in {time.monotonic() - rolled:.1f}s")
        self.stdout.write(self.style.SUCCESS(f"done in {time.monotonic() - began:.1f}s"))

    def _charged_prices(self) -> list[str | None]:
        """Each deployment's price entry stored (spend.ChargedPrice, as the ledger stores it); their digests."""
        cost_map = active_cost_map().entries
        entries = [deployment.price_entry(cost_map) for deployment in DEPLOYMENTS]
        ChargedPrice.objects.bulk_create(
            [ChargedPrice(digest=price_digest(entry), entry=entry) for entry in entries if entry], ignore_conflicts=True
        )
        return [price_digest(entry) for entry in entries]

    def _population(self, rng: random.Random, teams: int, users: int, keys: int) -> Population:
        now = timezone.now()
        team_ids = [f"bench-team-{n}" for n in range(teams)]
        for n, team_id in enumerate(team_ids):
            Team.objects.get_or_create(
                team_id=team_id,
                defaults={"team_alias": f"Team {n}", "max_budget": Decimal(1000 * (n + 1)), "budget_duration": "1mo",
                          "budget_reset_at": now + timedelta(days=n + 1)},
            )  # fmt: skip
        user_ids = [f"bench-user-{n}" for n in range(users)]
        InternalUser.objects.bulk_create(
            [InternalUser(user_id=user_id) for user_id in user_ids], ignore_conflicts=True, batch_size=1000
        )
        key_hashes = [uuid.uuid5(uuid.NAMESPACE_OID, f"bench-key-{n}").hex * 2 for n in range(keys)]
        key_users = [rng.choice(user_ids) for _ in key_hashes]
        key_teams = [rng.choice(team_ids) for _ in key_hashes]
        weights = [deployment.weight for deployment in DEPLOYMENTS]
        key_mixes = []
        for _ in key_hashes:
            calls = sorted(set(rng.choices(range(len(DEPLOYMENTS)), weights, k=rng.randint(1, 4))))
            key_mixes.append(rng.choices(calls, [weights[index] for index in calls], k=MIX_SLOTS))
        VirtualKey.objects.bulk_create(
            [
                VirtualKey(token_hash=token_hash, secret_hash=token_hash, key_hint=f"sk-...{token_hash[-4:]}",
                           key_alias=f"bench key {n}", user_id=user_id, team_id=team_id)
                for n, (token_hash, user_id, team_id) in enumerate(zip(key_hashes, key_users, key_teams, strict=True))
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )  # fmt: skip
        # A key kept from an earlier run keeps its owners: the logs must charge the key's own user and team.
        owners = {
            token_hash: (user_id or "", team_id or "")
            for token_hash, user_id, team_id in VirtualKey.objects.filter(token_hash__in=key_hashes).values_list(
                "token_hash", "user_id", "team_id"
            )
        }
        return Population(
            team_ids,
            user_ids,
            key_hashes,
            [owners[token_hash][0] for token_hash in key_hashes],
            [owners[token_hash][1] for token_hash in key_hashes],
            key_mixes,
        )

    def _insert_in_sql(
        self, rng: random.Random, run: str, logs: int, days: int, population: Population, price_digests: list
    ) -> None:
        # One INSERT … SELECT over generate_series: a million rows without a million Python objects. setseed makes
        # random() repeat its draws for the same --seed.
        columns = {
            "model_group": [d.model_group for d in DEPLOYMENTS],
            "provider": [d.provider for d in DEPLOYMENTS],
            "provider_model": [d.provider_model for d in DEPLOYMENTS],
            "call_type": [d.call_type for d in DEPLOYMENTS],
            "pricing_source": [d.pricing_source for d in DEPLOYMENTS],
            "input_price": [d.input_price for d in DEPLOYMENTS],
            "output_price": [d.output_price for d in DEPLOYMENTS],
            "price_digest": price_digests,
        }
        with connection.cursor() as cursor, _secondary_indexes_rebuilt(cursor, logs >= REBUILD_INDEXES_FROM):
            cursor.execute("SELECT setseed(%s)", [rng.uniform(-1, 1)])
            cursor.execute(
                """
                INSERT INTO spend_spendlog (request_id, call_type, key_hash, user_id, team_id, end_user,
                    organization_id, requested_model, model_group, deployment_id, provider, provider_model, api_base,
                    prompt_tokens, completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens, cost,
                    cost_breakdown, charged_price_id, pricing_source, price_version, start_time, end_time,
                    duration_ms, status, error_class, attempts, metadata, request_tags)
                SELECT %(run)s || '-' || g.n, d.call_type, (%(keys)s::text[])[g.k], (%(key_users)s::text[])[g.k],
                    (%(key_teams)s::text[])[g.k], '', '', d.model_group, d.model_group,
                    d.provider || '-' || d.model_group, d.provider, d.provider_model, '', g.prompt, c.completion, 0, 0,
                    0, CASE WHEN g.failed THEN 0 ELSE c.input_cost + c.output_cost END,
                    CASE WHEN g.failed OR d.price_digest IS NULL THEN '{}' ELSE jsonb_build_object(
                        'input', trim_scale(c.input_cost)::text, 'output', trim_scale(c.output_cost)::text,
                        'cache_read', '0', 'cache_creation', '0', 'reasoning', '0', 'audio', '0', 'per_second', '0',
                        'search', '0', 'citation', '0', 'total', trim_scale(c.input_cost + c.output_cost)::text) END,
                    d.price_digest, d.pricing_source, '', g.start, g.start + g.duration * interval '1 millisecond',
                    g.duration, CASE WHEN g.failed THEN 'failure' ELSE 'success' END,
                    CASE WHEN g.failed THEN 'APIConnectionError' ELSE '' END, 1, '{}', '[]'
                FROM (
                    -- Every draw in the select list of the row's own subquery: a volatile call there runs per row.
                    SELECT n, 1 + floor(power(random(), %(skew)s) * %(key_count)s)::int AS k,
                        1 + floor(random() * %(slots)s)::int AS slot,
                        now() - random() * %(days)s * interval '1 day' AS start,
                        random() < %(failure_share)s AS failed, (50 + random() * 4000)::int AS prompt,
                        (random() * 800)::int AS completion_draw, (200 + random() * 9000)::int AS duration
                    FROM generate_series(1, %(logs)s) AS n
                ) g
                JOIN unnest(%(model_group)s::text[], %(provider)s::text[], %(provider_model)s::text[],
                            %(call_type)s::text[], %(pricing_source)s::text[], %(input_price)s::numeric[],
                            %(output_price)s::numeric[], %(price_digest)s::text[])
                    WITH ORDINALITY AS d(model_group, provider, provider_model, call_type, pricing_source,
                                         input_price, output_price, price_digest, i)
                    ON d.i = (%(key_mixes)s::int[])[(g.k - 1) * %(slots)s + g.slot]
                CROSS JOIN LATERAL (
                    SELECT CASE WHEN d.call_type = 'embedding' THEN 0 ELSE g.completion_draw END AS completion
                ) e
                CROSS JOIN LATERAL (
                    SELECT e.completion, g.prompt * d.input_price AS input_cost,
                        e.completion * d.output_price AS output_cost
                ) c
                """,
                {
                    "run": f"bench-{run}",
                    "logs": logs,
                    "days": days,
                    "keys": population.key_hashes,
                    "key_users": population.key_users,
                    "key_teams": population.key_teams,
                    "key_count": len(population.key_hashes),
                    "skew": KEY_SKEW,
                    "key_mixes": [index + 1 for mix in population.key_mixes for index in mix],
                    "slots": MIX_SLOTS,
                    "failure_share": FAILURE_SHARE,
                    **columns,
                },
            )

    def _insert_in_batches(
        self, rng, run: str, logs: int, days: int, population: Population, price_digests: list, batch=5000
    ) -> None:
        now = timezone.now()
        keys = len(population.key_hashes)
        for offset in range(0, logs, batch):
            rows = []
            for n in range(offset, min(offset + batch, logs)):
                key = min(int(rng.random() ** KEY_SKEW * keys), keys - 1)
                index = population.key_mixes[key][int(rng.random() * MIX_SLOTS)]
                deployment = DEPLOYMENTS[index]
                start = now - timedelta(seconds=rng.uniform(0, days * 86400))
                failed = rng.random() < FAILURE_SHARE
                prompt = int(50 + rng.random() * 4000)
                completion = 0 if deployment.call_type == "embedding" else int(rng.random() * 800)
                duration = int(200 + rng.random() * 9000)
                parts = (prompt * deployment.input_price, completion * deployment.output_price)
                cost = Decimal(0) if failed else sum(parts)
                priced = not failed and price_digests[index] is not None
                rows.append(
                    SpendLog(request_id=f"bench-{run}-{n + 1}", call_type=deployment.call_type,
                             key_hash=population.key_hashes[key], user_id=population.key_users[key],
                             team_id=population.key_teams[key], requested_model=deployment.model_group,
                             model_group=deployment.model_group,
                             deployment_id=f"{deployment.provider}-{deployment.model_group}",
                             provider=deployment.provider, provider_model=deployment.provider_model,
                             prompt_tokens=prompt, completion_tokens=completion, cost=cost,
                             cost_breakdown=_breakdown(*parts) if priced else {},
                             charged_price_id=price_digests[index], pricing_source=deployment.pricing_source,
                             start_time=start,
                             end_time=start + timedelta(milliseconds=duration), duration_ms=duration,
                             status="failure" if failed else "success",
                             error_class="APIConnectionError" if failed else "")
                )  # fmt: skip
            SpendLog.objects.bulk_create(rows)

    def _charge_payers(self, population: Population) -> None:
        """Every generated key, user and team has spent what its logs say (one GROUP BY per kind of payer). The logs
        name no customer (end user), so no customer is charged."""
        generated = {"key_hash": population.key_hashes, "user_id": population.user_ids, "team_id": population.team_ids}
        for payer in PAYERS:
            ids = generated.get(payer.log_field)
            if ids is None:
                continue
            totals = grouped_totals(
                SpendLog.objects.filter(**{f"{payer.log_field}__in": ids}), [payer.log_field], money=["cost"]
            )
            spent = {row[payer.log_field]: row["cost"] for row in totals}
            entities = list(payer.model.objects.filter(**{f"{payer.id_field}__in": ids}))
            for entity in entities:
                entity.spend = spent.get(getattr(entity, payer.id_field), Decimal(0))
            payer.model.objects.bulk_update(entities, ["spend"], batch_size=1000)


def _breakdown(input_cost: Decimal, output_cost: Decimal) -> dict[str, str]:
    """A call's cost_breakdown as the gateway writes it, for a call charged for input and output tokens only."""
    amounts = {"input": input_cost, "output": output_cost, "total": input_cost + output_cost}
    return {part: format_money(amounts.get(part, Decimal(0))) for part in BREAKDOWN_PARTS}
