"""Fixtures of the workload-identity tests: a "shared" OIDC issuer on 127.0.0.1 (discovery and JWKS), as a CI platform's."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from exchange import flows
from exchange.service_accounts import SYSTEM

from ..api.helpers import APIClient, obtain_token
from ..factories import private_key
from ..utils import JWKSServer

#: A GitHub Actions-shaped condition on the immutable owner id, as the platforms recommend.
OWNER_CONDITION = 'claims.repository_owner_id == "424242" && claims.ref.startsWith("refs/heads/")'


@pytest.fixture
def oidc_server():
    """The shared issuer: tests/utils.py's JWKS server, which also answers OpenID discovery."""
    server = JWKSServer()
    yield server
    server.close()


@pytest.fixture
def shared_key(oidc_server):
    """The shared issuer's signing key, published in its JWKS as kid 'ci-1'."""
    key = private_key("rsa", "shared-ci")
    oidc_server.serve_keys((key, "ci-1"))
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
