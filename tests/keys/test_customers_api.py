"""/customer/*: LiteLLM's request and answer shapes, validation, and what each change does to the ledger."""

from decimal import Decimal

import pytest

from keys.models import Budget, Customer, KeyChange
from spend.models import SpendLog
from spend.reconcile import find_drift

pytestmark = pytest.mark.django_db


def test_customer_new_info_update_list_delete(api):
    status, customer = api.post(
        "/customer/new",
        {"user_id": "ishaan-jaff-3", "alias": "Ishaan", "max_budget": 10, "budget_duration": "1d", "rpm_limit": 5},
    )
    assert status == 200, customer
    assert (customer["user_id"], customer["alias"], customer["blocked"], customer["spend"]) == (
        "ishaan-jaff-3", "Ishaan", False, 0,
    )  # fmt: skip
    budget = customer["litellm_budget_table"]
    assert (budget["max_budget"], budget["budget_duration"], budget["rpm_limit"]) == (Decimal(10), "1d", 5)
    assert customer["budget_id"] == budget["budget_id"]
    assert customer["budget_reset_at"] is not None
    assert customer["allowed_model_region"] is None

    status, info = api.get("/customer/info?end_user_id=ishaan-jaff-3")
    assert (status, info) == (200, customer)

    status, updated = api.post("/customer/update", {"user_id": "ishaan-jaff-3", "max_budget": 20, "alias": None})
    assert status == 200, updated
    assert (updated["litellm_budget_table"]["max_budget"], updated["alias"]) == (Decimal(20), None)
    assert updated["budget_id"] == customer["budget_id"]  # the customer's budget changed, not a new one

    status, listed = api.get("/customer/list")
    assert [entry["user_id"] for entry in listed] == ["ishaan-jaff-3"]

    status, deleted = api.post("/customer/delete", {"user_ids": ["ishaan-jaff-3"]})
    assert status == 200
    assert deleted["deleted_customers"] == 1
    assert not Customer.objects.exists()
    assert KeyChange.objects.filter(kind="customer", entity_id="ishaan-jaff-3", deleted=True).exists()


def test_customer_new_with_an_existing_budget_takes_its_limits(api):
    Budget.objects.create(budget_id="free_tier", max_budget=Decimal("0.5"), tpm_limit=1000)

    status, customer = api.post("/customer/new", {"user_id": "c1", "budget_id": "free_tier"})

    assert status == 200, customer
    assert customer["budget_id"] == "free_tier"
    assert customer["litellm_budget_table"]["max_budget"] == Decimal("0.5")
    assert Customer.objects.get(end_user_id="c1").tpm_limit == 1000


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/customer/new", {"user_id": "c1", "max_budget": 1, "colour": "red"}, 400, "colour"),
        ("/customer/new", {"alias": "no id"}, 400, "user_id"),
        ("/customer/new", {"user_id": "c1", "max_budget": -1}, 400, "max_budget"),
        ("/customer/new", {"user_id": "c1", "budget_duration": "soon"}, 400, "budget_duration"),
        ("/customer/new", {"user_id": "c1", "budget_id": "nope"}, 404, "budget_id"),
        ("/customer/new", {"user_id": "x" * 201}, 400, "user_id"),
        ("/customer/new", {"user_id": "\v" + "x" * 200}, 400, "user_id"),  # 201 characters, one of them a space
        ("/customer/update", {"user_id": "nobody", "alias": "x"}, 404, "user_id"),
        ("/customer/delete", {"user_ids": ["existing", "nobody"]}, 404, "user_ids"),
        ("/customer/block", {"user_ids": []}, 400, "user_ids"),
    ],
)
def test_customer_refusals_name_the_field(api, path, body, status, param):
    Customer.objects.create(end_user_id="existing")

    got, answer = api.post(path, body)

    assert got == status, answer
    assert answer["error"]["param"] == param
    assert Customer.objects.count() == 1  # a refused request changes nothing


def test_a_duration_given_by_update_starts_the_customers_period(api):
    api.post("/customer/new", {"user_id": "timed", "max_budget": 5})

    status, updated = api.post("/customer/update", {"user_id": "timed", "budget_duration": "1d"})

    assert (status, updated["litellm_budget_table"]["budget_duration"]) == (200, "1d")
    assert updated["budget_reset_at"] is not None
    assert Customer.objects.get(end_user_id="timed").budget_reset_at is not None


def test_customer_new_refuses_an_existing_customer_and_a_budget_given_twice(api):
    Budget.objects.create(budget_id="free_tier")
    api.post("/customer/new", {"user_id": "c1"})

    again = api.post("/customer/new", {"user_id": "c1"})
    both = api.post("/customer/new", {"user_id": "c2", "budget_id": "free_tier", "max_budget": 1})

    assert (again[0], again[1]["error"]["param"]) == (400, "user_id")
    assert (both[0], both[1]["error"]["param"]) == (400, "budget_id")
    assert list(Customer.objects.values_list("end_user_id", flat=True)) == ["c1"]


def test_a_customer_id_is_kept_as_sent_as_a_calls_user_is(api):
    status, answer = api.post("/customer/new", {"user_id": " c1 "})

    assert (status, answer["user_id"]) == (200, " c1 ")
    assert Customer.objects.filter(end_user_id=" c1 ").exists()


def test_customer_info_of_an_unknown_customer_is_404(api):
    status, answer = api.get("/customer/info?end_user_id=nobody")

    assert status == 404
    assert answer["error"]["param"] == "end_user_id"


def test_block_and_unblock_make_unknown_customers_and_flip_the_flag(api):
    Customer.objects.create(end_user_id="known")

    status, blocked = api.post("/customer/block", {"user_ids": ["known", "new"]})
    assert status == 200
    assert [(entry["user_id"], entry["blocked"]) for entry in blocked["blocked_users"]] == [
        ("known", True), ("new", True),
    ]  # fmt: skip
    status, unblocked = api.post("/customer/unblock", {"user_ids": ["known"]})
    assert [(entry["user_id"], entry["blocked"]) for entry in unblocked["blocked_users"]] == [("known", False)]
    assert dict(Customer.objects.values_list("end_user_id", "blocked")) == {"known": False, "new": True}


def test_spend_set_by_hand_and_deletion_keep_the_ledger_exact(api):
    api.post("/customer/new", '{"user_id": "c1", "spend": 2.5}')
    api.post("/customer/update", {"user_id": "c1", "spend": 1})

    assert Customer.objects.get(end_user_id="c1").spend == 1
    assert find_drift() == []
    api.post("/customer/delete", {"user_ids": ["c1"]})
    # Made again by its next call, the customer starts from 0 and its logs still sum to that.
    Customer.objects.create(end_user_id="c1")
    assert find_drift() == []
    assert sorted(SpendLog.objects.filter(end_user="c1").values_list("cost", flat=True)) == [
        Decimal("-1.5"), Decimal(-1), Decimal("2.5"),
    ]  # fmt: skip
