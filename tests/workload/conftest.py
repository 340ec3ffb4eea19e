"""Fixtures of the workload-identity tests: a "shared" OIDC issuer on 127.0.0.1 (discovery and JWKS), as a CI platform's."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from exchange import flows
from exchange.service_accounts import SYSTEM

from ..api.helpers import APIClient, obtain_token
from ..factories import private_key, public_jwk

#: A GitHub Actions-shaped condition on the immutable owner id, as the platforms recommend.
OWNER_CONDITION = 'claims.repository_owner_id == "424242" && claims.ref.startsWith("refs/heads/")'


class OIDCServer:
    """An issuer on 127.0.0.1: /.well-known/openid-configuration and /jwks.json, each overridable."""

    def __init__(self):
        self.overrides = {}  # discovery members to replace (None: remove)
        self.status = 200
        self.extra_headers = {}
        self.keys = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    document = {"issuer": outer.issuer, "jwks_uri": outer.jwks_uri,
                                "id_token_signing_alg_values_supported": ["RS256"]}
                    for name, value in outer.overrides.items():
                        if value is None:
                            document.pop(name, None)
                        else:
                            document[name] = value
                    status = outer.status
                elif self.path == "/jwks.json":
                    document, status = {"keys": outer.keys}, 200
                else:
                    document, status = {}, 404
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in outer.extra_headers.items():
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
    def jwks_uri(self):
        return self.issuer + "/jwks.json"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def oidc_server():
    server = OIDCServer()
    yield server
    server.close()


@pytest.fixture
def shared_key(oidc_server):
    """The shared issuer's signing key, published in its JWKS as kid 'ci-1'."""
    key = private_key("rsa", "shared-ci")
    oidc_server.keys = [public_jwk(key, "ci-1")]
    return key


@pytest.fixture
def shared_issuer(db, oidc_server, shared_key):
    """A shared issuer (the Kubernetes preset: its issuer is the server's URL), set up by discovery, with a condition."""
    settings = flows.discovered_issuer_settings(oidc_server.issuer, "kubernetes")
    return flows.create_trusted_token_issuer(
        name="Shared CI", issuer=oidc_server.issuer, preset="kubernetes", condition=OWNER_CONDITION, **settings,
    )


@pytest.fixture
def workload_api(client, db):
    """A management-API client (console:manage bearer token from client_credentials; granted from the
    command line, its service account manages issuers and applications)."""
    application, secret = flows.create_application(name="CI manager", grant_types=["client_credentials"],
                                                   scopes="console:manage", actor=SYSTEM)
    token = obtain_token(client, application, secret)
    return APIClient(Client(HTTP_HOST="localhost"), f"Bearer {token}")


@pytest.fixture
def workload_admin(db):
    """A console client signed in as a superuser."""
    console = Client()
    console.force_login(get_user_model().objects.create_superuser("wl-admin", "wl@example.com", "pw"))
    return console
