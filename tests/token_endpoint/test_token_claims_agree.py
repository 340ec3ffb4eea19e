"""What a token says, what introspection says about it and what a refresh gives: one source for all three.

Issue 14, defects 1, 2 and 5: a refresh lost the audience (the JWT's ``aud`` became the client_id
while introspection still said the original), ``"scope": ""`` was sent when no scope was granted,
live refresh tokens were introspected as inactive, ``iat`` was never reported and ``aud`` only with
``resource=``; bad client credentials at introspection got an empty 403, and revocation challenged
a Basic client with Bearer.
"""

import hashlib
from http import HTTPStatus

import jwt
import pytest
from django.conf import settings

from exchange.models import AccessToken, RefreshToken
from exchange.protocol import ID_TOKEN_TYPE

from ..factories import mint
from ..utils import assert_oauth_error, basic_auth, exchange_body, post_form, verify_issued

API = "https://api.example"
REPORTS = "https://reports.example"
#: Introspection members that restate a claim of the token (RFC 7662 §2.2 names them after the JWT claims).
RESTATED = ("iss", "sub", "aud", "client_id", "scope", "iat", "exp", "jti", "sub_id")


@pytest.fixture
def refreshing_app(make_application):
    return make_application(
        name="Refreshing", grant_types=["token_exchange", "refresh_token", "client_credentials"],
        scopes="openid profile", allowed_audiences=[API, REPORTS, "reports-api"],
    )


def _auth(app):
    return {"HTTP_AUTHORIZATION": basic_auth(app.client_id, app.raw_secret)}


def _exchange(client, app, subject_token, **params):
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, **params), **_auth(app))
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()


def _refresh(client, app, refresh_token, **params):
    return post_form(client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": refresh_token, **params},
                     **_auth(app))


def _introspect(client, app, token):
    response = post_form(client, "/oauth2/introspect", {"token": token}, **_auth(app))
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()


def _claims(client, access_token):
    return verify_issued(client, access_token)[1]


def _assert_introspection_restates(client, app, access_token):
    """Every claim the JWT has, introspection reports with the same value, and nothing the JWT lacks."""
    claims = _claims(client, access_token)
    answer = _introspect(client, app, access_token)
    assert answer["active"] is True and answer["token_type"] == "Bearer"
    assert {name: answer[name] for name in RESTATED if name in answer} == {
        name: claims[name] for name in RESTATED if name in claims}
    return claims, answer


@pytest.mark.parametrize("params, aud, resource", [
    ({}, None, []),  # None: the client_id
    ({"audience": "reports-api"}, "reports-api", []),
    ({"resource": API}, API, [API]),
    ({"audience": "reports-api", "resource": API}, ["reports-api", API], [API]),
])
def test_refresh_keeps_aud_resource_scope_and_subject(client, refreshing_app, pem_issuer, rsa_key,
                                                       params, aud, resource):
    aud = aud or refreshing_app.client_id
    first = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer, sub="alice"), scope="openid", **params)
    original, _ = _assert_introspection_restates(client, refreshing_app, first["access_token"])
    assert original["aud"] == aud

    response = _refresh(client, refreshing_app, first["refresh_token"])
    assert response.status_code == HTTPStatus.OK, response.content
    refreshed = response.json()
    claims, answer = _assert_introspection_restates(client, refreshing_app, refreshed["access_token"])
    kept = ("iss", "sub", "aud", "client_id", "scope", "sub_id")
    assert {name: claims[name] for name in kept} == {name: original[name] for name in kept}
    assert claims["sub_id"] == {"format": "iss_sub", "iss": pem_issuer.issuer, "sub": "alice"}
    assert claims["jti"] != original["jti"]
    assert AccessToken.objects.get(token_checksum=_checksum(refreshed["access_token"])).resource == resource
    assert answer["aud"] == aud


def test_a_second_refresh_still_keeps_the_audience(client, refreshing_app, pem_issuer, rsa_key):
    body = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer), audience="reports-api")
    for _ in range(2):
        body = _refresh(client, refreshing_app, body["refresh_token"]).json()
        assert _claims(client, body["access_token"])["aud"] == "reports-api"


def test_a_refresh_may_narrow_the_resources(client, refreshing_app, pem_issuer, rsa_key):
    first = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer), resource=[API, REPORTS])
    assert _claims(client, first["access_token"])["aud"] == [API, REPORTS]
    response = _refresh(client, refreshing_app, first["refresh_token"], resource=REPORTS)
    assert response.status_code == HTTPStatus.OK, response.content
    _assert_introspection_restates(client, refreshing_app, response.json()["access_token"])
    assert _claims(client, response.json()["access_token"])["aud"] == REPORTS


@pytest.mark.parametrize("params", [{}, {"audience": "reports-api"}])
def test_a_refresh_never_widens_the_audience(client, refreshing_app, pem_issuer, rsa_key, params):
    """The attack: refresh a token with a resource the original token was never issued for."""
    first = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer), **params)
    response = _refresh(client, refreshing_app, first["refresh_token"], resource=API)
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_target")
    assert AccessToken.objects.count() == 1


def test_client_credentials_resources_are_the_applications_audiences(client, refreshing_app):
    allowed = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "resource": API},
                        **_auth(refreshing_app))
    assert allowed.status_code == HTTPStatus.OK, allowed.content
    claims, _ = _assert_introspection_restates(client, refreshing_app, allowed.json()["access_token"])
    assert claims["aud"] == API
    refused = post_form(client, "/oauth2/token",
                        {"grant_type": "client_credentials", "resource": "https://other.example"},
                        **_auth(refreshing_app))
    assert_oauth_error(refused, HTTPStatus.BAD_REQUEST, "invalid_target")


def _checksum(token):
    return hashlib.sha256(token.encode()).hexdigest()


# -- no empty scope ------------------------------------------------------------------------------------

def test_no_scope_granted_means_no_scope_member_anywhere(client, refreshing_app, pem_issuer, rsa_key):
    first = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer))
    refreshed = _refresh(client, refreshing_app, first["refresh_token"]).json()
    credentials = post_form(client, "/oauth2/token", {"grant_type": "client_credentials"},
                            **_auth(refreshing_app)).json()
    for body in (first, refreshed, credentials):
        assert "scope" not in body, body
        assert "scope" not in _claims(client, body["access_token"])
        assert "scope" not in _introspect(client, refreshing_app, body["access_token"])
    assert "scope" not in _introspect(client, refreshing_app, refreshed["refresh_token"])


def test_a_granted_scope_is_in_the_response_the_token_and_introspection(client, refreshing_app, pem_issuer, rsa_key):
    body = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer), scope="openid profile")
    assert body["scope"] == "openid profile"
    assert _claims(client, body["access_token"])["scope"] == "openid profile"
    assert _introspect(client, refreshing_app, body["access_token"])["scope"] == "openid profile"
    refreshed = _refresh(client, refreshing_app, body["refresh_token"]).json()
    assert refreshed["scope"] == "openid profile"
    assert _claims(client, refreshed["access_token"])["scope"] == "openid profile"


# -- introspection ---------------------------------------------------------------------------------------

def test_introspection_reports_iat_and_aud_as_the_token_has_them(client, refreshing_app, pem_issuer, rsa_key):
    body = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer))
    claims, answer = _assert_introspection_restates(client, refreshing_app, body["access_token"])
    assert answer["iat"] == claims["iat"] and answer["exp"] == claims["exp"]
    assert answer["aud"] == refreshing_app.client_id  # no resource= was used; the JWT still has an aud


def test_live_refresh_tokens_are_active(client, refreshing_app, pem_issuer, rsa_key):
    body = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer, sub="alice"), scope="openid")
    answer = _introspect(client, refreshing_app, body["refresh_token"])
    row = RefreshToken.objects.get()
    assert answer == {
        "active": True, "iss": settings.CONSOLE_ISSUER, "sub": "alice", "client_id": refreshing_app.client_id,
        "scope": "openid", "iat": int(row.created.timestamp()),
        "sub_id": {"format": "iss_sub", "iss": pem_issuer.issuer, "sub": "alice"},
    }
    # used: the old one is rotated out, the new one is live
    refreshed = _refresh(client, refreshing_app, body["refresh_token"]).json()
    assert _introspect(client, refreshing_app, body["refresh_token"]) == {"active": False}
    assert _introspect(client, refreshing_app, refreshed["refresh_token"])["active"] is True


def test_refresh_token_expiry_is_reported_when_refresh_tokens_expire(client, refreshing_app, pem_issuer, rsa_key,
                                                                     settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "REFRESH_TOKEN_EXPIRE_SECONDS": 3600}
    body = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer))
    access_exp = _claims(client, body["access_token"])["exp"]
    assert _introspect(client, refreshing_app, body["refresh_token"])["exp"] == access_exp + 3600


@pytest.mark.parametrize("kill", ["revoke", "disable_issuer"])
def test_dead_refresh_tokens_are_inactive(client, refreshing_app, pem_issuer, rsa_key, kill):
    body = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer))
    if kill == "revoke":
        response = post_form(client, "/oauth2/revoke", {"token": body["refresh_token"]}, **_auth(refreshing_app))
        assert response.status_code == HTTPStatus.OK
    else:
        pem_issuer.enabled = False
        pem_issuer.save()
    assert _introspect(client, refreshing_app, body["refresh_token"]) == {"active": False}
    assert _refresh(client, refreshing_app, body["refresh_token"]).status_code == HTTPStatus.BAD_REQUEST


def test_an_exchanged_id_token_gives_an_at_jwt_access_token(client, refreshing_app, pem_issuer, rsa_key):
    """The issued token is an access token whatever the subject token was (RFC 8693 §2.2.1)."""
    body = _exchange(client, refreshing_app, mint(rsa_key, pem_issuer.issuer, nonce="n-1", aud="console-at-pem"),
                     subject_token_type=ID_TOKEN_TYPE)
    assert body["issued_token_type"] != ID_TOKEN_TYPE
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"


# -- failed client authentication ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
@pytest.mark.parametrize("credentials, scheme", [
    (lambda app: {"HTTP_AUTHORIZATION": basic_auth(app.client_id, "wrong")}, "Basic"),
    (lambda app: {"HTTP_AUTHORIZATION": basic_auth("no-such-client", "secret")}, "Basic"),
    (lambda app: {"HTTP_AUTHORIZATION": "Basic !!!"}, "Basic"),
    (lambda app: {}, "Basic"),  # body credentials below
])
def test_bad_client_credentials_are_401_invalid_client(client, refreshing_app, path, credentials, scheme):
    data = {"token": "anything"}
    headers = credentials(refreshing_app)
    if not headers:
        data.update(client_id=refreshing_app.client_id, client_secret="wrong")
    response = post_form(client, path, data, **headers)
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")
    assert response["WWW-Authenticate"].split(" ", 1)[0] == scheme


def test_introspection_with_an_unknown_bearer_token_is_challenged_with_bearer(client, db):
    response = post_form(client, "/oauth2/introspect", {"token": "anything"}, HTTP_AUTHORIZATION="Bearer not-a-token")
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Bearer ")
