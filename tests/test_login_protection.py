"""Wrong admin passwords lock the username and the address they came from (issue 23): the tenth wrong one locks for
TOLLGATE_LOGIN_LOCKOUT_MINUTES, the right password is refused while the lock lasts, and an admin can lift it from
the Access attempts page. The counts live in the database: the same on SQLite and on PostgreSQL+Redis."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from gateway.roles import ADMINS

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    # PBKDF2 takes most of a second per password; these tests try a few dozen.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_person(username: str):
    return get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)


def sign_in(username: str, password: str, address: str = "203.0.113.7"):
    """One login attempt by a fresh browser from `address`: (status, logged in, page text)."""
    browser = Client(REMOTE_ADDR=address)
    response = browser.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})
    return response.status_code, "_auth_user_id" in browser.session, response.content.decode()


def fail(username: str, times: int, address: str = "203.0.113.7") -> list[int]:
    """Wrong passwords; the statuses of the answers (200: the form again, 429: the lock page)."""
    return [sign_in(username, "wrong", address)[0] for _ in range(times)]


def test_nine_wrong_passwords_still_let_the_right_one_in():
    make_person("ann")

    assert fail("ann", 9) == [200] * 9
    assert sign_in("ann", PASSWORD)[:2] == (302, True)


def test_ten_wrong_passwords_lock_the_account_and_the_right_one_is_refused_with_a_clear_message(settings):
    make_person("ann")
    # The tenth wrong password already gets the lock page.
    assert fail("ann", 10) == [200] * 9 + [429]

    status, logged_in, page = sign_in("ann", PASSWORD, address="198.51.100.9")

    assert (status, logged_in) == (429, False)
    assert "Too many failed sign-ins (10 in a row)" in page
    assert 'name="otp_token"' in page  # the same login form as before the lock
    assert f"locked for {settings.TOLLGATE_LOGIN_LOCKOUT_MINUTES} minutes, even with the right password" in page


def test_the_lock_ends_after_the_configured_time(settings):
    make_person("ann")
    fail("ann", 10)
    assert sign_in("ann", PASSWORD)[:2] == (429, False)

    # As if the lockout time had passed since the last failure.
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= timedelta(minutes=settings.TOLLGATE_LOGIN_LOCKOUT_MINUTES, seconds=1)
        attempt.save()

    assert sign_in("ann", PASSWORD)[:2] == (302, True)


def test_ten_wrong_passwords_from_one_address_lock_the_address_for_every_username():
    make_person("bob")
    for number in range(10):
        fail(f"guess-{number}", 1, address="203.0.113.50")

    assert sign_in("bob", PASSWORD, address="203.0.113.50")[:2] == (429, False)
    assert sign_in("bob", PASSWORD, address="203.0.113.51")[:2] == (302, True)


def test_an_admin_unlocks_a_locked_account_from_the_access_attempts_page(client):
    make_person("ann")
    fail("ann", 10)
    admin = get_user_model().objects.create(username="root", is_staff=True)
    admin.groups.add(Group.objects.get(name=ADMINS))
    client.force_login(admin)
    attempts = client.get(reverse("admin:axes_accessattempt_changelist"))
    assert "ann" in attempts.content.decode()

    unlocked = client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True)),
            "post": "yes",
        },
    )

    assert unlocked.status_code == 302
    assert sign_in("ann", PASSWORD)[:2] == (302, True)


def test_with_local_login_off_the_login_page_offers_only_sso_and_refuses_passwords(settings):
    make_person("ann")
    settings.TOLLGATE_LOCAL_LOGIN = False
    settings.OIDC_ISSUER = "https://sso.example.test"
    settings.AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "gateway.sso.RoleMappingBackend"]

    page = Client().get(LOGIN).content.decode()

    assert "Sign in with SSO" in page
    assert 'name="password"' not in page
    assert sign_in("ann", PASSWORD)[:2] == (200, False)
