"""Hostile request shapes at the token, introspection and revocation endpoints: always RFC 6749 JSON, never a 5xx
or Django's HTML error page. (Parameter-level cases live in test_token_request.py.)"""

from http import HTTPStatus
from urllib.parse import urlencode

import pytest

from exchange.models import AccessToken, ExchangeEvent

from ..utils import assert_oauth_error, basic_auth, exchange_body, post_form


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])
@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "shift_jis"])
def test_non_utf8_form_bodies_get_json_400(path, charset, client, auth, subject_token):
    body = urlencode(exchange_body(subject_token, token="abc")).encode()
    response = client.generic("POST", path, body, content_type=f"application/x-www-form-urlencoded; charset={charset}", **auth)
    body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert body["error_description"] == "The request body could not be read."
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "text/plain", "application/json", ""])
def test_other_media_types(content_type, client, auth, subject_token):
    response = client.generic("POST", "/oauth2/token", urlencode(exchange_body(subject_token)).encode(),
                              content_type=content_type, **auth)
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")


def test_broken_multipart_body(client, auth):
    response = client.generic("POST", "/oauth2/introspect", b"--x\r\nContent-Disposition: form-data\r\n\r\n",
                              content_type="multipart/form-data; boundary=x", **auth)
    assert response.status_code < 500


def test_too_many_fields(client, auth, subject_token):
    pairs = list(exchange_body(subject_token).items()) + [(f"f{i}", "x") for i in range(1001)]
    response = post_form(client, "/oauth2/token", pairs, **auth)
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods(method, client, auth):
    response = getattr(client, method)("/oauth2/token", **auth)
    assert_oauth_error(response, HTTPStatus.METHOD_NOT_ALLOWED, "invalid_request")
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("repeated", ["scope", "requested_token_type", "client_secret", "actor_token", "subject_token_type"])
def test_more_repeated_parameters(repeated, client, auth, subject_token):
    pairs = list(exchange_body(subject_token).items()) + [(repeated, "a"), (repeated, "b")]
    assert_oauth_error(post_form(client, "/oauth2/token", pairs, **auth), HTTPStatus.BAD_REQUEST, "invalid_request")
    assert not AccessToken.objects.exists()


def test_every_repeated_audience_is_checked(client, subject_token, make_application):
    app = make_application(name="Aud", allowed_audiences=["https://api.example"])
    pairs = list(exchange_body(subject_token).items()) + [("audience", "https://api.example"), ("audience", "https://evil.example")]
    response = post_form(client, "/oauth2/token", pairs, HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_target")
    assert ExchangeEvent.objects.get().cause == "invalid_target"


@pytest.mark.parametrize("value", ["\x00", "https://api.example\x00", "x" * 5000])
def test_hostile_audience_values(value, client, auth, subject_token):
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, audience=value), **auth)
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_target")


def test_empty_optional_parameters_are_absent(client, auth, subject_token):
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, audience="", scope="", resource=""), **auth)
    assert response.status_code == HTTPStatus.OK, response.content


@pytest.mark.parametrize("subject_token_type", ["urn:ietf:params:oauth:token-type:saml2", "JWT",
                                                "urn:ietf:params:oauth:token-type:jwt ", "\x00"])
def test_unsupported_subject_token_type_recorded(subject_token_type, client, auth, subject_token):
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, subject_token_type=subject_token_type), **auth)
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert ExchangeEvent.objects.get().cause == "invalid_request"
    assert not AccessToken.objects.exists()


def test_nul_and_surrogate_bytes_in_every_parameter(client, auth, subject_token):
    for name in ("grant_type", "subject_token", "subject_token_type", "requested_token_type", "scope", "resource"):
        for raw in ("%00", "%ED%A0%80", "%FF"):
            body = urlencode({k: v for k, v in exchange_body(subject_token).items() if k != name}) + f"&{name}={raw}"
            response = client.post("/oauth2/token", body, content_type="application/x-www-form-urlencoded", **auth)
            assert response.status_code in (400, 401), (name, raw, response.content)
            assert response["Cache-Control"] == "no-store" and response.json()["error"]
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("path, data, status", [
    ("/oauth2/token", {"grant_type": "client_credentials"}, 400),
    ("/oauth2/introspect", {"token": "abc"}, 200),
    ("/oauth2/revoke", {"token": "abc"}, 200),
])
def test_client_authenticated_endpoints_stay_csrf_exempt(path, data, status, application):
    """Machine clients send no CSRF token; the throttling mixin must not re-enable Django's CSRF check."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True, HTTP_HOST="localhost")
    response = post_form(client, path, data, HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))
    assert response.status_code == status, response.content
