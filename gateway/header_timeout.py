"""The HTTP protocol `manage.py serve` runs: uvicorn's httptools one, with a deadline for the request headers.

Imported by each uvicorn worker process before Django is set up (the protocol travels to it pickled): no Django here.
"""

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers are not complete `header_timeout`
    seconds after it opened, or after its next request began. uvicorn itself waits for them forever: a client
    sending a byte now and then (slowloris) held a connection, and a file descriptor, for as long as it liked.

    One timer per request, armed before the headers and cancelled when they are complete; a keep-alive connection
    idle between requests is left to uvicorn's keep-alive timeout, as before.
    """

    def __init__(self, *args, header_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def on_message_begin(self):
        super().on_message_begin()
        if self.header_timer is None:  # a later request on a kept-alive connection
            self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def on_headers_complete(self):
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc):
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _cancel_header_timer(self):
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self):
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
