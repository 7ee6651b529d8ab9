"""Spend logs, daily rollups and budget resets name keys, teams and users as people know them (alias, email),
linked to their pages, in columns and filters; an entity deleted since keeps a readable label."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from spend.ledger import write_batch
from spend.rollups import rollup_spend
from tests.keys.factories import make_key, make_team, make_user
from tests.spend.conftest import make_entry

pytestmark = pytest.mark.django_db


@pytest.fixture
def charged():
    team = make_team(team_alias="research")
    user = make_user(user_email="ada@example.com")
    _, key = make_key(team_id=team.team_id, user_id=user.user_id, key_alias="notebook")
    _, hinted = make_key(team_id=team.team_id)
    entries = [make_entry(key_hash=k.token_hash, team_id=team.team_id, user_id=user.user_id, cost=Decimal("0.5"),
                          start_time=timezone.now()) for k in (key, hinted)]  # fmt: skip
    write_batch([*entries, make_entry(key_hash="f" * 64, start_time=timezone.now())])
    rollup_spend()
    return team, user, key, hinted


@pytest.mark.parametrize("changelist", ["admin:spend_spendlog_changelist", "admin:spend_dailyspend_changelist"])
def test_rows_name_and_link_their_key_team_and_user(admin_client, charged, changelist):
    team, user, key, hinted = charged

    page = admin_client.get(reverse(changelist)).content.decode()

    assert f'<a href="{reverse("admin:keys_virtualkey_change", args=[key.pk])}">notebook</a>' in page
    assert f'<a href="{reverse("admin:keys_virtualkey_change", args=[hinted.pk])}">{hinted.key_hint}</a>' in page
    assert f'<a href="{reverse("admin:keys_team_change", args=[team.pk])}">research</a>' in page
    assert f'<a href="{reverse("admin:keys_internaluser_change", args=[user.pk])}">ada@example.com</a>' in page
    assert "(deleted key)" in page
    assert f">{key.token_hash[:12]}" not in page  # shown nowhere by its hash (links carry it)


def test_filters_list_names_not_ids(admin_client, charged):
    team, user, key, _ = charged

    page = admin_client.get(reverse("admin:spend_spendlog_changelist")).content.decode()

    choices = dict(re.findall(r'<a href="\?(\w+=[^"]+)">([^<]+)</a>', page))
    assert choices[f"key_hash={key.token_hash}"] == "notebook"
    assert choices[f"team_id={team.team_id}"] == "research"
    assert choices[f"user_id={user.user_id}"] == "ada@example.com"


def test_a_page_of_logs_reads_names_in_a_few_queries(admin_client, charged, django_assert_max_num_queries):
    url = reverse("admin:spend_spendlog_changelist")
    admin_client.get(url)
    with django_assert_max_num_queries(30) as few:
        admin_client.get(url)
    team, user, _, _ = charged
    for _ in range(10):
        _, key = make_key(team_id=team.team_id, user_id=user.user_id)
        write_batch([make_entry(key_hash=key.token_hash, start_time=timezone.now())])
    with django_assert_max_num_queries(len(few)):
        assert admin_client.get(url).status_code == 200


def test_key_changes_and_budget_resets_name_what_they_changed(admin_client, charged):
    from datetime import timedelta

    from keys import services
    from keys.models import Team
    from spend.resets import reset_due_budgets

    team, _, key, _ = charged
    services.update_team(team, {"max_budget": Decimal("5")}, actor="test")
    Team.objects.filter(pk=team.pk).update(budget_duration="1d", budget_reset_at=timezone.now() - timedelta(minutes=1))
    assert reset_due_budgets() == 1
    team_link = f'team <a href="{reverse("admin:keys_team_change", args=[team.pk])}">research</a>'

    changes = admin_client.get(reverse("admin:keys_keychange_changelist")).content.decode()
    resets = admin_client.get(reverse("admin:spend_budgetreset_changelist")).content.decode()

    assert f'key <a href="{reverse("admin:keys_virtualkey_change", args=[key.pk])}">notebook</a>' in changes
    assert team_link in changes
    assert team_link in resets


def test_a_customer_is_named_on_its_calls_and_its_page_shows_its_spend(admin_client):
    from keys.models import Budget, Customer
    from spend.models import SpendLog

    customer = Customer.objects.create(end_user_id="cust-42", alias="Acme", budget=Budget.objects.create())
    write_batch([make_entry(end_user="cust-42", start_time=timezone.now(), cost=Decimal("0.25"))])
    log = SpendLog.objects.get()

    log_page = admin_client.get(reverse("admin:spend_spendlog_change", args=[log.pk])).content.decode()
    customer_page = admin_client.get(reverse("admin:keys_customer_change", args=[customer.pk])).content.decode()

    assert f'<a href="{reverse("admin:keys_customer_change", args=[customer.pk])}">Acme</a>' in log_page
    assert 'Spend in the last 30 days: <strong><span class="money" title="0.25">$0.25</span></strong>' in customer_page


@pytest.mark.parametrize(("term", "calls"), [("notebook", 1), ("NOTEBOOK", 1), ("research", 2), ("ada@example.com", 2),
                                             ("nobody-by-that-name", 0)])  # fmt: skip
def test_the_log_search_finds_calls_by_name(admin_client, charged, term, calls):
    page = admin_client.get(reverse("admin:spend_spendlog_changelist"), {"q": term}).content.decode()

    assert page.count('<td class="action-checkbox">') == calls


def test_a_log_row_shows_its_model_and_provider(admin_client, charged):
    page = admin_client.get(reverse("admin:spend_spendlog_changelist")).content.decode()

    assert '<td class="field-model_and_provider">gpt-4o<small class="secondary">openai</small></td>' in page
    assert '<td class="field-outcome">success<small class="secondary">cost_map</small></td>' in page


def test_a_log_and_a_price_revision_link_their_deployment(admin_client):
    from gateway.models import Deployment
    from spend.models import SpendLog

    deployment = Deployment.objects.create(
        model_id="dep-7", model_name="gpt-4o", litellm_model="openai/gpt-4o", input_cost_per_token=Decimal("1e-6")
    )
    deployment.record_price_revision(changed_by="test", note="negotiated")
    write_batch([make_entry(deployment_id="dep-7", start_time=timezone.now())])
    link = '<a href="/admin/gateway/deployment/?q=dep-7">dep-7</a>'

    log_page = admin_client.get(reverse("admin:spend_spendlog_change", args=[SpendLog.objects.get().pk]))
    revisions = admin_client.get(reverse("admin:pricing_pricerevision_changelist"))
    found = admin_client.get("/admin/gateway/deployment/?q=dep-7").content.decode()

    assert link in log_page.content.decode()
    assert link in revisions.content.decode()
    assert reverse("admin:gateway_deployment_change", args=[deployment.pk]) in found
