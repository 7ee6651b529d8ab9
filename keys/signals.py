"""What the keys app tells the apps above it without importing them."""

from django.dispatch import Signal

# Sent inside the transaction that sets a key's, user's or team's spend by hand (sender: its model), with the
# `entity`, its `old` and `new` spend. The spend app answers with an adjustment row in the ledger, so that the
# stored spend stays the sum of its logs.
spend_set = Signal()
