"""Every admin page opens for staff: changelists (with search), add forms and change forms of every model."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from gateway.models import Deployment

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "a-long-test-password-1")
    client.force_login(user)
    return client


@pytest.fixture
def deployment():
    return Deployment.objects.create(
        model_name="gpt-4o", litellm_model="openai/gpt-4o", api_key="sk-admin-page-secret-9876"
    )


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=[m._meta.label for m, _ in REGISTERED])
def test_changelist_opens_and_searches(staff_client, deployment, model, model_admin):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")

    assert staff_client.get(url).status_code == 200
    if model_admin.search_fields:
        assert staff_client.get(url, {"q": "gpt"}).status_code == 200


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=[m._meta.label for m, _ in REGISTERED])
def test_add_and_change_forms_open(staff_client, deployment, model, model_admin):
    meta = model._meta
    request = staff_client.get("/").wsgi_request
    if model_admin.has_add_permission(request):
        assert staff_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add")).status_code == 200
    instance = model.objects.first()
    if instance is not None:
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[instance.pk])
        assert staff_client.get(url).status_code == 200


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
