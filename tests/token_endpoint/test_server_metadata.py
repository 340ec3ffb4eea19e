"""Server metadata where clients derive it from the issuer, listing exactly what is served (issue 14, defects 3, 4).

The issuer is the token endpoint URL (``…/oauth2/token``): RFC 8414 §3.1 inserts the well-known
segment before its path, OpenID Connect Discovery §4 appends it, and some clients ask at the root.
Each document is checked by authlib's RFC 8414 validator, which we did not write.
"""

from http import HTTPStatus
from urllib.parse import urlsplit

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from exchange.protocol import MANAGE_SCOPE
from exchange.views import metadata_paths

ISSUER = "https://id.example.com/oauth2/token"
EXPECTED_PATHS = [
    "/.well-known/oauth-authorization-server/oauth2/token",
    "/oauth2/token/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration/oauth2/token",
    "/oauth2/token/.well-known/openid-configuration",
    "/.well-known/openid-configuration",
]


@pytest.fixture
def https_issuer(settings):
    settings.CONSOLE_ISSUER = ISSUER
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "id.example.com"]
    return ISSUER


def _document(client, path):
    response = client.get(path, secure=True, HTTP_HOST="id.example.com")
    assert response.status_code == HTTPStatus.OK, (path, response.status_code)
    return response.json()


def test_metadata_paths_are_derived_from_the_issuer(https_issuer):
    assert metadata_paths() == EXPECTED_PATHS


@pytest.mark.parametrize("path", EXPECTED_PATHS)
def test_every_derived_location_serves_the_issuer_and_validates(client, db, https_issuer, path):
    document = _document(client, path)
    assert document["issuer"] == https_issuer
    AuthorizationServerMetadata(document).validate()  # raises on any RFC 8414 violation
    assert document["token_endpoint"] == "https://id.example.com/oauth2/token"


def test_the_paths_follow_the_configured_issuer(client, db, settings, https_issuer):
    settings.CONSOLE_ISSUER = "https://id.example.com/tenant-a/token"
    for path in ("/.well-known/oauth-authorization-server/tenant-a/token",
                 "/tenant-a/token/.well-known/openid-configuration"):
        assert _document(client, path)["issuer"] == settings.CONSOLE_ISSUER
    for stale in ("/.well-known/oauth-authorization-server/oauth2/token",
                  "/oauth2/token/.well-known/openid-configuration"):
        assert client.get(stale, secure=True).status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize("path", [
    "/.well-known/oauth-authorization-server/other",
    "/.well-known/openid-configuration/oauth2/token/extra",
    "/oauth2/.well-known/openid-configuration",
    "/oauth2/token/x/.well-known/openid-configuration",
    "/.well-known/openid-configuration/../oauth2/token",
])
def test_other_well_known_paths_are_404(client, db, https_issuer, path):
    assert client.get(path, secure=True).status_code == HTTPStatus.NOT_FOUND


def test_the_local_issuer_is_served_too(client, db, settings):
    """The development default (http://localhost:8000/oauth2/token): same paths, same issuer."""
    path = urlsplit(settings.CONSOLE_ISSUER).path
    response = client.get(f"/.well-known/oauth-authorization-server{path}")
    assert response.status_code == HTTPStatus.OK and response.json()["issuer"] == settings.CONSOLE_ISSUER


def test_metadata_lists_only_what_is_served(client, db, https_issuer):
    """Each advertised endpoint answers; the code flow with S256 PKCE only; no end-session endpoint (not built)."""
    document = _document(client, "/.well-known/oauth-authorization-server/oauth2/token")
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "introspection_endpoint", "revocation_endpoint"):
        path = urlsplit(document[name]).path
        assert client.get(path, secure=True, HTTP_HOST="id.example.com").status_code != HTTPStatus.NOT_FOUND, name
    assert document["authorization_endpoint"] == "https://id.example.com/oauth2/authorize"
    assert "authorization_code" in document["grant_types_supported"]
    assert document["response_types_supported"] == ["code"]  # no implicit, no hybrid
    assert document["code_challenge_methods_supported"] == ["S256"]  # never plain
    assert document["authorization_response_iss_parameter_supported"] is True
    assert "end_session_endpoint" not in document
    assert MANAGE_SCOPE not in document["scopes_supported"]
    for endpoint in ("token", "introspection", "revocation"):
        methods = document[f"{endpoint}_endpoint_auth_methods_supported"]
        assert not any(method.endswith("_jwt") for method in methods)
        assert f"{endpoint}_endpoint_auth_signing_alg_values_supported" not in document
    assert "none" in document["token_endpoint_auth_methods_supported"]  # public clients, code flow only
    assert "none" not in document["introspection_endpoint_auth_methods_supported"]
    published = {key["alg"] for key in client.get("/oauth2/jwks").json()["keys"]}
    assert set(document["id_token_signing_alg_values_supported"]) == published


def test_openid_configuration_validates_as_openid_provider_metadata(client, db, https_issuer):
    """OpenID Connect Discovery §3, checked by authlib's validator (which we did not write)."""
    document = _document(client, "/oauth2/token/.well-known/openid-configuration")
    OpenIDProviderMetadata(document).validate()
    assert document["issuer"] == https_issuer and document["subject_types_supported"] == ["public"]


@pytest.mark.parametrize("path, grant_type", [
    ("/oauth2/token", "authorization_code"),
])
def test_what_is_not_advertised_is_not_served_either(client, db, path, grant_type, make_application):
    app = make_application(grant_types=["token_exchange"])
    response = client.post(path, {"grant_type": grant_type, "code": "x", "client_id": app.client_id,
                                  "client_secret": app.raw_secret})
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_jwks_keys_carry_use_but_not_key_ops(client, db, settings, algorithm):
    settings.TOKEN_EXCHANGE = {"SIGNING_ALGORITHM": algorithm}
    keys = client.get("/oauth2/jwks").json()["keys"]
    assert [(key["use"], key["alg"], "key_ops" in key) for key in keys] == [("sig", algorithm, False)]
