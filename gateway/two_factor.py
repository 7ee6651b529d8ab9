"""Optional TOTP two-factor sign-in for local admin accounts (issue 23), with django-otp and its TOTP plugin.

A staff login enrols an authenticator app on /admin/two-factor/: the page shows a new secret once (QR code and
otpauth:// address) and turns it on only when the first code from the app matches. From then on the admin's login
form asks that account for a code besides its password; a wrong or missing code is a failed sign-in, counted by
the lock-out (django-axes) like a wrong password. TOLLGATE_REQUIRE_2FA sends every local login without a
verified code to enrolment before any other admin page. A single sign-on login is never asked: its identity
provider does the second factor (and Tollgate holds no password for it).

django-otp rather than our own TOTP: it keeps the key per device, refuses a code used once already (replay), slows
down wrong codes per device, and marks the session verified (its OTPMiddleware), which is what the admin checks.
"""

import base64
import io

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin import site
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import BACKEND_SESSION_KEY, logout
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin
from django_otp import login as verified_by
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.qr import write_qrcode_image

SSO_BACKEND = "gateway.sso.RoleMappingBackend"
ENROL_URL = "/admin/two-factor/"
# Admin pages a local login that must enrol may still open: the enrolment page itself and signing out.
_OPEN_TO_UNVERIFIED = (ENROL_URL, "/admin/logout/", "/admin/login/")
CODE_MISSING = "This account signs in with a code from its authenticator app too: enter the code it shows now."
CODE_REFUSED = "The code from your authenticator app is wrong (or was used already): enter the one it shows now."


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first() if user.pk else None


def signed_in_by_sso(request) -> bool:
    return request.session.get(BACKEND_SESSION_KEY) == SSO_BACKEND


class TwoFactorLoginForm(AdminAuthenticationForm):
    """The admin's login form: username, password and, for an account with an authenticator, its current code."""

    otp_token = forms.CharField(
        required=False,
        label="Code from your authenticator app",
        help_text="Only if you turned on two-factor sign-in.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "size": 8}),
    )

    def clean(self):
        cleaned = super().clean()  # the password: a wrong one is a failed sign-in already (axes counts it)
        user = self.get_user()
        device = confirmed_device(user) if user is not None else None
        if device is None:
            return cleaned
        token = (cleaned.get("otp_token") or "").strip()
        if not token:
            # Not a guess: asked again, neither counted nor slowing the device down.
            raise ValidationError(CODE_MISSING, code="otp_missing")
        if not device.verify_token(token):
            # The lock-out counts it as it counts a wrong password (axes' receiver of this signal).
            user_login_failed.send(
                sender=type(self), credentials={"username": user.get_username()}, request=self.request
            )
            raise ValidationError(CODE_REFUSED, code="otp_refused")
        user.otp_device = device  # django-otp marks the session verified when the login is made
        return cleaned


class RequireTwoFactorMiddleware(MiddlewareMixin):
    """With TOLLGATE_REQUIRE_2FA, a local login without a verified code reaches only the enrolment page (and can
    sign out) until it has enrolled; a login that has an authenticator but no verified code in this session (a
    session from before it enrolled elsewhere) is signed out to log in again with its code. Single sign-on logins
    pass. Only admin pages are looked at: the proxy's calls carry keys, not sessions."""

    def process_request(self, request):
        if not settings.TOLLGATE_REQUIRE_2FA or not request.path.startswith("/admin/"):
            return None
        if request.path.startswith(_OPEN_TO_UNVERIFIED):
            return None
        user = request.user
        if not (user.is_authenticated and user.is_staff) or user.is_verified() or signed_in_by_sso(request):
            return None
        if confirmed_device(user) is not None:
            logout(request)
            return redirect(f"{reverse('admin:login')}?next={request.path}")
        return redirect(ENROL_URL)


def _qr_code(uri: str) -> str:
    """The otpauth:// address as an SVG QR code, for an <img> (data: URI: nothing is stored or served)."""
    out = io.BytesIO()
    write_qrcode_image(uri, out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


class EnrolForm(forms.Form):
    otp_token = forms.CharField(
        label="The code your app shows now",
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


def enrol(request):
    """/admin/two-factor/: a new secret, shown once, turned on by its first code; or what is on already."""
    user = request.user
    context = {**site.each_context(request), "title": "Two-factor sign-in", "required": settings.TOLLGATE_REQUIRE_2FA}
    if signed_in_by_sso(request):
        return TemplateResponse(request, "admin/two_factor.html", {**context, "sso": True})
    device = confirmed_device(user)
    if device is not None:
        return TemplateResponse(request, "admin/two_factor.html", {**context, "device": device})
    form = EnrolForm(request.POST or None)
    pending = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if request.method == "POST" and pending is not None and form.is_valid():
        if pending.verify_token(form.cleaned_data["otp_token"].strip()):
            pending.confirmed = True
            pending.save(update_fields=["confirmed"])
            verified_by(request, pending)
            messages.success(request, "Two-factor sign-in is on: the admin's login will ask for a code.")
            return redirect("admin:index")
        form.add_error("otp_token", "That code does not match: check the phone's clock and try the next one.")
    if request.method != "POST" or pending is None:
        # A new secret on every visit, shown on this page only: one never confirmed is thrown away.
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        pending = TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=False)
    uri = pending.config_url
    return TemplateResponse(
        request, "admin/two_factor.html", {**context, "form": form, "otpauth_uri": uri, "qr_code": _qr_code(uri)}
    )
