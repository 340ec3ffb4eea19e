"""No input to the sign-in endpoints yields a 5xx: odd, oversized and malformed parameters, anonymous or signed in."""

from http import HTTPStatus
import pytest

from ..utils import FORM, basic_auth, post_form
from .conftest import REDIRECT_URI, pkce_pair

_, CHALLENGE = pkce_pair()

ODD_PARAMETERS = [
    {"client_id": "\x00"},
    {"client_id": "x" * 5000},
    {"redirect_uri": REDIRECT_URI + "\x00"},
    {"redirect_uri": "https://app.example/callback" + "/a" * 3000},
    {"redirect_uri": "https://[::1"},
    {"redirect_uri": "http://%zz"},
    {"scope": "openid " * 2000},
    {"scope": "\u00e9\u0000"},
    {"state": "s" * 10000},
    {"nonce": "\u00e9" * 300},
    {"code_challenge": "short"},
    {"code_challenge": "x" * 5000},
    {"code_challenge_method": "S256\x00"},
    {"response_type": ""},
    {"response_type": "code code"},
    {"prompt": "create"},
    {"prompt": "login"},
    {"prompt": "none login"},
    {"prompt": "consent select_account"},
    {"max_age": "-1"},
    {"max_age": "abc"},
    {"claims": "{not json"},
    {"claims": '{"userinfo": 1}'},
    {"request": "eyJhbGciOiJub25lIn0.e30."},
    {"request_uri": "https://evil.test/req"},
    {"id_token_hint": "garbage"},
    {"id_token_hint": "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.x"},
    {"resource": "not a uri"},
    {"resource": "https://api.example/"},
    {"ui_locales": "en" * 500},
    {"approval_prompt": "auto"},
    {"response_mode": "form_post"},
    {"response_mode": "fragment"},
]


@pytest.mark.parametrize("extra", ODD_PARAMETERS)
@pytest.mark.parametrize("who", ["anonymous", "signed_in"])
def test_authorize_get_never_fails(request, client, signin_app, authorize_url, extra, who):
    c = request.getfixturevalue("signed_in") if who == "signed_in" else client
    url = authorize_url(signin_app, CHALLENGE, **extra)
    response = c.get(url)
    assert response.status_code < 500, (extra, response.status_code)
    if response.status_code == HTTPStatus.FOUND:
        location = response["Location"]
        assert location.startswith(REDIRECT_URI + "?") or location.startswith("/oauth2/signin?"), location


@pytest.mark.parametrize("raw_query", [
    "", "client_id", "%ff%fe=%00", "client_id=%ED%A0%80", "redirect_uri=%ED%A0%80&client_id=x",
    "a=" + "b" * 20000,
])
def test_authorize_raw_queries_never_fail(client, db, raw_query):
    assert client.get("/oauth2/authorize?" + raw_query).status_code < 500


@pytest.mark.parametrize("data", [
    {}, {"allow": "Authorize"}, {"client_id": "x", "redirect_uri": "y", "response_type": "code", "scope": "openid"},
    {"client_id": "\x00", "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "openid", "allow": "1"},
    {"redirect_uri": REDIRECT_URI, "response_type": "token", "scope": "openid", "allow": "1",
     "code_challenge": CHALLENGE, "code_challenge_method": "S256"},
    {"redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "openid", "allow": "1",
     "code_challenge": CHALLENGE, "code_challenge_method": "S256", "claims": "{bad"},
    {"redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "openid", "allow": "1",
     "code_challenge": CHALLENGE, "code_challenge_method": "S256", "resource": "not-a-uri"},
])
def test_authorize_post_never_fails(signed_in, signin_app, data):
    data = {"client_id": signin_app.client_id, **data} if "client_id" not in data else data
    assert signed_in.post("/oauth2/authorize", data).status_code < 500


@pytest.mark.parametrize("method", ["put", "delete", "patch", "options", "head"])
def test_other_methods(client, db, method):
    for path in ("/oauth2/authorize", "/oauth2/signin", "/oauth2/signout", "/oauth2/userinfo"):
        assert getattr(client, method)(path).status_code < 500


@pytest.mark.parametrize("data", [
    {"username": "x" * 10000, "password": "y"}, {},
    {"username": ["a", "b"], "password": "c"}, {"username": "carol", "password": "p" * 100000},
])
def test_sign_in_never_fails(client, local_user, data):
    assert client.post("/oauth2/signin", data).status_code < 500


@pytest.mark.parametrize("raw", ["username=%ED%A0%80&password=x", "username=%ff&password=%fe", "%00=%00"])
def test_sign_in_raw_bodies_never_fail(client, local_user, raw):
    assert client.post("/oauth2/signin", raw, content_type=FORM).status_code < 500


@pytest.mark.parametrize("body", [
    {"grant_type": "authorization_code"},
    {"grant_type": "authorization_code", "code": "x" * 5000, "redirect_uri": REDIRECT_URI, "code_verifier": "v"},
    {"grant_type": "authorization_code", "code": "\x00", "redirect_uri": REDIRECT_URI, "code_verifier": "v"},
    {"grant_type": "authorization_code", "code": "abc", "redirect_uri": "\x00", "code_verifier": "\x00"},
    {"grant_type": "authorization_code", "code": "abc", "code_verifier": "v" * 5000},
])
def test_token_endpoint_code_grant_never_fails(client, signin_app, spa_app, body):
    confidential = post_form(client, "/oauth2/token", body,
                             HTTP_AUTHORIZATION=basic_auth(signin_app.client_id, signin_app.raw_secret))
    public = post_form(client, "/oauth2/token", {**body, "client_id": spa_app.client_id})
    assert confidential.status_code == HTTPStatus.BAD_REQUEST, confidential.content
    assert public.status_code == HTTPStatus.BAD_REQUEST, public.content


def test_consent_page_escapes_what_the_client_sends(signed_in, signin_app, authorize_url):
    state = '"><script>alert(1)</script>'
    page = signed_in.get(authorize_url(signin_app, CHALLENGE, state=state))
    assert page.status_code == HTTPStatus.OK
    assert b"<script>alert(1)" not in page.content


def test_consent_and_sign_in_pages_are_neither_framed_nor_cached(client, signed_in, signin_app, authorize_url):
    for response in (signed_in.get(authorize_url(signin_app, CHALLENGE)), client.get("/oauth2/signin")):
        assert response.status_code == HTTPStatus.OK
        assert response["X-Frame-Options"] == "DENY"
        assert "no-store" in response["Cache-Control"]
