"""/budget/*: LiteLLM's shapes, and a budget's change reaching every customer on it."""

from decimal import Decimal

import pytest

from keys.models import Budget, Customer

pytestmark = pytest.mark.django_db


def test_budget_new_info_update_list_delete(api):
    status, budget = api.post(
        "/budget/new", {"budget_id": "free_tier", "max_budget": 0.5, "rpm_limit": 10, "budget_duration": "30d"}
    )
    assert status == 200, budget
    assert (budget["budget_id"], budget["max_budget"], budget["rpm_limit"], budget["budget_duration"]) == (
        "free_tier", Decimal("0.5"), 10, "30d",
    )  # fmt: skip
    assert (budget["tpm_limit"], budget["soft_budget"], budget["created_by"]) == (None, None, "master_key")

    status, info = api.post("/budget/info", {"budgets": ["free_tier"]})
    assert (status, info) == (200, [budget])

    status, updated = api.post("/budget/update", {"budget_id": "free_tier", "tpm_limit": 100, "max_budget": None})
    assert status == 200, updated
    assert (updated["tpm_limit"], updated["max_budget"], updated["rpm_limit"]) == (100, None, 10)

    status, listed = api.get("/budget/list")
    assert [entry["budget_id"] for entry in listed] == ["free_tier"]

    status, deleted = api.post("/budget/delete", {"id": "free_tier"})
    assert (status, deleted["budget_id"]) == (200, "free_tier")
    assert not Budget.objects.exists()


def test_a_budget_without_an_id_gets_one(api):
    status, budget = api.post("/budget/new", {"max_budget": 1})

    assert status == 200
    assert Budget.objects.get().budget_id == budget["budget_id"] != ""


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/budget/new", {"budget_id": "taken"}, 400, "budget_id"),
        ("/budget/new", {"max_budget": 1, "currency": "EUR"}, 400, "currency"),
        ("/budget/new", {"rpm_limit": -5}, 400, "rpm_limit"),
        ("/budget/update", {"budget_id": "nope", "max_budget": 1}, 404, "budget_id"),
        ("/budget/info", {"budgets": ["taken", "nope"]}, 404, "budgets"),
        ("/budget/delete", {"id": "nope"}, 404, "id"),
    ],
)
def test_budget_refusals_name_the_field(api, path, body, status, param):
    Budget.objects.create(budget_id="taken")

    got, answer = api.post(path, body)

    assert got == status, answer
    assert answer["error"]["param"] == param
    assert list(Budget.objects.values_list("budget_id", flat=True)) == ["taken"]


def test_a_budget_change_reaches_its_customers_and_a_deleted_budget_leaves_them_unlimited(api):
    api.post("/budget/new", {"budget_id": "paid_tier", "max_budget": 5})
    api.post("/customer/new", {"user_id": "c1", "budget_id": "paid_tier"})
    api.post("/customer/new", {"user_id": "c2", "budget_id": "paid_tier"})

    api.post("/budget/update", {"budget_id": "paid_tier", "max_budget": 7, "budget_duration": "1d"})
    _, info = api.get("/customer/info?end_user_id=c2")
    assert info["litellm_budget_table"]["max_budget"] == 7
    assert all(customer.budget_reset_at is not None for customer in Customer.objects.all())

    api.post("/budget/delete", {"id": "paid_tier"})
    _, info = api.get("/customer/info?end_user_id=c1")
    assert (info["budget_id"], info["litellm_budget_table"], info["budget_reset_at"]) == (None, None, None)
