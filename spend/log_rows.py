"""What a spend log row holds beyond its plain columns, sized to what it must prove.

- The price entry charged is stored once per version (spend.models.ChargedPrice) and named in each log by a digest
  of its content: a cost-map entry is ~400 bytes of exact decimal strings, and every call of a deployment is charged
  at the same one until its price changes. The ledger writes the entries its batch names that this process has not
  written yet, in the batch's own transaction (ON CONFLICT DO NOTHING: another process may have written one first),
  so a call costs no extra query or round trip, and a known price costs nothing at all. Naming a cost-map entry
  takes 0.8 us (orjson and BLAKE2b, measured), so it is done per call rather than cached.
- A call's metadata is the caller's to fill: it is kept up to TOLLGATE_SPEND_LOG_METADATA_BYTES (its JSON), the
  rest dropped with a note saying so. Tags, the customer and the payers have columns of their own, never cut.
"""

import hashlib

import orjson
from django.conf import settings

_written: set[str] = set()  # digests whose entry this process has seen committed
# The key of the note a cut metadata carries; the keys kept are the first, in the caller's order, that fit.
TRUNCATED = "tollgate_truncated"


def price_digest(prices: dict) -> str | None:
    """The name of a price entry: a digest of its canonical JSON (keys sorted). None for no entry (unpriced)."""
    if not prices:
        return None
    return hashlib.blake2b(orjson.dumps(prices, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def unwritten_prices(entries) -> dict[str, dict]:
    """The price entries a batch names that this process has not written yet, by digest (their order fixed, so
    concurrent writers take their rows' locks in the same order)."""
    unwritten = {}
    for entry in entries:
        digest = price_digest(entry.prices)
        if digest is not None and digest not in _written:
            unwritten[digest] = entry.prices
    return dict(sorted(unwritten.items()))


def prices_written(digests) -> None:
    """Record entries as committed: later batches no longer send them."""
    _written.update(digests)


def forget_written_prices() -> None:
    """Forget what was written (a test whose database rolled back its rows)."""
    _written.clear()


def bounded_metadata(metadata: dict) -> dict:
    """The metadata as a log keeps it: whole if its JSON fits in TOLLGATE_SPEND_LOG_METADATA_BYTES; else its first
    keys that fit (in the caller's order, each whole or not at all) and a note saying what was cut. The same
    metadata is always cut the same way."""
    if not metadata:
        return metadata
    limit = settings.TOLLGATE_SPEND_LOG_METADATA_BYTES
    size = len(orjson.dumps(metadata, default=str))
    if size <= limit:
        return metadata
    note = {TRUNCATED: f"metadata of {size} bytes cut to {limit}: {len(metadata)} keys, the last {{}} dropped"}
    room = limit - len(orjson.dumps(note)) - 8  # the note's own size, and the digits of the count it will hold
    kept: dict = {}
    for key, value in metadata.items():
        item = len(orjson.dumps({key: value}, default=str)) - 1  # without its braces, with a comma
        if item > room:
            break
        kept[key] = value
        room -= item
    kept[TRUNCATED] = note[TRUNCATED].format(len(metadata) - len(kept))
    return kept
