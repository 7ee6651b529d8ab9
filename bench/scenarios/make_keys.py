"""Add COUNT virtual keys to the database in DATABASE_URL, in bulk inserts through Django's ORM.

    PYTHONPATH=<Tollgate's code> python -P bench/scenarios/make_keys.py COUNT

Run by the scale scenario in its own process, against the code being measured. Each key is stored as Tollgate
stores keys (the SHA-256 of a random secret); the secrets themselves are thrown away: no call uses them.
"""

import hashlib
import json
import os
import secrets
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
django.setup()

from keys.models import VirtualKey  # noqa: E402

BATCH = 5_000


def main() -> None:
    count = int(sys.argv[1])
    prefix = secrets.token_hex(4)
    started = time.perf_counter()
    made = 0
    while made < count:
        size = min(BATCH, count - made)
        keys = []
        for index in range(made, made + size):
            raw = f"sk-scale-{prefix}-{index:07d}-{secrets.token_hex(8)}"
            token_hash = hashlib.sha256(raw.encode()).hexdigest()
            keys.append(
                VirtualKey(
                    token_hash=token_hash,
                    secret_hash=token_hash,
                    key_hint=f"sk-...{raw[-4:]}",
                    key_alias=f"scale-{prefix}-{index}",
                    created_by="bench/scenarios/make_keys.py",
                )
            )
        VirtualKey.objects.bulk_create(keys, batch_size=size)
        made += size
    seconds = time.perf_counter() - started
    print(json.dumps({"created": made, "seconds": round(seconds, 2), "keys": VirtualKey.objects.count()}))


if __name__ == "__main__":
    main()
