"""Test helpers: request builders, token-endpoint assertions, a real JWKS (and OpenID discovery) server on 127.0.0.1.

Keys, certificates and tokens are built in ``tests/factories.py``.
"""

import base64
import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote_plus, urlencode

import jwt
from django.conf import settings
from jwt import PyJWKSet

from exchange.models import AccessToken, ExchangeEvent
from exchange.subject_token import CAUSES

from .factories import public_jwk

# The wire values written out, not imported from exchange.protocol: a typo there must fail the tests.
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
FORM = "application/x-www-form-urlencoded"


def basic_auth(client_id, client_secret):
    """An HTTP Basic Authorization header value, form-encoding id and secret first (RFC 6749 §2.3.1)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def exchange_body(subject_token, **extra):
    """A token-exchange form for ``subject_token`` (JWT in, access token out); None values are left out."""
    body = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": JWT_TYPE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def post_form(client, path, data, **headers):
    """POST an application/x-www-form-urlencoded body (a dict or a list of pairs)."""
    return client.post(path, urlencode(data, doseq=True), content_type=FORM, **headers)


def assert_oauth_error(response, status, error):
    """Every token-endpoint error: the status, RFC 6749 JSON, no-store, no token, a safe description."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    description = body.get("error_description", "")
    assert all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in description), description
    return body


class JWKSServer:
    """A real HTTP server on 127.0.0.1 serving a JWKS document; counts and records requests.

    It is also an OpenID provider's issuer (``issuer``, its base URL): /.well-known/openid-configuration answers
    the discovery document naming it and its JWKS URL, whose members ``discovery`` replaces (None: removed).
    ``status``, ``headers``, ``delay`` and ``body`` apply to every answer; every other path serves the JWKS.
    """

    DISCOVERY_PATH = "/.well-known/openid-configuration"

    def __init__(self):
        self.document = {"keys": []}
        self.discovery = {}
        self.status = HTTPStatus.OK
        self.body = None  # raw bytes overriding the document
        self.headers = {}
        self.delay = 0.0
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append({"path": self.path, "headers": dict(self.headers)})
                if outer.delay:
                    time.sleep(outer.delay)
                document = outer.discovery_document() if self.path == outer.DISCOVERY_PATH else outer.document
                body = outer.body if outer.body is not None else json.dumps(document).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in outer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    @property
    def issuer(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self):
        return self.issuer + "/jwks.json"

    def discovery_document(self):
        document = {"issuer": self.issuer, "jwks_uri": self.url, "id_token_signing_alg_values_supported": ["RS256"]}
        for name, value in self.discovery.items():
            if value is None:
                document.pop(name, None)
            else:
                document[name] = value
        return document

    def serve_keys(self, *pairs, **extra):
        """serve_keys((key, kid), ...) publishes those keys' public halves."""
        self.document = {"keys": [public_jwk(key, kid, **extra) for key, kid in pairs]}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def assert_subject_rejected(response, cause, *, issued_before=0):
    """A subject-token rejection: 400 invalid_request, the cause's fixed sentence, no token, the cause recorded."""
    body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert body["error_description"] == CAUSES[cause], body
    assert AccessToken.objects.count() == issued_before
    assert ExchangeEvent.objects.order_by("-pk").first().cause == cause
    return body


class RawServer:
    """A TCP server on 127.0.0.1 whose connections are handed to ``handle(conn)``: for misbehaving HTTP peers."""

    def __init__(self, handle):
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.closed = threading.Event()

        def serve():
            while not self.closed.is_set():
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                self.connections += 1
                threading.Thread(target=self._run, args=(handle, conn), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def _run(self, handle, conn):
        try:
            conn.settimeout(10)
            conn.recv(65536)
            handle(conn, self.closed)
        except OSError:
            pass
        finally:
            conn.close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/jwks.json"

    def close(self):
        self.closed.set()
        self.sock.close()


def verify_issued(client, access_token):
    """Verify an issued token with the keys published at /oauth2/jwks, as a resource server would."""
    keys = PyJWKSet.from_dict(client.get("/oauth2/jwks").json())
    header = jwt.get_unverified_header(access_token)
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    return header, jwt.decode(access_token, key, algorithms=[header["alg"]], audience=jwt.decode(
        access_token, options={"verify_signature": False})["aud"], issuer=settings.CONSOLE_ISSUER)


def exchanged(client, app, subject_token):
    """The token response of a successful exchange of ``subject_token`` by ``app`` (with ``raw_secret``)."""
    response = post_form(client, "/oauth2/token", exchange_body(subject_token),
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == 200, response.content
    return response.json()


def introspected(client, app, token):
    """The introspection answer about ``token``, asked by ``app``."""
    response = post_form(client, "/oauth2/introspect", {"token": token},
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == 200, response.content
    return response.json()
