"""Fixtures every folder uses: isolated state, keys, issuers A (PEM) and B (JWKS), applications, an exchange.

The tree: one folder per concern (token_endpoint, subject_tokens, security, console, api, ops, commands,
performance, docs, house, browser). A fixture lives in the conftest.py of the narrowest folder whose tests share
it, or beside its tests when one module alone uses it; none takes a pytest-django fixture's name. Keys,
certificates and tokens come from tests/factories.py, request helpers and assertions from tests/utils.py.
"""

import os

import pytest
from django.core.cache import cache
from django.test import override_settings

from exchange import flows, key_sources, shared_cache, signing
from exchange.conf import DEFAULT_LOCAL_ISSUER, exchange_settings

from .factories import certificate_pem, mint, private_key
from .utils import JWKSServer, basic_auth, exchange_body, exchanged, post_form


@pytest.fixture(scope="session", autouse=True)
def _default_issuer():
    """The issuer of every test and of the servers they start, whatever `make run PORT=…` recorded in this
    checkout's var/ (servers the tests start use their own var/). Session-wide: module fixtures see it too."""
    with override_settings(CONSOLE_ISSUER=os.environ.get("CONSOLE_ISSUER") or DEFAULT_LOCAL_ISSUER):
        yield


@pytest.fixture(autouse=True)
def _isolated_state(settings, tmp_path):
    """Each test starts with an empty cache, no parsed keys and its own var/ folder."""
    settings.VAR_DIR = tmp_path
    cache.clear()
    key_sources.clear_caches()
    shared_cache.clear_local()  # no test inherits another's Redis outage
    signing.reset()
    exchange_settings.reload()
    yield
    cache.clear()
    signing.reset()


@pytest.fixture
def jwks_server():
    server = JWKSServer()
    yield server
    server.close()


@pytest.fixture
def rsa_key():
    return private_key("rsa", "issuer-a")


@pytest.fixture
def ec_key():
    return private_key("ec", "issuer-b")


@pytest.fixture
def pem_issuer(db, rsa_key):
    """A trusted issuer registered with an RSA certificate."""
    return flows.create_trusted_token_issuer(
        name="PEM issuer", issuer="https://pem.issuer.test", alias="console-at-pem",
        certificates=[certificate_pem(rsa_key)],
    )


@pytest.fixture
def jwks_issuer(db, jwks_server, ec_key):
    """A trusted issuer backed by a JWKS served on 127.0.0.1, publishing kid 'k1' (EC P-256)."""
    jwks_server.serve_keys((ec_key, "k1"))
    return flows.create_trusted_token_issuer(
        name="JWKS issuer", issuer="https://jwks.issuer.test", jwks_uri=jwks_server.url,
    )


@pytest.fixture
def actor_key():
    return private_key("rsa", "actor-issuer")


@pytest.fixture
def actor_issuer(db, actor_key):
    """A second trusted issuer (PEM), whose tokens the delegation tests present as actor tokens."""
    return flows.create_trusted_token_issuer(
        name="Actor issuer", issuer="https://actor.issuer.test", certificates=[certificate_pem(actor_key)],
    )


@pytest.fixture
def make_application(db):
    def make(name="App", application_type="standard", grant_types=("token_exchange",), **fields):
        application, secret = flows.create_application(
            name=name, application_type=application_type, grant_types=grant_types, **fields
        )
        application.raw_secret = secret
        return application

    return make


@pytest.fixture
def application(make_application):
    """A Standard-based OIDC application allowed to use token exchange."""
    return make_application()


@pytest.fixture
def refreshing_application(make_application):
    """An application allowed token exchange and refresh tokens."""
    return make_application(name="Refreshing", grant_types=["token_exchange", "refresh_token"])


@pytest.fixture
def alice_and_bob_tokens(client, refreshing_application, pem_issuer, rsa_key):
    """alice's and bob's tokens (access + refresh) exchanged from ``pem_issuer``: (application, {sub: response body})."""
    app = refreshing_application
    return app, {sub: exchanged(client, app, mint(rsa_key, pem_issuer.issuer, sub=sub)) for sub in ("alice", "bob")}


@pytest.fixture
def exchange(client, application):
    """POST a token-exchange request as ``application`` (override auth/body via kwargs)."""

    def do(subject_token, app=None, auth=None, **params):
        app = app or application
        headers = {"HTTP_AUTHORIZATION": auth or basic_auth(app.client_id, app.raw_secret)}
        return post_form(client, "/oauth2/token", exchange_body(subject_token, **params), **headers)

    return do


@pytest.fixture
def auth(application):
    """The Authorization header of ``application`` (Basic), as test-client keyword arguments."""
    return {"HTTP_AUTHORIZATION": basic_auth(application.client_id, application.raw_secret)}


@pytest.fixture
def subject_token(pem_issuer, rsa_key):
    """A valid subject token of ``pem_issuer``."""
    return mint(rsa_key, pem_issuer.issuer)
