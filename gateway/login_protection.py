"""Login protection for the admin: wrong passwords lock a username and a client address (django-axes).

django-axes rather than the proxy's failed-auth counter (keys/throttle.py): that one slows an address down for a
minute and keeps no record, while a login lock must hold per username across addresses for minutes, be seen and
lifted by an admin (the "Access attempts" page: deleting an attempt unlocks it) and refuse the right password
while it lasts. Axes keeps its attempts in the database, so the same lock holds on the embedded default (SQLite,
no Redis) and across every process on PostgreSQL; the address is the proxy's (keys.throttle.client_ip), which
trusts X-Forwarded-For only when TOLLGATE_TRUST_X_FORWARDED_FOR says so.
"""

from django.conf import settings
from django.contrib.admin import site
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpResponse
from django.shortcuts import render

from keys.throttle import client_ip


def client_address(request) -> str | None:
    """The proxy's client address, or None without one (axes stores it in an address column, where PostgreSQL
    refuses the throttle's "unknown"; a request made in-process, such as a test's login, has none)."""
    address = client_ip(request)
    return None if address == "unknown" else address


def lockout_message() -> str:
    return (
        f"Too many failed sign-ins ({settings.TOLLGATE_LOGIN_FAILURE_LIMIT} in a row) for this account or from this "
        f"address: sign-in is locked for {settings.TOLLGATE_LOGIN_LOCKOUT_MINUTES} minutes, even with the right "
        "password. An admin can unlock it sooner (Access attempts)."
    )


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """The admin login page again, saying why it refuses (429), instead of a bare error page (rendered here: the
    middleware that asks for it runs after template responses are rendered)."""
    context = {
        **site.each_context(request),
        "title": "Log in",
        "site_header": site.site_header,
        "form": (site.login_form or AdminAuthenticationForm)(request),  # with the two-factor code's field
        "lockout_message": lockout_message(),
        "username": request.POST.get("username", ""),
    }
    return render(request, "admin/login.html", context, status=429)
