from decimal import Decimal

import pytest

from spend.ledger import write_batch
from spend.models import SpendLog
from tests.spend.conftest import make_entry

pytestmark = pytest.mark.django_db


def test_a_batch_written_twice_is_logged_once():
    batch = [make_entry(), make_entry()]
    write_batch(batch)
    write_batch(batch)  # a retry after a commit whose acknowledgement was lost

    assert SpendLog.objects.count() == 2


def test_a_request_id_twice_in_one_batch_is_logged_once():
    entry = make_entry()
    write_batch([entry, entry])
    assert SpendLog.objects.count() == 1


@pytest.mark.parametrize("cost", ["0.00000000013", "123456789012345678.12345678901234567891", "0"])
def test_the_logged_cost_keeps_every_digit(cost):
    write_batch([make_entry(cost=Decimal(cost))])
    assert SpendLog.objects.get().cost == Decimal(cost)
