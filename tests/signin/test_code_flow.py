"""The authorization code flow end to end through Django's test client: code, token, ID token, refresh,
userinfo (the authlib client test against a live server is test_signin_interop.py)."""

from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import jwt
from django.conf import settings

from exchange import signing
from exchange.accounts import local_subject

from ..utils import basic_auth, post_form
from .conftest import REDIRECT_URI, pkce_pair


def _verify_id_token(token, app, nonce="n-1"):
    header = jwt.get_unverified_header(token)
    keys = {k["kid"]: k for k in signing.published_jwks()["keys"]}
    assert header["kid"] in keys and header["typ"] == "JWT"
    claims = jwt.decode(token, jwt.PyJWK.from_dict(keys[header["kid"]]), algorithms=[header["alg"]],
                        audience=app.client_id, issuer=settings.CONSOLE_ISSUER)
    assert claims.get("nonce") == nonce  # a refreshed ID token carries none (OpenID Connect Core §12.2)
    return claims


def test_confidential_client_code_token_refresh_userinfo(client, signin_app, local_user, get_code):
    verifier, challenge = pkce_pair()
    params = get_code(signin_app, challenge, scope="openid profile email")
    assert params["state"] == "st-1" and "code" in params
    assert params["iss"] == settings.CONSOLE_ISSUER
    assert parse_qs(urlsplit(params["_location"]).query)["iss"] == [settings.CONSOLE_ISSUER]  # exactly once
    response = post_form(client, "/oauth2/token", {"grant_type": "authorization_code", "code": params["code"],
                                             "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
                           HTTP_AUTHORIZATION=basic_auth(signin_app.client_id, signin_app.raw_secret))
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert body["scope"] == "openid profile email"
    claims = _verify_id_token(body["id_token"], signin_app)
    assert claims["sub"] == local_subject(local_user) and claims["preferred_username"] == "carol"
    assert claims["email"] == "carol@example.com"
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["sub"] == local_subject(local_user)
    info = client.get("/oauth2/userinfo", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert info.status_code == HTTPStatus.OK, info.content
    assert info.json()["sub"] == local_subject(local_user) and info.json()["name"] == "Carol Jones"
    refreshed = post_form(client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                            HTTP_AUTHORIZATION=basic_auth(signin_app.client_id, signin_app.raw_secret))
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content
    again = refreshed.json()
    assert again["refresh_token"] != body["refresh_token"]
    assert jwt.decode(again["access_token"], options={"verify_signature": False})["sub"] == local_subject(local_user)
    assert _verify_id_token(again["id_token"], signin_app, nonce=None)["sub"] == local_subject(local_user)


def test_public_client_code_flow_without_a_secret(client, spa_app, local_user, get_code):
    verifier, challenge = pkce_pair()
    params = get_code(spa_app, challenge)
    response = post_form(client, "/oauth2/token", {"grant_type": "authorization_code", "code": params["code"],
                                             "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
                                             "client_id": spa_app.client_id})
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    _verify_id_token(body["id_token"], spa_app)
    refreshed = post_form(client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                                              "client_id": spa_app.client_id})
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content
