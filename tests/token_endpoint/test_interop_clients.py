"""Interoperability, judged by libraries we did not write, against a live server on 127.0.0.1 (issue 14).

- authlib's RFC 9068 ``JWTBearerTokenValidator`` (the resource server's view) on issued and
  refreshed tokens;
- authlib's ``OAuth2Session`` performing the exchange, refresh, introspection and revocation,
  with discovery from the issuer (RFC 8414 §3.1) and authlib's RFC 8414 metadata validation;
- requests-oauthlib performing the exchange;
- what joserfc (authlib's JOSE layer) does with EdDSA tokens by default (docs/configuration.md).

The versions are pinned in pyproject's ``test`` extra. pytest-django's ``live_server`` is one
server for the whole session; nothing here leaves 127.0.0.1.
"""

from urllib.parse import urlsplit

import jwt as pyjwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from django.conf import settings
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from jwt import PyJWKSet
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session as RequestsOAuthlibSession

from exchange.protocol import ACCESS_TOKEN_TYPE, JWT_TYPE, TOKEN_EXCHANGE

from ..factories import mint

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

AUDIENCE = "https://api.example"


@pytest.fixture
def interop_app(make_application):
    return make_application(name="Interop", grant_types=["token_exchange", "refresh_token"], scopes="openid profile",
                            allowed_audiences=[AUDIENCE])


@pytest.fixture
def insecure_transport_for_loopback(monkeypatch, live_server):
    """The live server speaks http on 127.0.0.1; both libraries refuse http unless told otherwise."""
    assert urlsplit(live_server.url).hostname in ("localhost", "127.0.0.1")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def session(interop_app, live_server, insecure_transport_for_loopback):
    with OAuth2Session(interop_app.client_id, interop_app.raw_secret,
                       token_endpoint_auth_method="client_secret_basic") as client:
        yield client


class ResourceServerValidator(JWTBearerTokenValidator):
    """authlib's RFC 9068 validator, with this server's published keys."""

    def __init__(self, jwks, **kwargs):
        super().__init__(**kwargs)
        self.jwks = KeySet.import_key_set(jwks)

    def get_jwks(self):
        return self.jwks


def _discover(live_server):
    """RFC 8414 §3.1: the metadata URL derived from the issuer, fetched and validated by authlib."""
    path = urlsplit(settings.CONSOLE_ISSUER).path
    response = requests.get(f"{live_server.url}/.well-known/oauth-authorization-server{path}", timeout=10)
    response.raise_for_status()
    metadata = AuthorizationServerMetadata(response.json())
    metadata.validate()
    assert metadata["issuer"] == settings.CONSOLE_ISSUER
    return metadata


def _validate(live_server, access_token, audience):
    jwks = requests.get(f"{live_server.url}/oauth2/jwks", timeout=10).json()
    validator = ResourceServerValidator(jwks, issuer=settings.CONSOLE_ISSUER, resource_server=audience)
    claims = validator.authenticate_token(access_token)
    validator.validate_token(claims, scopes=None, request=None)
    return claims


def _exchange(session, metadata, subject_token, **params):
    return session.fetch_token(
        metadata["token_endpoint"], grant_type=TOKEN_EXCHANGE, subject_token=subject_token,
        subject_token_type=JWT_TYPE, requested_token_type=ACCESS_TOKEN_TYPE, **params,
    )


@pytest.mark.parametrize("params, audience", [
    ({"scope": "openid", "resource": AUDIENCE}, AUDIENCE),
    ({}, None),  # no scope, no resource: aud is the client_id, no scope claim
])
def test_authlib_exchanges_refreshes_introspects_and_revokes(session, live_server, interop_app, pem_issuer, rsa_key,
                                                             params, audience):
    audience = audience or interop_app.client_id
    metadata = _discover(live_server)
    token = _exchange(session, metadata, mint(rsa_key, pem_issuer.issuer, sub="alice"), **params)
    assert token["token_type"] == "Bearer" and token["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert ("scope" in token) is ("scope" in params)
    issued = _validate(live_server, token["access_token"], audience)
    assert issued["sub"] == "alice"

    refreshed = session.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    claims = _validate(live_server, refreshed["access_token"], audience)  # RFC 9068 on the refreshed token
    assert {k: claims.get(k) for k in ("sub", "aud", "scope", "sub_id")} == {
        k: issued.get(k) for k in ("sub", "aud", "scope", "sub_id")}

    introspection = session.introspect_token(metadata["introspection_endpoint"], token=refreshed["access_token"]).json()
    assert introspection["active"] is True
    assert {k: introspection.get(k) for k in claims} == dict(claims)
    assert session.introspect_token(metadata["introspection_endpoint"],
                                    token=refreshed["refresh_token"]).json()["active"] is True

    assert session.revoke_token(metadata["revocation_endpoint"], token=refreshed["refresh_token"]).status_code == 200
    assert session.introspect_token(metadata["introspection_endpoint"],
                                    token=refreshed["refresh_token"]).json() == {"active": False}


def test_authlib_sees_bad_credentials_as_invalid_client(live_server, interop_app, insecure_transport_for_loopback):
    metadata = _discover(live_server)
    with OAuth2Session(interop_app.client_id, "wrong-secret") as wrong:
        response = wrong.introspect_token(metadata["introspection_endpoint"], token="anything")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_every_metadata_document_validates_with_authlib(live_server):
    path = urlsplit(settings.CONSOLE_ISSUER).path
    for document in ("oauth-authorization-server", "openid-configuration"):
        for url in (f"/.well-known/{document}{path}", f"{path}/.well-known/{document}", f"/.well-known/{document}"):
            response = requests.get(live_server.url + url, timeout=10)
            assert response.status_code == 200, url
            metadata = AuthorizationServerMetadata(response.json())
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the development issuer is http://localhost
                metadata.validate()
            assert metadata["issuer"] == settings.CONSOLE_ISSUER


def test_requests_oauthlib_exchanges(live_server, interop_app, pem_issuer, rsa_key, insecure_transport_for_loopback):
    class TokenExchangeClient(BackendApplicationClient):
        grant_type = TOKEN_EXCHANGE

    session = RequestsOAuthlibSession(client=TokenExchangeClient(client_id=interop_app.client_id))
    token = session.fetch_token(
        f"{live_server.url}/oauth2/token", auth=HTTPBasicAuth(interop_app.client_id, interop_app.raw_secret),
        subject_token=mint(rsa_key, pem_issuer.issuer), subject_token_type=JWT_TYPE,
    )
    assert token["token_type"] == "Bearer" and "scope" not in token  # never parsed as the scope [""]
    assert _validate(live_server, token["access_token"], interop_app.client_id)["sub"] == "alice"


def test_joserfc_refuses_eddsa_by_default(live_server, interop_app, pem_issuer, rsa_key, settings,
                                          insecure_transport_for_loopback):
    """docs/configuration.md (SIGNING_ALGORITHM): authlib/joserfc's default policy refuses EdDSA tokens."""
    settings.TOKEN_EXCHANGE = {"SIGNING_ALGORITHM": "EdDSA"}
    with OAuth2Session(interop_app.client_id, interop_app.raw_secret) as client:
        token = _exchange(client, _discover(live_server), mint(rsa_key, pem_issuer.issuer))
    jwks = requests.get(f"{live_server.url}/oauth2/jwks", timeout=10).json()
    assert [key["alg"] for key in jwks["keys"]] == ["EdDSA"]
    with pytest.raises(InvalidTokenError):
        _validate(live_server, token["access_token"], interop_app.client_id)
    # accepted once the resource server allows the algorithm explicitly, by joserfc and by PyJWT
    decoded = jose_jwt.decode(token["access_token"], KeySet.import_key_set(jwks), algorithms=["EdDSA"])
    assert decoded.claims["aud"] == interop_app.client_id
    key = PyJWKSet.from_dict(jwks).keys[0]
    assert pyjwt.decode(token["access_token"], key, algorithms=["EdDSA"], audience=interop_app.client_id)["sub"]
