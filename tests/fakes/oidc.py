"""A fake OpenID Connect provider on loopback: discovery, an authorize endpoint that signs in whoever the test says
and redirects back with a code, a token endpoint that checks the client secret, the redirect URI and the PKCE
verifier (S256), a JWKS with an RSA key made for the run, RS256 id tokens and userinfo.

It is as strict as a real provider where Tollgate could get it wrong: no code without a PKCE challenge, a code
used once, for the client and redirect URI it was issued to, and only with the verifier of its challenge."""

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class FakeIdentityProvider:
    def __init__(self, client_id: str, client_secret: str):
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(4)
        # Who signs in at the next /authorize: their claims (sub, email, groups, ...).
        self.person: dict = {}
        # The audience the next id tokens name (a token made for another client, when a test changes it).
        self.audience = client_id
        self.codes: dict[str, dict] = {}
        self.token_requests: list[dict] = []  # what the token endpoint checked, for the tests to read
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeIdentityProvider":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def discovery(self) -> dict:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self) -> dict:
        public = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def authorize(self, query: dict) -> tuple[int, dict]:
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri:
            return 400, {"error": "invalid_client"}
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return 302, {
                "Location": f"{redirect_uri}?{urlencode({'error': 'invalid_request', 'state': query.get('state', '')})}"
            }
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "challenge": query["code_challenge"],
            "redirect_uri": redirect_uri,
            "nonce": query.get("nonce"),
            "claims": dict(self.person),
        }
        return 302, {"Location": f"{redirect_uri}?{urlencode({'code': code, 'state': query.get('state', '')})}"}

    def token(self, form: dict) -> tuple[int, dict]:
        grant = self.codes.pop(form.get("code", ""), None)
        checks = {
            "client": form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret,
            "code": grant is not None,
            "redirect_uri": grant is not None and form.get("redirect_uri") == grant["redirect_uri"],
            "pkce": grant is not None and s256(form.get("code_verifier", "")) == grant["challenge"],
        }
        self.token_requests.append(checks)
        if not all(checks.values()):
            return 400, {
                "error": "invalid_grant",
                "error_description": f"failed: {[k for k, v in checks.items() if not v]}",
            }
        now = int(time.time())
        claims = grant["claims"]
        id_token = jwt.encode(
            {**claims, "iss": self.url, "aud": self.audience, "iat": now, "exp": now + 300, "nonce": grant["nonce"]},
            self.key,
            algorithm="RS256",
            headers={"kid": self.kid},
        )
        access_token = secrets.token_urlsafe(16)
        self.codes[f"access:{access_token}"] = claims
        return 200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}

    def userinfo(self, authorization: str) -> tuple[int, dict]:
        claims = self.codes.get(f"access:{authorization.removeprefix('Bearer ')}")
        return (200, claims) if claims is not None else (401, {"error": "invalid_token"})

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the test's output is the server's log
                pass

            def _answer(self, status: int, body: dict) -> None:
                if status == 302:
                    self.send_response(302)
                    self.send_header("Location", body["Location"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                query = {name: values[0] for name, values in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._answer(200, provider.discovery())
                elif url.path == "/jwks":
                    self._answer(200, provider.jwks())
                elif url.path == "/authorize":
                    self._answer(*provider.authorize(query))
                elif url.path == "/userinfo":
                    self._answer(*provider.userinfo(self.headers.get("Authorization", "")))
                else:
                    self._answer(404, {"error": "not_found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = {name: values[0] for name, values in parse_qs(self.rfile.read(length).decode()).items()}
                if urlparse(self.path).path == "/token":
                    self._answer(*provider.token(form))
                else:
                    self._answer(404, {"error": "not_found"})

        return Handler
