"""The token-exchange grant end to end: issuers of both key sources, the issued token, every rejection cause."""

import time
from http import HTTPStatus

import pytest
from django.conf import settings

from exchange import flows
from exchange.models import AccessToken, ExchangeEvent, RefreshToken, TrustedTokenIssuer
from exchange.service_accounts import SYSTEM
from exchange.subject_token import CAUSES

from ..factories import DROP, certificate_pem, mint, private_key, raw_token
from ..utils import ACCESS_TOKEN_TYPE, JWT_TYPE, assert_oauth_error, basic_auth, exchange_body, post_form, verify_issued


def test_exchange_with_jwks_issuer(exchange, client, jwks_issuer, ec_key, application, jwks_server):
    token = mint(ec_key, jwks_issuer.issuer, kid="k1", sub="bob@example.com")
    response = exchange(token)
    assert response.status_code == HTTPStatus.OK, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert "refresh_token" not in body
    header, claims = verify_issued(client, body["access_token"])
    assert header["typ"] == "at+jwt"
    assert claims["sub"] == "bob@example.com"
    assert claims["client_id"] == application.client_id
    assert len(jwks_server.requests) == 1
    stored = AccessToken.objects.get()
    assert (stored.subject, stored.trusted_issuer, stored.jti) == ("bob@example.com", jwks_issuer, claims["jti"])
    assert stored.token == ""  # the reusable token is not kept at rest
    event = ExchangeEvent.objects.get()
    assert (event.outcome, event.trusted_issuer, event.application, event.issued_jti) == (
        "issued", jwks_issuer, application, claims["jti"])


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed25519"])
def test_exchange_with_pem_issuer(exchange, client, db, kind):
    key = private_key(kind, "pem-" + kind)
    flows.create_trusted_token_issuer(name=kind, issuer=f"https://{kind}.test", certificates=[certificate_pem(key)])
    response = exchange(mint(key, f"https://{kind}.test", sub="carol"))
    assert response.status_code == HTTPStatus.OK, response.content
    _, claims = verify_issued(client, response.json()["access_token"])
    assert claims["sub"] == "carol"


def test_only_sub_is_copied(exchange, client, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer, scope="admin", roles=["admin"], act={"sub": "x"}, email="a@b")
    _, claims = verify_issued(client, exchange(token).json()["access_token"])
    # No scope was asked for: the claim is absent, never "" (the subject token's scope is not copied).
    assert set(claims) == {"iss", "sub", "aud", "client_id", "iat", "exp", "jti", "sub_id"}
    assert claims["iss"] == settings.CONSOLE_ISSUER
    # The issuer binding (T77): only the server-defined pair, nothing else from the subject token.
    assert claims["sub_id"] == {"format": "iss_sub", "iss": pem_issuer.issuer, "sub": claims["sub"]}


def test_requested_jwt_type_is_echoed(exchange, pem_issuer, rsa_key):
    response = exchange(mint(rsa_key, pem_issuer.issuer), requested_token_type=JWT_TYPE)
    assert response.json()["issued_token_type"] == JWT_TYPE


def test_access_token_subject_type_accepted_when_jwt(exchange, pem_issuer, rsa_key):
    response = exchange(mint(rsa_key, pem_issuer.issuer), subject_token_type=ACCESS_TOKEN_TYPE)
    assert response.status_code == HTTPStatus.OK


def test_alias_accepted_in_aud_when_console_issuer_absent(exchange, pem_issuer, rsa_key):
    response = exchange(mint(rsa_key, pem_issuer.issuer, aud=["someone-else", "console-at-pem"]))
    assert response.status_code == HTTPStatus.OK, response.content


def test_application_token_lifetime(exchange, pem_issuer, rsa_key, make_application):
    app = make_application(name="Short", access_token_lifetime=120)
    response = exchange(mint(rsa_key, pem_issuer.issuer), app=app)
    assert response.json()["expires_in"] == 120


def _expired_cert_issuer(db):
    key = private_key("rsa", "expired-cert")
    trusted = flows.create_trusted_token_issuer(
        name="Old", issuer="https://old.test", certificates=[certificate_pem(key, days=30)]
    )
    return key, trusted


# cause → how to build the bad token from (rsa_key, pem_issuer)
REJECTIONS = {
    "expired": lambda k, i: mint(k, i.issuer, exp=int(time.time()) - 120),
    "not_yet_valid": lambda k, i: mint(k, i.issuer, nbf=int(time.time()) + 600),
    "too_old": lambda k, i: mint(k, i.issuer, iat=int(time.time()) - 7200, exp=int(time.time()) + 60),
    "unknown_issuer": lambda k, i: mint(k, "https://unknown.test"),
    "bad_signature": lambda k, i: mint(private_key("rsa", "attacker"), i.issuer),
    "algorithm_not_allowed": lambda k, i: mint(k, i.issuer, alg="PS256"),
    "audience_mismatch": lambda k, i: mint(k, i.issuer, aud="https://other-rp.test"),
    "missing_claim": lambda k, i: mint(k, i.issuer, exp=DROP),
    "invalid_claim": lambda k, i: mint(k, i.issuer, sub=""),
    "malformed": lambda k, i: "not.a-jwt",
    "unsupported_header": lambda k, i: raw_token({"alg": "RS256", "crit": ["x"], "x": 1}, {"iss": i.issuer}),
    # An ES256 token for an issuer whose only key is RSA: no key of the issuer can verify it.
    "unknown_key": lambda k, i: mint(private_key("ec", "attacker"), i.issuer),
}


@pytest.mark.parametrize("cause", sorted(REJECTIONS))
def test_rejection_causes(cause, exchange, pem_issuer, rsa_key):
    if cause == "algorithm_not_allowed":
        pem_issuer.allowed_algorithms = ["RS256"]
        pem_issuer.save()
    if cause == "unknown_key":
        pem_issuer.allowed_algorithms = ["RS256", "ES256"]
        pem_issuer.save()
    response = exchange(REJECTIONS[cause](rsa_key, pem_issuer))
    body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert body["error_description"] == CAUSES[cause]
    assert not AccessToken.objects.exists()
    assert ExchangeEvent.objects.get().cause == cause


def test_issuer_disabled(exchange, pem_issuer, rsa_key):
    TrustedTokenIssuer.objects.filter(pk=pem_issuer.pk).update(enabled=False)
    body = assert_oauth_error(exchange(mint(rsa_key, pem_issuer.issuer)), 400, "invalid_request")
    assert body["error_description"] == CAUSES["issuer_disabled"]
    assert ExchangeEvent.objects.get().cause == "issuer_disabled"


def test_key_source_unavailable(exchange, jwks_issuer, ec_key, jwks_server):
    jwks_server.status = HTTPStatus.INTERNAL_SERVER_ERROR
    body = assert_oauth_error(exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")), 400, "invalid_request")
    assert body["error_description"] == CAUSES["key_source_unavailable"]
    jwks_issuer.refresh_from_db()
    assert "HTTP 500" in jwks_issuer.key_fetch_error


def test_unknown_kid_in_jwks(exchange, jwks_issuer, ec_key):
    body = assert_oauth_error(exchange(mint(ec_key, jwks_issuer.issuer, kid="nope")), 400, "invalid_request")
    assert body["error_description"] == CAUSES["unknown_key"]


def test_certificate_expired(exchange, db, time_machine):
    key, trusted = _expired_cert_issuer(db)
    time_machine.move_to(time.time() + 40 * 86400)
    body = assert_oauth_error(exchange(mint(key, trusted.issuer)), 400, "invalid_request")
    assert body["error_description"] == CAUSES["certificate_expired"]


def test_replayed_jti(exchange, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == HTTPStatus.OK
    body = assert_oauth_error(exchange(token), 400, "invalid_request")
    assert body["error_description"] == CAUSES["replayed"]
    assert AccessToken.objects.count() == 1


def test_grant_not_allowed_is_unauthorized_client(exchange, pem_issuer, rsa_key, make_application):
    app = make_application(name="No exchange", grant_types=["client_credentials"])
    assert_oauth_error(exchange(mint(rsa_key, pem_issuer.issuer), app=app), 400, "unauthorized_client")
    assert ExchangeEvent.objects.get().cause == "unauthorized_client"


def test_public_client_refused(client, pem_issuer, rsa_key, make_application):
    spa = make_application(name="SPA", application_type="spa", grant_types=["authorization_code"])
    # Force the grant on, bypassing validation, to prove the endpoint itself refuses public clients.
    type(spa).objects.filter(pk=spa.pk).update(allowed_grant_types=[flows.resolve_grant_type("token_exchange")])
    body = exchange_body(mint(rsa_key, pem_issuer.issuer), client_id=spa.client_id)
    assert_oauth_error(post_form(client, "/oauth2/token", body), 401, "invalid_client")
    assert spa.raw_secret is None  # a public client has no secret: none authenticates it
    for guess in ("", "guess"):
        with_secret = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer)),
                                HTTP_AUTHORIZATION=basic_auth(spa.client_id, guess))
        assert_oauth_error(with_secret, 401, "invalid_client")
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("auth", [
    lambda app: basic_auth(app.client_id, "wrong"),
    lambda app: basic_auth("unknown-client", app.raw_secret),
    lambda app: "Basic !!!not-base64",
    lambda app: "Bearer abc",
])
def test_invalid_client(auth, exchange, pem_issuer, rsa_key, application):
    response = exchange(mint(rsa_key, pem_issuer.issuer), auth=auth(application))
    assert_oauth_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic")


def test_refresh_token_only_when_allowed(exchange, client, pem_issuer, rsa_key, make_application):
    app = make_application(name="With refresh", grant_types=["token_exchange", "refresh_token"])
    body = exchange(mint(rsa_key, pem_issuer.issuer, sub="dave"), app=app).json()
    assert body["refresh_token"]
    refreshed = post_form(client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                          HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content
    _, claims = verify_issued(client, refreshed.json()["access_token"])
    assert claims["sub"] == "dave"
    assert RefreshToken.objects.filter(subject="dave", revoked__isnull=True).count() == 1


def test_refresh_refused_after_issuer_disabled(exchange, client, pem_issuer, rsa_key, make_application):
    app = make_application(name="With refresh", grant_types=["token_exchange", "refresh_token"])
    body = exchange(mint(rsa_key, pem_issuer.issuer), app=app).json()
    TrustedTokenIssuer.objects.filter(pk=pem_issuer.pk).update(enabled=False)
    refreshed = post_form(client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                          HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert_oauth_error(refreshed, 400, "invalid_grant")


def test_introspection_then_revocation(exchange, client, pem_issuer, rsa_key, application):
    access_token = exchange(mint(rsa_key, pem_issuer.issuer, sub="erin")).json()["access_token"]
    auth = {"HTTP_AUTHORIZATION": basic_auth(application.client_id, application.raw_secret)}
    active = post_form(client, "/oauth2/introspect", {"token": access_token}, **auth).json()
    assert active["active"] is True
    assert active["sub"] == "erin"
    assert active["client_id"] == application.client_id
    revoked = post_form(client, "/oauth2/revoke", {"token": access_token}, **auth)
    assert revoked.status_code == HTTPStatus.OK
    assert post_form(client, "/oauth2/introspect", {"token": access_token}, **auth).json() == {"active": False}


def test_introspection_requires_client_auth(client, exchange, pem_issuer, rsa_key):
    access_token = exchange(mint(rsa_key, pem_issuer.issuer)).json()["access_token"]
    response = post_form(client, "/oauth2/introspect", {"token": access_token})
    assert response.status_code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN)


def test_client_secret_post(client, pem_issuer, rsa_key, application):
    body = exchange_body(mint(rsa_key, pem_issuer.issuer), client_id=application.client_id,
                         client_secret=application.raw_secret)
    assert post_form(client, "/oauth2/token", body).status_code == HTTPStatus.OK


def test_trailing_slash_also_works(client, pem_issuer, rsa_key, application):
    response = post_form(client, "/oauth2/token/", exchange_body(mint(rsa_key, pem_issuer.issuer)),
                         HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))
    assert response.status_code == HTTPStatus.OK


def test_client_credentials_still_works(client, make_application):
    app = make_application(name="Machine", grant_types=["client_credentials"], scopes="console:manage", actor=SYSTEM)
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": "console:manage"},
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == HTTPStatus.OK, response.content
    _, claims = verify_issued(client, response.json()["access_token"])
    assert claims["sub"] == app.client_id
    assert claims["scope"] == "console:manage"


def test_scope_beyond_application_is_invalid_scope(exchange, pem_issuer, rsa_key):
    assert_oauth_error(exchange(mint(rsa_key, pem_issuer.issuer), scope="console:manage"), 400, "invalid_scope")
