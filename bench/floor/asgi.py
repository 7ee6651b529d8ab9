"""The floor's ASGI application: Tollgate's own serving stack with nothing of Tollgate's work on it.

What `manage.py serve` runs, minus the call's accounting: the same `ProxyHandler` (Django's handler without
middleware or thread hops, gateway/asgi.py), the same malloc tuning (done by importing gateway.asgi) and the
same freeze of what start-up loaded out of the cyclic GC, and views that forward with the gateway's upstream
pool (bench/floor/views.py). No key, admission, pricing or ledger. bench/floor/serve.py starts it as `serve`
starts Tollgate. The floor used to be Django's stock ASGI handler, which hops to a thread per request and ran
without the GC tuning, so Tollgate, doing more, out-ran it (1.19x at 16 connections): it was no upper bound.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.floor.settings"  # before gateway.asgi sets up Django with its own

from gateway.asgi import ProxyHandler  # noqa: E402
from gateway.memory import freeze_long_lived_objects  # noqa: E402
from gateway.proxy.upstream import close_upstream_pool  # noqa: E402

handler = ProxyHandler()


async def lifespan(receive, send) -> None:
    """Start-up freezes what is loaded, as Tollgate's lifespan does; shutdown closes the upstream pool."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            freeze_long_lived_objects()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await close_upstream_pool()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    return await handler(scope, receive, send)
