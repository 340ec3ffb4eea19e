"""Bounded lifetimes: an application bound to the subject token never issues a token that outlives it.

Application.bound_to_subject_token (default on): the issued access token's exp is at most the
subject token's, expires_in shrinks with it; the refresh token is issued but stops at the subject
token's exp, and the access tokens refreshed from it are bounded the same way.
"""

import time
from http import HTTPStatus

import jwt
import pytest

from exchange import flows
from exchange.models import RefreshToken

from ..factories import mint
from ..utils import assert_subject_rejected, basic_auth, exchange_body, post_form


def _auth(app):
    return {"HTTP_AUTHORIZATION": basic_auth(app.client_id, app.raw_secret)}


def _post(client, app, data):
    return post_form(client, "/oauth2/token", data, **_auth(app))


def _unverified(token):
    return jwt.decode(token, options={"verify_signature": False})


def test_bound_is_on_by_default(application):
    assert application.bound_to_subject_token is True


def test_a_subject_token_valid_60_s_more_gives_at_most_60_s(exchange, application, pem_issuer, rsa_key, time_machine):
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    subject_exp = now + 60
    response = exchange(mint(rsa_key, pem_issuer.issuer, iat=now - 10, exp=subject_exp))
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert 0 < body["expires_in"] <= 60
    claims = _unverified(body["access_token"])
    assert claims["exp"] <= subject_exp
    assert claims["exp"] - claims["iat"] == body["expires_in"]


def test_a_fractional_exp_is_never_exceeded(exchange, pem_issuer, rsa_key, time_machine):
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    response = exchange(mint(rsa_key, pem_issuer.issuer, iat=now, exp=now + 30.9))
    assert response.status_code == HTTPStatus.OK, response.content
    assert _unverified(response.json()["access_token"])["exp"] <= now + 30.9


def test_the_lifetime_decides_when_the_subject_token_lives_longer(exchange, pem_issuer, rsa_key):
    response = exchange(mint(rsa_key, pem_issuer.issuer, exp=int(time.time()) + 86400))
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["expires_in"] == 3600


def test_an_unbound_application_outlives_the_subject_token(exchange, application, pem_issuer, rsa_key):
    flows.update_application(application, bound_to_subject_token=False)
    subject_exp = int(time.time()) + 60
    response = exchange(mint(rsa_key, pem_issuer.issuer, exp=subject_exp))
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["expires_in"] == 3600
    assert _unverified(response.json()["access_token"])["exp"] > subject_exp


def test_expired_within_the_clock_skew_leaves_nothing_to_issue(exchange, pem_issuer, rsa_key, time_machine):
    """Accepted by the skew (60 s), but a token bounded by an exp already past would be born dead."""
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer, iat=now - 100, exp=now - 1)), "expired")
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer, iat=now - 100, exp=now)), "expired")


def test_a_used_token_expired_within_the_clock_skew_is_refused_as_replayed(exchange, pem_issuer, rsa_key, time_machine):
    """The replay answer comes first, as it would without the bound (not "expired", which would hide the reuse)."""
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    token = mint(rsa_key, pem_issuer.issuer, iat=now - 100, exp=now + 30, jti="used-then-expired")
    assert exchange(token).status_code == HTTPStatus.OK
    time_machine.move_to(now + 40, tick=False)  # exp passed 10 s ago: still inside the issuer's 60 s skew
    assert_subject_rejected(exchange(token), "replayed", issued_before=1)


def test_refresh_tokens_are_bounded_by_the_subject_token(client, refreshing_application, pem_issuer, rsa_key, time_machine):
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    subject_exp = now + 600
    body = _post(client, refreshing_application, exchange_body(mint(rsa_key, pem_issuer.issuer, iat=now, exp=subject_exp))).json()
    assert body["expires_in"] == 600
    assert int(RefreshToken.objects.get().not_after.timestamp()) == subject_exp
    introspected = post_form(client, "/oauth2/introspect", {"token": body["refresh_token"]}, **_auth(refreshing_application)).json()
    assert introspected["active"] is True and introspected["exp"] == subject_exp

    # 500 s later: the refreshed access token lives the 100 s left, and says so.
    time_machine.move_to(now + 500, tick=False)
    refreshed = _post(client, refreshing_application, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content
    refreshed = refreshed.json()
    claims = _unverified(refreshed["access_token"])
    assert claims["exp"] <= subject_exp and refreshed["expires_in"] == claims["exp"] - claims["iat"] <= 100
    rotated = RefreshToken.objects.get(revoked__isnull=True)
    assert int(rotated.not_after.timestamp()) == subject_exp  # the rotated refresh token keeps the bound

    # Past the subject token's exp: no refresh, and introspection says so.
    time_machine.move_to(subject_exp + 1, tick=False)
    again = _post(client, refreshing_application, {"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]})
    assert again.status_code == HTTPStatus.BAD_REQUEST and again.json()["error"] == "invalid_grant"
    gone = post_form(client, "/oauth2/introspect", {"token": refreshed["refresh_token"]}, **_auth(refreshing_application))
    assert gone.json() == {"active": False}


def test_refresh_tokens_of_an_unbound_application_have_no_bound(client, refreshing_application, pem_issuer, rsa_key):
    flows.update_application(refreshing_application, bound_to_subject_token=False)
    body = _post(client, refreshing_application, exchange_body(mint(rsa_key, pem_issuer.issuer))).json()
    assert "refresh_token" in body
    assert RefreshToken.objects.get().not_after is None


def test_client_credentials_tokens_are_not_bounded(client, make_application, time_machine):
    app = make_application(name="Machine", grant_types=["client_credentials"])
    response = _post(client, app, {"grant_type": "client_credentials"})
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["expires_in"] == 3600
