"""What the keys app tells the apps above it without importing them."""

from django.dispatch import Signal

# Sent inside the transaction that sets a key's, user's or team's spend by hand (sender: its model), with the
# `entity`, its `old` and `new` spend. The spend app answers with an adjustment row in the ledger, so that the
# stored spend stays the sum of its logs.
spend_set = Signal()

# Sent inside the transaction that makes a budget holder whose spend counts from now (a tag made by /tag/new, a key's
# spend on one model): `kind`, `entity_id` and its first period's end, `next_reset_at`. The spend app records the
# start as a reset, so the logs from before it are not that holder's (reconcile_spend reads its logs since then).
period_started = Signal()
