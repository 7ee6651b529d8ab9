"""A fake webhook receiver on loopback (a Slack incoming webhook, as alerts see one): it keeps every JSON body
POSTed to it and answers `ok`, as Slack does.

    with FakeWebhook() as hook:
        settings.TOLLGATE_ALERT_WEBHOOK_URL = hook.url
        ...
        wait_until(lambda: hook.received, "an alert")
        assert hook.received[0]["text"] == ...
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeWebhook:
    def __init__(self, status: int = 200):
        self.status = status
        self.received: list[dict] = []
        self.raw: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hook.raw.append(body)
                hook.received.append(json.loads(body))
                answer = b"ok"
                self.send_response(hook.status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/services/T000/B000/fake"

    def __enter__(self) -> "FakeWebhook":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
