"""Every admin page opens for staff and shows what it is about: a row of every registered model is made the way the
product makes it, and each model's list (with search), add form and change form is opened, with the overview pages.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from gateway.models import Deployment, RouterSettings
from keys.holders import start_model_spend
from keys.models import Budget, Customer, Organization, OrganizationMembership, VirtualKey
from keys.tag_services import create_tag
from pricing.models import CostMapVersion
from spend.ledger import write_batch
from spend.resets import reset_due_budgets
from spend.rollups import rollup_spend
from tests.keys.factories import make_key, make_team, make_user
from tests.spend.conftest import make_entry

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
MODEL_IDS = [model._meta.label for model, _ in REGISTERED]


@pytest.fixture
def staff_client(client):
    # No password: hashing one takes about a second of PBKDF2, and force_login needs none.
    user = get_user_model().objects.create(username="root", email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.fixture
def deployment():
    return Deployment.objects.create(
        model_name="gpt-4o", litellm_model="openai/gpt-4o", api_key="sk-admin-page-secret-9876"
    )


@pytest.fixture
def every_model(staff_client, deployment) -> dict:
    """A row in every model the admin registers, each made as the product makes it; the cost map's versions and
    entries come with the migrations, the superuser with `staff_client`, KeyChange rows with the key services, an
    AuditEntry with the group made in the admin."""
    # Made in the admin, so that the audit trail records it (a row made in code is no one's change).
    staff_client.post(reverse("admin:auth_group_add"), {"name": "gpt-operators"})
    RouterSettings.load()
    priced = Deployment.objects.create(
        model_id="priced-1",
        model_name="gpt-priced",
        litellm_model="openai/gpt-4o",
        input_cost_per_token=Decimal("1e-6"),
    )
    priced.record_price_revision(changed_by="admin-pages-test", note="a price set by hand")
    organization = Organization.objects.create(organization_alias="gpt-org", budget=Budget.objects.create())
    team = make_team(budget_duration="1d", budget_reset_at=timezone.now() - timedelta(minutes=1),
                     organization=organization)  # fmt: skip
    user = make_user(user_email="gpt-user@example.com")
    OrganizationMembership.objects.create(organization=organization, user=user, user_role="org_admin")
    _, key = make_key(team_id=team.team_id, user_id=user.user_id, key_alias="gpt-key")
    # A customer on a shared budget, charged by the call below (its page shows its spend).
    customer = Customer.objects.create(
        end_user_id="gpt-customer", budget=Budget.objects.create(max_budget=Decimal("3"))
    )
    # A tag holder, and the key's spend on a model it has a budget for.
    create_tag({"name": "gpt-tag", "max_budget": Decimal("2")}, actor="admin-pages-test")
    VirtualKey.objects.filter(pk=key.pk).update(model_max_budget={"gpt-4o": {"budget_limit": "1"}})
    start_model_spend(key.token_hash, "gpt-4o")
    write_batch([make_entry(key_hash=key.token_hash, user_id=user.user_id, team_id=team.team_id,
                            end_user=customer.end_user_id)])  # fmt: skip
    rollup_spend()
    assert reset_due_budgets() == 1
    # A wrong password: the login protection's attempt and failure log (django-axes).
    Client().post(reverse("admin:login"), {"username": "gpt-intruder", "password": "wrong"})
    # An authenticator app being enrolled for two-factor sign-in (gateway/two_factor.py), not confirmed yet.
    staff_client.get(reverse("two_factor"))
    missing = [label for model, _ in REGISTERED if not model.objects.exists() for label in [model._meta.label]]
    assert not missing, f"no row made for {missing}"
    return {model: model.objects.order_by("pk").first() for model, _ in REGISTERED}


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=MODEL_IDS)
def test_changelist_opens_searches_and_lists_the_row(staff_client, every_model, model, model_admin):
    row = every_model[model]

    listing = staff_client.get(_url(model, "changelist"))

    assert listing.status_code == 200
    assert _url(model, "change", row.pk) in listing.content.decode()
    if model_admin.search_fields:
        assert staff_client.get(_url(model, "changelist"), {"q": "gpt"}).status_code == 200


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=MODEL_IDS)
def test_change_form_opens_on_the_row(staff_client, every_model, model, model_admin):
    row = every_model[model]

    page = staff_client.get(_url(model, "change", row.pk))

    assert page.status_code == 200
    assert escape(str(row)) in page.content.decode()  # the breadcrumb and title name the row


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=MODEL_IDS)
def test_add_form_opens_where_rows_may_be_added(staff_client, model, model_admin):
    may_add = model_admin.has_add_permission(staff_client.get("/").wsgi_request)

    page = staff_client.get(_url(model, "add"))

    assert page.status_code == (200 if may_add else 403)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(lambda rows: reverse("admin:index"), id="index"),
        pytest.param(lambda rows: reverse("admin:spend_overview"), id="spend-overview"),
        pytest.param(
            lambda rows: reverse("admin:pricing_costmapversion_raw", args=[rows[CostMapVersion].pk]), id="raw-map"
        ),
    ],
)
def test_overview_pages_open(staff_client, every_model, url):
    assert staff_client.get(url(every_model)).status_code == 200


def test_deployment_pages_never_show_the_provider_key(staff_client, deployment):
    change = staff_client.get(reverse("admin:gateway_deployment_change", args=[deployment.pk]))
    listing = staff_client.get(reverse("admin:gateway_deployment_changelist"))

    for page in (change, listing):
        assert b"sk-admin-page-secret-9876" not in page.content
    assert b"sk-...9876" in change.content


def test_admin_needs_a_login(client):
    response = client.get(reverse("admin:gateway_deployment_changelist"))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
