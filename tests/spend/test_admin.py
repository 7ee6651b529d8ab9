import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from spend.ledger import write_batch
from spend.rollups import rollup_spend
from tests.spend.conftest import DAY, make_entry, make_team

pytestmark = pytest.mark.django_db
OVERVIEW = "/admin/spend/spendlog/overview/"


@pytest.fixture
def ledger_data():
    make_team(team_id="t1", team_alias="Research", max_budget=Decimal("10"), spend=Decimal("2.5"),
              budget_reset_at=DAY + timedelta(days=5))  # fmt: skip
    write_batch(
        [
            make_entry(team_id="t1", key_hash="a" * 64, cost=Decimal("1.25")),
            make_entry(team_id="t1", model_group="claude", cost=Decimal("0.75"), start_time=DAY + timedelta(days=1)),
            make_entry(team_id="t2", cost=Decimal("0"), pricing_source="unpriced", model_group="mystery"),
            make_entry(team_id="t2", cost=Decimal("4"), start_time=DAY - timedelta(days=2)),  # the previous range
        ]
    )
    rollup_spend(DAY + timedelta(days=2))


@pytest.fixture
def staff(admin_client):
    return admin_client


def test_the_overview_shows_totals_chart_budgets_and_unpriced_calls(staff, ledger_data, django_assert_max_num_queries):
    with django_assert_max_num_queries(24):
        response = staff.get(OVERVIEW, {"start": "2026-03-10", "end": "2026-03-11", "stack": "team"})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-exact="2.00000000000000000000"' in page or 'data-exact="2"' in page
    assert re.search(r'id="total-calls"[^>]*>3<', page)
    assert "against <a" in page and "$4.00" in page  # the previous two days
    values = [Decimal(value) for value in re.findall(r'class="bar"[^>]*data-value="([^"]+)"', page)]
    assert sum(values) == Decimal("2")
    assert "Spend (USD)" in page and ">Day<" in page
    assert "Research" in page and "45.0%" in page  # 2.5 before, plus the 2 charged here, of 10
    assert "mystery" in page and "pricing_source=unpriced" in page


def test_the_overview_query_count_does_not_grow_with_data(staff, ledger_data, django_assert_num_queries):
    staff.get(OVERVIEW)  # warm the session
    with django_assert_num_queries(23):  # rollups, the tail, names, budgets: see test_dashboard_overview.py
        staff.get(OVERVIEW, {"start": "2026-03-10", "end": "2026-03-11"})
    make_team(team_id="t3")
    write_batch([make_entry(team_id=f"t{n}", key_hash=f"{n:064x}", model_group=f"m{n}") for n in range(20)])
    rollup_spend(DAY + timedelta(days=2))
    with django_assert_num_queries(23):  # rollups, the tail, names, budgets: see test_dashboard_overview.py
        staff.get(OVERVIEW, {"start": "2026-03-10", "end": "2026-03-11"})


def test_the_overview_is_for_staff_only(client, django_user_model):
    user = django_user_model.objects.create_user("finance", password="x")
    client.force_login(user)
    assert client.get(OVERVIEW).status_code == 302


@pytest.mark.parametrize(
    "url",
    ["admin:spend_spendlog_changelist", "admin:spend_dailyspend_changelist", "admin:spend_budgetreset_changelist"],
)
def test_every_spend_admin_page_opens(staff, ledger_data, url):
    assert staff.get(reverse(url)).status_code == 200


@pytest.mark.parametrize(
    ("params", "count"),
    [({}, 4), ({"team_id": "t1"}, 2), ({"model_group": "claude"}, 1), ({"pricing_source": "unpriced"}, 1),
     ({"start_time__gte": "2026-03-10T00:00:00+00:00", "start_time__lt": "2026-03-11T00:00:00+00:00"}, 2)],
)  # fmt: skip
def test_spend_log_admin_filters(staff, ledger_data, params, count):
    response = staff.get(reverse("admin:spend_spendlog_changelist"), params)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == count


def test_spend_log_admin_is_read_only_and_exports_csv(staff, ledger_data):
    from spend.models import SpendLog

    url = reverse("admin:spend_spendlog_changelist")
    log = SpendLog.objects.get(cost=Decimal("1.25"))
    assert staff.get(reverse("admin:spend_spendlog_add")).status_code == 403
    response = staff.post(url, {"action": "export_csv", "_selected_action": [log.pk]})
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[1].startswith(log.request_id) and ",1.25," in body


@pytest.mark.parametrize("params", [{}, {"key_hash": "a" * 64}])
def test_the_log_list_and_a_keys_recent_calls_are_newest_first_by_start_time(staff, params):
    from spend.activity import entity_activity

    # The later call's log committed first (a lower id): a long stream finishing after a short call.
    write_batch([make_entry(request_id="later", key_hash="a" * 64, start_time=DAY + timedelta(minutes=5))])
    write_batch([make_entry(request_id="earlier", key_hash="a" * 64, start_time=DAY)])

    response = staff.get(reverse("admin:spend_spendlog_changelist"), params)
    panel = entity_activity("key", "a" * 64)

    assert [log.request_id for log in response.context["cl"].result_list] == ["later", "earlier"]
    assert panel.index("2026-03-10 12:05:00") < panel.index("2026-03-10 12:00:00")
