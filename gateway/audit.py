"""The audit trail: every change people make to deployments, prices, keys, teams, users, customers, budgets,
settings and logins lands in `AuditEntry`, with who, from where, and the changed fields before and after.

Who is acting is a context variable (pricing.audit): set for each admin and management-API request by
`AuditActorMiddleware` (the request says who made it when a change asks: its login, or the key the management API's
authentication put on it), for `manage.py` commands by manage.py, and for tasks acting on their own. Saves and deletes
of the audited models are caught by model signals; a receiver finds no one acting on the proxy's path (its handler has
no middleware) and returns after one context-variable read, so the proxy's own writes leave no row. Changes made with
`QuerySet.update()` are recorded by their code through `pricing.audit.record_update`.

An update reads the row as it was before the save (one query, only while someone acts) and records the fields that
changed. Secrets never reach a row: fields and JSON keys named like a secret, encrypted values and the credentials in
a URL are written as "[hidden]".
"""

import re
from datetime import date, datetime, time
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from django.apps import apps
from django.conf import settings
from django.db.models import ManyToManyField, ManyToManyRel
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from gateway import secrets
from gateway.models import AuditEntry
from keys.api.authentication import actor_name
from keys.throttle import client_ip
from pricing import audit
from pricing.audit import Actor, ActorType, current_actor
from pricing.calculator import format_money

# Every model of these apps is audited except the logs and counters machines write.
AUDITED_APPS = ("gateway", "keys", "pricing")
NOT_AUDITED = frozenset(
    {
        "gateway.auditentry",
        "gateway.routingversion",
        "keys.keychange",
        "keys.reservation",
        "pricing.costmapentry",  # thousands per cost map; its version (audited) says what changed
        "pricing.pricerevision",  # a deployment's price history, written with the deployment's audited save
    }
)
# Fields kept out of the trail: a fetched cost map's megabytes of JSON (its version keeps them, and its diff).
LEFT_OUT = {"pricing.costmapversion": frozenset({"raw_json"})}
# Stamps that move on their own: a change of only these is no one's change.
IGNORED_FIELDS = frozenset({"last_login", "updated_at"})
SECRET_NAME = re.compile(r"secret|password|passw|api_key|apikey|_hash$|private_key|credential|access_key|^token$", re.I)
HIDDEN = "[hidden]"
HIDDEN_CHANGED = "[hidden, changed]"


class RequestActor:
    """A request's actor, read when a change asks (so after the login or the API key was checked)."""

    def __init__(self, request):
        self.request = request

    def who(self) -> Actor | None:
        auth = getattr(self.request, "auth", None)  # DRF puts its authentication's answer on the Django request
        if auth is not None:
            return Actor(actor_name(auth), ActorType.API, client_ip(self.request))
        user = getattr(self.request, "user", None)
        if user is not None and user.is_authenticated:
            return Actor(user.get_username(), ActorType.LOGIN, client_ip(self.request))
        return None


class AuditActorMiddleware:
    """Changes made while serving a request are its login's or its key's (after AuthenticationMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with audit.acting(RequestActor(request)):
            return self.get_response(request)


def audited_models() -> list[type]:
    chosen = [m for label in AUDITED_APPS for m in apps.get_app_config(label).get_models()]
    chosen += [apps.get_model(settings.AUTH_USER_MODEL), apps.get_model("auth", "Group")]
    return [model for model in chosen if model._meta.label_lower not in NOT_AUDITED]


_audited_labels: set[str] = set()


def connect_receivers() -> None:
    """gateway's AppConfig.ready."""
    for model in audited_models():
        _audited_labels.add(model._meta.label_lower)
        pre_save.connect(_before_save, sender=model, dispatch_uid=f"audit-pre-{model._meta.label_lower}")
        post_save.connect(_after_save, sender=model, dispatch_uid=f"audit-post-{model._meta.label_lower}")
        post_delete.connect(_after_delete, sender=model, dispatch_uid=f"audit-delete-{model._meta.label_lower}")
        for field in model._meta.local_many_to_many:
            m2m_changed.connect(_members_changed, sender=field.remote_field.through, dispatch_uid=f"audit-m2m-{field}")
    audit.register_recorder(record_update)


# -- values as the trail shows them ------------------------------------------------------------------------------------


def shown(value, name: str = ""):
    """A value as JSON keeps it for people: money as exact digits, moments as ISO text, secrets hidden."""
    if (name and SECRET_NAME.search(name)) or secrets.is_sealed(value):
        return HIDDEN if value else value
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(key): shown(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [shown(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return _without_credentials(value)
    return value


def _without_credentials(url: str) -> str:
    """A URL without the user, password and query it may carry (an api_base with a key in it)."""
    parts = urlsplit(url)
    if not (parts.username or parts.password or parts.query):
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, HIDDEN if parts.query else "", "")) + (
        f" ({HIDDEN} credentials)" if parts.username or parts.password else ""
    )


def _values(instance) -> dict:
    """The row's fields as stored (foreign keys as the value of their column)."""
    left_out = LEFT_OUT.get(instance._meta.label_lower, ())
    return {f.name: getattr(instance, f.attname) for f in instance._meta.concrete_fields if f.name not in left_out}


def _all_shown(values: dict) -> dict:
    return {name: shown(value, name) for name, value in values.items()}


def changes(before: dict, after: dict) -> tuple[dict, dict]:
    """The fields that changed, as shown before and after. A secret that changed is said to have changed."""
    old, new = {}, {}
    for name in after:
        if name in IGNORED_FIELDS or before.get(name) == after[name]:
            continue
        old[name], new[name] = shown(before.get(name), name), shown(after[name], name)
        if old[name] == new[name]:  # both hidden
            new[name] = HIDDEN_CHANGED
    return old, new


def _write(actor: Actor, model: type, pk, display: str, action: str, before, after) -> None:
    AuditEntry.objects.create(
        actor=actor.name[:200],
        actor_type=actor.type,
        address=actor.address[:64],
        model=model._meta.label_lower,
        object_id=str(pk)[:200],
        object_repr=display[:300],
        action=action,
        before=before,
        after=after,
    )


# -- receivers ---------------------------------------------------------------------------------------------------------


def _before_save(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None or current_actor() is None:
        return
    stored = sender._base_manager.filter(pk=instance.pk).first()
    instance._audit_before = _values(stored) if stored is not None else None


def _after_save(sender, instance, created, raw=False, **kwargs):
    before = instance.__dict__.pop("_audit_before", None)
    actor = None if raw else current_actor()
    if actor is None:
        return
    after = _values(instance)
    if created or before is None:
        _write(actor, sender, instance.pk, str(instance), AuditEntry.Action.CREATED, None, _all_shown(after))
        return
    old, new = changes(before, after)
    if new:
        _write(actor, sender, instance.pk, str(instance), AuditEntry.Action.UPDATED, old, new)


def _after_delete(sender, instance, **kwargs):
    actor = current_actor()
    if actor is not None:
        before = _all_shown(_values(instance))
        _write(actor, sender, instance.pk, str(instance), AuditEntry.Action.DELETED, before, None)


def _members_changed(sender, instance, action, reverse, **kwargs):
    """A many-to-many change (a team's members, a login's groups, a role's permissions): the names before and after."""
    if action not in ("pre_add", "pre_remove", "pre_clear", "post_add", "post_remove", "post_clear"):
        return
    actor = current_actor()
    name = _relation_name(instance, sender)
    if actor is None or name is None or instance._meta.label_lower not in _audited_labels:
        return
    members = sorted(str(member) for member in getattr(instance, name).all())
    if action.startswith("pre_"):
        instance.__dict__.setdefault("_audit_members", {})[name] = members
        return
    before = instance.__dict__.get("_audit_members", {}).pop(name, None)
    if before is not None and before != members:
        _write(actor, type(instance), instance.pk, str(instance), AuditEntry.Action.UPDATED,
               {name: before}, {name: members})  # fmt: skip


def _relation_name(instance, through) -> str | None:
    """The name `instance` reaches a many-to-many relation by, from either side (user.teams, team.members)."""
    for field in instance._meta.get_fields():
        if isinstance(field, ManyToManyField) and field.remote_field.through is through:
            return field.name
        if isinstance(field, ManyToManyRel) and field.through is through:
            return field.get_accessor_name()
    return None


def record_update(model: type, pk, before: dict, after: dict) -> None:
    """pricing.audit.record_update's answer: one row changed by `QuerySet.update()`."""
    actor = current_actor()
    old, new = changes(before, after)
    if actor is not None and new:
        row = model._base_manager.filter(pk=pk).first()
        _write(actor, model, pk, str(row) if row is not None else "", AuditEntry.Action.UPDATED, old, new)
