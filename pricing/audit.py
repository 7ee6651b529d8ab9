"""Who is changing things right now, for the audit trail (gateway.audit keeps it): an interface every app may use.

A change is audited only while someone acts: the admin's and the management API's requests (gateway.audit's
middleware), a management command people run (manage.py) or a task acting for them. The proxy's own writes (spend
counters, customers made on first sight) happen with no one acting and leave no row, at the cost of one context
variable read per save of an audited model.

Saves and deletes are caught by gateway's model signal receivers. A change made with `QuerySet.update()` sends no
signal: the code that makes it calls `record_update` here, which gateway answers (registered when its app is ready),
so that pricing, keys and spend record without importing gateway.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol


class ActorType:
    LOGIN = "login"  # someone signed in to the admin
    API = "api"  # the management API, as the master key or a virtual key
    COMMAND = "command"
    TASK = "task"
    CHOICES = [(LOGIN, "admin login"), (API, "API key"), (COMMAND, "command"), (TASK, "task")]


@dataclass(frozen=True)
class Actor:
    name: str
    type: str
    address: str = ""

    def who(self) -> "Actor":
        return self


class ActorSource(Protocol):
    """What the context holds: an actor, or a request that says who made it when first asked (gateway.audit)."""

    def who(self) -> Actor | None: ...


_acting: ContextVar[ActorSource | None] = ContextVar("tollgate_audit_actor", default=None)


def current_actor() -> Actor | None:
    source = _acting.get()
    return source.who() if source is not None else None


@contextmanager
def acting(source: ActorSource) -> Iterator[None]:
    """Changes made inside are recorded as `source`'s."""
    token = _acting.set(source)
    try:
        yield
    finally:
        _acting.reset(token)


@contextmanager
def acting_as_task(name: str) -> Iterator[None]:
    """A task's changes are its own, unless it runs for someone acting already (eagerly, inside their request)."""
    with acting(_acting.get() or Actor(f"task {name}", ActorType.TASK)):
        yield


# What `manage.py` runs to serve (or to read): their writes are the server's own, no one's.
SERVING_COMMANDS = frozenset({"serve", "runserver", "test", "help", "check", "version"})


def command_actor(argv: list[str]) -> Actor | None:
    """The actor of `manage.py <command>` (sys.argv), or None for a command that serves."""
    command = argv[1] if len(argv) > 1 else ""
    if not command or command in SERVING_COMMANDS:
        return None
    return Actor(f"command {command}", ActorType.COMMAND)


UpdateRecorder = Callable[[type, object, dict, dict], None]
_recorder: UpdateRecorder | None = None


def register_recorder(recorder: UpdateRecorder) -> None:
    """gateway's AppConfig.ready: who writes the rows `record_update` asks for."""
    global _recorder
    _recorder = recorder


def record_update(model: type, pk, before: dict, after: dict) -> None:
    """Record a change made with `QuerySet.update()` to one row (call it in the changing transaction): the fields'
    values before and after. Nothing happens when no one is acting."""
    if _recorder is not None and _acting.get() is not None and before != after:
        _recorder(model, pk, before, after)
