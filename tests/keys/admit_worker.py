"""A separate server process for the cross-process budget test: admits N concurrent calls, prints how many passed.

python -m tests.keys.admit_worker <redis url> <prefix> <calls> <database name>

With Redis unreachable, budgets are admitted by the database: the test's own, named on the command line.
"""

import asyncio
import os
import sys
from decimal import Decimal


async def _admit_all(calls: int) -> int:
    from keys import limits_redis
    from keys.errors import BudgetExceeded
    from keys.limits import admit
    from keys.limits_redis import redis_counters
    from tests.keys.conftest import _seeds_as_held
    from tests.keys.factories import caller, limits

    limits_redis.seeds = _seeds_as_held  # the factory's limits have no rows behind them: seeded from what they hold

    key = caller(limits("key", entity_id="shared-key", max_budget=Decimal("1")))

    async def one():
        try:
            await admit(key, model_group="gpt-4", worst_case_cost=Decimal("0.1"), estimated_tokens=1)
        except BudgetExceeded:
            return 0
        return 1

    admitted = sum(await asyncio.gather(*(one() for _ in range(calls))))
    await redis_counters().close()
    return admitted


def main() -> None:
    url, prefix, calls, database = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    connection.settings_dict["NAME"] = database
    settings.REDIS_URL = url
    settings.TOLLGATE_LIMITS_PREFIX = prefix
    print(asyncio.run(_admit_all(calls)))


if __name__ == "__main__":
    main()
