"""Two-factor sign-in in a real browser against a live server (issue 23): headless Chromium logs in with a password,
enrols an authenticator from the otpauth:// address the page shows (the code computed by django-otp's TOTP from
that secret, as an app would), signs out, is refused with the password alone, and gets in with the app's code."""

import base64
import json
import time
from urllib.parse import parse_qs, urlparse

import pytest
from django_otp.oath import TOTP

from tests.browser import admin_gateway, chromium, log_in, needs_chromium

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]

USERNAME, PASSWORD = "operator", "correct-horse-battery-staple-23"


def app_code(otpauth_uri: str, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows for this address (a step ahead: a code is accepted once only)."""
    secret = parse_qs(urlparse(otpauth_uri).query)["secret"][0]
    totp = TOTP(base64.b32decode(secret + "=" * (-len(secret) % 8)))
    totp.time = time.time() + steps_ahead * 30
    return f"{totp.token():06d}"


def submit(browser, form: str, path_after: str) -> None:
    # The page is marked before the click and the wait is for a document without the mark: a form that answers on
    # its own path (a refused login) would otherwise be read before the answer replaced it.
    browser.evaluate(f"window.submitted = true; document.querySelector('{form} input[type=submit]').click()")
    browser.wait_for(
        f"!window.submitted && location.pathname === {json.dumps(path_after)} && document.readyState === 'complete'"
    )


def test_enrol_then_the_password_alone_is_refused_and_the_code_lets_in(tmp_path):
    with admin_gateway(tmp_path, USERNAME, PASSWORD) as server, chromium(tmp_path) as browser:
        log_in(browser, server.url, USERNAME, PASSWORD)
        browser.navigate(f"{server.url}/admin/two-factor/")
        uri = browser.evaluate("document.querySelector('#otpauth-uri').textContent")
        assert uri.startswith("otpauth://totp/Tollgate%3Aoperator?")
        assert browser.evaluate("document.querySelector('#two-factor-qr').naturalWidth") > 0  # the QR code drawn
        browser.type_into("#id_otp_token", app_code(uri))
        submit(browser, "#content-main form", "/admin/")
        browser.screenshot_artifact("two-factor-enrolled")
        browser.navigate(f"{server.url}/admin/two-factor/")
        assert browser.evaluate("!!document.querySelector('#two-factor-on') && !document.querySelector('#otpauth-uri')")
        browser.call("Network.clearBrowserCookies", session=True)

        browser.navigate(f"{server.url}/admin/login/?next=/admin/")
        browser.type_into("#id_username", USERNAME)
        browser.type_into("#id_password", PASSWORD)
        submit(browser, "#login-form", "/admin/login/")
        refused = browser.evaluate("document.querySelector('.errornote').textContent")
        browser.screenshot_artifact("two-factor-code-missing")

        browser.type_into("#id_password", PASSWORD)  # the form keeps the username, not the password
        browser.type_into("#id_otp_token", app_code(uri, steps_ahead=1))
        submit(browser, "#login-form", "/admin/")

        assert "enter the code it shows now" in refused
        assert browser.evaluate("document.querySelector('#user-tools').textContent").count("Two-factor sign-in") == 1
