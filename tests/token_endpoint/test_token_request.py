"""Token requests no grant should see: shape, parameters and client-authentication methods."""

from http import HTTPStatus
from urllib.parse import urlencode

import pytest

from exchange.models import AccessToken, ExchangeEvent

from ..utils import FORM, TOKEN_EXCHANGE, assert_oauth_error, basic_auth, exchange_body, post_form


def test_get_is_refused(client, auth):
    response = client.get("/oauth2/token", **auth)
    assert_oauth_error(response, HTTPStatus.METHOD_NOT_ALLOWED, "invalid_request")


def test_json_body_is_refused(client, auth, subject_token):
    response = client.post("/oauth2/token", exchange_body(subject_token), content_type="application/json", **auth)
    assert_oauth_error(response, 400, "invalid_request")


def test_parameters_in_url_are_refused(client, auth, subject_token):
    response = client.post("/oauth2/token?" + urlencode({"subject_token": subject_token}),
                           urlencode(exchange_body(subject_token)), content_type=FORM, **auth)
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("repeated", ["subject_token", "grant_type", "subject_token_type", "client_id"])
def test_repeated_parameters_are_refused(client, auth, subject_token, repeated):
    pairs = list(exchange_body(subject_token, client_id="x").items())
    pairs.append((repeated, dict(pairs)[repeated]))
    assert_oauth_error(post_form(client, "/oauth2/token", pairs, **auth), 400, "invalid_request")
    assert not AccessToken.objects.exists()


def test_missing_grant_type(client, auth, subject_token):
    body = exchange_body(subject_token)
    del body["grant_type"]
    assert_oauth_error(post_form(client, "/oauth2/token", body, **auth), 400, "invalid_request")


@pytest.mark.parametrize("grant_type", ["urn:ietf:params:oauth:grant-type:TOKEN-exchange", "password2", "implicit"])
def test_unknown_grant_type(client, auth, subject_token, grant_type):
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, grant_type=grant_type), **auth)
    assert_oauth_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize("params, description", [
    ({"subject_token": None}, "The subject_token parameter is required."),
    ({"subject_token": ""}, "The subject_token parameter is required."),
    ({"subject_token_type": None}, "The subject_token_type parameter is required."),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "The subject_token_type is not supported."),
    # id_token is supported since issue 14 (tests/subject_tokens/test_subject_token_types.py); refresh tokens are not
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
     "The subject_token_type is not supported."),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "The requested_token_type is not supported."),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "The requested_token_type is not supported."),
    # RFC 8693 §2.1: actor_token_type is required with an actor_token; delegation is off by default (issue 17)
    ({"actor_token": "x.y.z", "actor_token_type": "urn:ietf:params:oauth:token-type:jwt"},
     "The client is not allowed to use delegation (actor_token)."),
    ({"actor_token": "x.y.z"}, "The actor_token_type parameter is required with an actor_token."),
])
def test_parameter_errors(client, auth, subject_token, params, description):
    body = {k: v for k, v in {**exchange_body(subject_token), **params}.items() if v is not None}
    response = post_form(client, "/oauth2/token", body, **auth)
    assert assert_oauth_error(response, 400, "invalid_request")["error_description"] == description
    assert not AccessToken.objects.exists()


def test_opaque_access_token_subject_is_refused(client, auth):
    body = exchange_body("2YotnFZFEjr1zCsicMWpAA", subject_token_type="urn:ietf:params:oauth:token-type:access_token")
    response = post_form(client, "/oauth2/token", body, **auth)
    assert assert_oauth_error(response, 400, "invalid_request")["error_description"] == (
        "The subject token is not a well-formed signed JWT.")


def test_audience_not_allowed_is_invalid_target(client, auth, subject_token):
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, audience="https://api.internal/admin"), **auth)
    assert_oauth_error(response, 400, "invalid_target")


def test_allowed_audience_becomes_aud(client, subject_token, make_application):
    app = make_application(name="Aud", allowed_audiences=["https://api.example"])
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, audience="https://api.example"),
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == HTTPStatus.OK, response.content
    import jwt
    assert jwt.decode(response.json()["access_token"], options={"verify_signature": False})["aud"] == "https://api.example"


def test_basic_and_body_secret_together_are_refused(client, auth, subject_token, application):
    body = exchange_body(subject_token, client_id=application.client_id, client_secret=application.raw_secret)
    assert_oauth_error(post_form(client, "/oauth2/token", body, **auth), 400, "invalid_request")
    assert not AccessToken.objects.exists()


def test_basic_with_other_client_id_in_body_is_refused(client, auth, subject_token, make_application):
    other = make_application(name="Other")
    body = exchange_body(subject_token, client_id=other.client_id)
    assert_oauth_error(post_form(client, "/oauth2/token", body, **auth), 400, "invalid_request")


@pytest.mark.parametrize("client_id, secret, header", [
    # RFC 6749 §2.3.1's own example.
    ("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw", "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"),
    # form-urlencoded before base64: "client%3Aone:p%40ss%3Aw%2Brd%25%2F%C3%A9"
    ("client:one", "p@ss:w+rd%/\u00e9", "Basic Y2xpZW50JTNBb25lOnAlNDBzcyUzQXclMkJyZCUyNSUyRiVDMyVBOQ=="),
    # "+" is a space in form encoding: "client+one:sec+ret" → "client one" / "sec ret"
    ("client one", "sec ret", "Basic Y2xpZW50K29uZTpzZWMrcmV0"),
])
def test_basic_credentials_are_form_urlencoded(client, subject_token, make_application, client_id, secret, header):
    """RFC 6749 §2.3.1: base64-decode, split at the first colon, then form-urldecode each part."""
    app = make_application(name="Encoded")
    app.client_id, app.client_secret = client_id, secret
    app.save()
    response = post_form(client, "/oauth2/token", exchange_body(subject_token), HTTP_AUTHORIZATION=header)
    assert response.status_code == HTTPStatus.OK, response.content


def test_lowercase_basic_scheme_accepted(client, subject_token, application):
    header = basic_auth(application.client_id, application.raw_secret).replace("Basic", "basic")
    assert post_form(client, "/oauth2/token", exchange_body(subject_token), HTTP_AUTHORIZATION=header).status_code == 200


def test_unauthenticated_rejection_is_recorded(client, subject_token):
    post_form(client, "/oauth2/token", exchange_body(subject_token), HTTP_AUTHORIZATION=basic_auth("nobody", "x"))
    event = ExchangeEvent.objects.get()
    assert (event.outcome, event.cause, event.application) == ("rejected", "invalid_client", None)


def test_grant_type_urn_is_exact(client, auth, subject_token):
    assert TOKEN_EXCHANGE == "urn:ietf:params:oauth:grant-type:token-exchange"
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, grant_type=TOKEN_EXCHANGE + " "), **auth)
    assert_oauth_error(response, 400, "unsupported_grant_type")
