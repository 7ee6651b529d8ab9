"""Two-factor sign-in for local admin accounts (issue 23), as a person meets it: enrol an authenticator app on its
page (the secret shown there once, turned on by a first code), after which the login refuses the password alone
and lets the password with the app's code in; wrong codes count towards the lock-out like wrong passwords;
TOLLGATE_REQUIRE_2FA sends a local login to enrolment first, and never asks a single sign-on login."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from gateway.roles import ADMINS
from gateway.two_factor import CODE_MISSING, CODE_REFUSED, SSO_BACKEND

pytestmark = pytest.mark.django_db

LOGIN, ENROL, INDEX = "/admin/login/", "/admin/two-factor/", "/admin/"
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    # PBKDF2 takes most of a second per password; these tests sign in a few dozen times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def ann():
    user = get_user_model().objects.create_user("ann", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=ADMINS))
    return user


def code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """What the authenticator app shows, computed by the library from the device's key (a step ahead: django-otp
    refuses a code it accepted once, and the app's next one is within its tolerance)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def sign_in(password: str, otp_token: str | None = None) -> tuple[Client, int, str]:
    browser = Client(REMOTE_ADDR="203.0.113.7")
    form = {"username": "ann", "password": password, "next": INDEX}
    if otp_token is not None:
        form["otp_token"] = otp_token
    response = browser.post(LOGIN, form)
    return browser, response.status_code, response.content.decode()


def enrol(browser: Client) -> TOTPDevice:
    page = browser.get(ENROL)
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user__username="ann", confirmed=False)
    assert page.context["otpauth_uri"] == device.config_url
    confirmed = browser.post(ENROL, {"otp_token": code(device)})
    assert (confirmed.status_code, confirmed.url) == (302, INDEX)
    device.refresh_from_db()
    return device


def logged_in(browser: Client) -> bool:
    return "_auth_user_id" in browser.session


def test_after_enrolling_the_password_alone_is_refused_and_the_password_with_the_apps_code_lets_in(ann):
    browser, status, _ = sign_in(PASSWORD)
    assert (status, logged_in(browser)) == (302, True)  # no authenticator yet: the password is enough
    device = enrol(browser)
    assert device.confirmed and browser.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    browser.post("/admin/logout/")

    password_only, status, page = sign_in(PASSWORD)
    assert (status, logged_in(password_only)) == (200, False)
    assert CODE_MISSING in page
    wrong_code, status, page = sign_in(PASSWORD, f"{(int(code(device, 1)) + 1) % 10**6:06d}")
    assert (status, logged_in(wrong_code)) == (200, False)
    assert CODE_REFUSED.split(":")[0] in page
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)  # django-otp's per-device slow-down

    with_code, status, _ = sign_in(PASSWORD, code(device, steps_ahead=1))
    assert (status, logged_in(with_code)) == (302, True)
    index = with_code.get(INDEX)
    assert index.status_code == 200
    assert f'<a href="{ENROL}">Two-factor sign-in</a>' in index.content.decode()  # where it says it is on


def test_the_secret_is_shown_on_the_enrolment_page_once(ann):
    browser, _, _ = sign_in(PASSWORD)
    first = browser.get(ENROL).context["otpauth_uri"]
    second = browser.get(ENROL).context["otpauth_uri"]
    assert first != second  # a new secret each visit; the one shown before is thrown away
    assert TOTPDevice.objects.filter(user=ann).count() == 1

    device = enrol(browser)
    after = browser.get(ENROL)
    key = device.config_url.split("secret=")[1].split("&")[0]

    assert "two-factor-on" in after.content.decode()
    assert key not in after.content.decode() and "otpauth://" not in after.content.decode()
    # Nor does the admin's device page show it.
    admin_page = browser.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()
    assert key not in admin_page and device.key not in admin_page


def test_a_wrong_first_code_does_not_turn_it_on(ann):
    browser, _, _ = sign_in(PASSWORD)
    browser.get(ENROL)

    refused = browser.post(ENROL, {"otp_token": "000000"})

    assert refused.status_code == 200
    assert "does not match" in refused.content.decode()
    assert not TOTPDevice.objects.filter(user=ann, confirmed=True).exists()


def test_wrong_codes_count_towards_the_lockout_like_wrong_passwords(ann, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp's own slow-down per device would hide the lock-out's count
    browser, _, _ = sign_in(PASSWORD)
    device = enrol(browser)
    wrong = f"{(int(code(device, 1)) + 1) % 10**6:06d}"

    statuses = [sign_in(PASSWORD, wrong)[1] for _ in range(10)]
    locked, status, page = sign_in(PASSWORD, code(device, steps_ahead=1))

    assert statuses == [200] * 9 + [429]
    assert (status, logged_in(locked)) == (429, False)
    assert "Too many failed sign-ins" in page


@pytest.fixture
def required(settings):
    settings.TOLLGATE_REQUIRE_2FA = True
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, SSO_BACKEND]


def test_required_two_factor_sends_a_local_login_to_enrolment_first(ann, required):
    browser, _, _ = sign_in(PASSWORD)

    before = [browser.get(url) for url in (INDEX, "/admin/keys/virtualkey/")]
    assert [(page.status_code, page.url) for page in before] == [(302, ENROL)] * 2
    assert "asks every account that signs in with a password" in browser.get(ENROL).content.decode()
    enrol(browser)

    assert browser.get("/admin/keys/virtualkey/").status_code == 200


def test_required_two_factor_signs_out_a_session_without_a_code_of_an_enrolled_account(ann, required):
    TOTPDevice.objects.create(user=ann, name="phone", confirmed=True)
    browser = Client()
    browser.force_login(ann, backend="django.contrib.auth.backends.ModelBackend")  # a session from before

    response = browser.get(INDEX)

    assert (response.status_code, response.url) == (302, f"{LOGIN}?next={INDEX}")
    assert not logged_in(browser)


def test_a_single_sign_on_login_is_never_asked(ann, required):
    browser = Client()
    browser.force_login(ann, backend=SSO_BACKEND)

    assert browser.get(INDEX).status_code == 200
    assert "identity provider asks for the second factor" in browser.get(ENROL).content.decode()
