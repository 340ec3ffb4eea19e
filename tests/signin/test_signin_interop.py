"""The sign-in flow as an independent client performs it, against a live server on 127.0.0.1 (issue 16).

authlib's ``OAuth2Session`` discovers the server (OpenID Connect Discovery, validated by authlib's
``OpenIDProviderMetadata``), builds the authorization URL with PKCE S256, exchanges the code, refreshes
and calls userinfo; a ``requests`` session plays the user (sign-in page, consent page); the ID token is
verified by joserfc against the published JWKS (signature, ``iss``, ``aud``, ``nonce``, ``at_hash``).
"""

import base64
import hashlib
import re
import secrets
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.discovery import OpenIDProviderMetadata
from django.conf import settings
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from exchange.accounts import local_subject

from .conftest import PASSWORD

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

CALLBACK = "http://127.0.0.1:9/callback"  # never fetched: the client reads the code from the redirect


@pytest.fixture
def live_signin_app(make_application):
    return make_application(name="Live web app", application_type="traditional",
                            grant_types=["authorization_code", "refresh_token"], scopes="openid profile email",
                            redirect_uris=CALLBACK)


@pytest.fixture
def live_spa(make_application):
    return make_application(name="Live SPA", application_type="spa", grant_types=["authorization_code", "refresh_token"],
                            scopes="openid profile", redirect_uris=CALLBACK)


@pytest.fixture
def loopback(monkeypatch, live_server):
    assert urlsplit(live_server.url).hostname in ("localhost", "127.0.0.1")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # http on loopback


def discover(live_server):
    path = urlsplit(settings.CONSOLE_ISSUER).path
    response = requests.get(f"{live_server.url}{path}/.well-known/openid-configuration", timeout=10)
    response.raise_for_status()
    metadata = OpenIDProviderMetadata(response.json())
    metadata.validate()
    assert metadata["issuer"] == settings.CONSOLE_ISSUER
    return metadata


def hidden_fields(html):
    return {unescape(name): unescape(value) for name, value in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


def user_agent_signs_in(authorization_url, username="carol", password=PASSWORD):
    """What the user's browser does: follow to the sign-in page, sign in, allow; the redirect to the client."""
    browser = requests.Session()
    response = browser.get(authorization_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302 and "/oauth2/signin" in response.headers["Location"]
    signin_url = urljoin(authorization_url, response.headers["Location"])
    page = browser.get(signin_url, timeout=10)
    form = hidden_fields(page.text)
    response = browser.post(signin_url, data={**form, "username": username, "password": password},
                            allow_redirects=False, timeout=10, headers={"Referer": signin_url})
    assert response.status_code == 302, response.text[:300]
    consent_url = urljoin(signin_url, response.headers["Location"])
    consent = browser.get(consent_url, timeout=10)
    assert consent.status_code == 200 and "consent-form" in consent.text
    response = browser.post(consent_url.split("?")[0], data={**hidden_fields(consent.text), "allow": "Authorize"},
                            allow_redirects=False, timeout=10, headers={"Referer": consent_url})
    assert response.status_code == 302, response.text[:300]
    return response.headers["Location"]


def verify_id_token(live_server, metadata, id_token, client_id, nonce, access_token):
    jwks = requests.get(metadata["jwks_uri"], timeout=10).json()
    token = jose_jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=metadata["id_token_signing_alg_values_supported"])
    assert token.header["kid"] in {key["kid"] for key in jwks["keys"]}
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata["issuer"]}, aud={"essential": True, "value": client_id},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
        **({"nonce": {"essential": True, "value": nonce}} if nonce else {}),
    ).validate(token.claims)
    digest = hashlib.sha256(access_token.encode()).digest()
    assert token.claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    return token.claims


@pytest.mark.parametrize("public", [False, True], ids=["confidential", "public"])
def test_authlib_signs_in_with_pkce_refreshes_and_reads_userinfo(live_server, loopback, local_user, live_signin_app,
                                                                live_spa, public):
    app = live_spa if public else live_signin_app
    metadata = discover(live_server)
    assert "S256" in metadata["code_challenge_methods_supported"]
    auth_method = "none" if public else "client_secret_basic"
    assert auth_method in metadata["token_endpoint_auth_methods_supported"]
    nonce = secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)
    with OAuth2Session(app.client_id, None if public else app.raw_secret, scope="openid profile",
                       redirect_uri=CALLBACK, code_challenge_method="S256",
                       token_endpoint_auth_method=auth_method) as client:
        url, state = client.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier,
                                                     nonce=nonce)
        callback = user_agent_signs_in(url)
        params = parse_qs(urlsplit(callback).query)
        assert params["iss"] == [metadata["issuer"]] and params["state"] == [state]  # RFC 9207
        token = client.fetch_token(metadata["token_endpoint"], authorization_response=callback,
                                   code_verifier=verifier)
        assert token["token_type"] == "Bearer" and token["scope"] == "openid profile"
        claims = verify_id_token(live_server, metadata, token["id_token"], app.client_id, nonce, token["access_token"])
        assert claims["sub"] == local_subject(local_user) and claims["preferred_username"] == "carol"

        userinfo = client.get(metadata["userinfo_endpoint"]).json()
        assert userinfo["sub"] == claims["sub"] and userinfo["name"] == "Carol Jones"
        assert "email" not in userinfo  # the email scope was not asked for

        refreshed = client.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
        assert refreshed["refresh_token"] != token["refresh_token"]  # rotated
        again = verify_id_token(live_server, metadata, refreshed["id_token"], app.client_id, None,
                                refreshed["access_token"])
        assert again["sub"] == claims["sub"]
        assert client.get(metadata["userinfo_endpoint"]).json()["sub"] == claims["sub"]

        # The first refresh token was rotated away; presenting it again is refused (and revokes the family).
        with pytest.raises(Exception) as refused:
            client.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
        assert "invalid_grant" in str(refused.value)


def test_authlib_without_pkce_is_refused(live_server, loopback, local_user, live_signin_app):
    metadata = discover(live_server)
    with OAuth2Session(live_signin_app.client_id, live_signin_app.raw_secret, scope="openid",
                       redirect_uri=CALLBACK) as client:
        url, state = client.create_authorization_url(metadata["authorization_endpoint"])
    response = requests.get(url, allow_redirects=False, timeout=10)
    params = parse_qs(urlsplit(response.headers["Location"]).query)
    assert params["error"] == ["invalid_request"] and params["state"] == [state]
