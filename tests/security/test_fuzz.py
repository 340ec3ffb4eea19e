"""Property-based fuzzing of the token endpoint: no 5xx, no escaping exception, always RFC 6749 JSON + no-store.

Fixed seed (derandomize) and bounded example counts, so CI runs are repeatable and quick.
"""

import json
from http import HTTPStatus
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings, strategies as st

from ..factories import b64url, claims_for, private_key, signed
from ..utils import TOKEN_EXCHANGE, basic_auth

FUZZ = settings(derandomize=True, max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
STANDARD_HEADERS = ["alg", "kid", "typ", "cty", "crit", "jku", "jwk", "x5u", "x5c", "b64", "zip", "enc"]
STANDARD_CLAIMS = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]


@pytest.fixture(autouse=True)
def _no_throttling(settings):
    """Examples share one cache per test; keep brute-force throttling from masking later examples."""
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 10**6, "CLIENT_AUTH_MAX_FAILURES_PER_CLIENT": 10**6}


def check(response):
    assert response.status_code < 500, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    body = json.loads(response.content)
    if response.status_code != HTTPStatus.OK:
        assert isinstance(body.get("error"), str) and "access_token" not in body
        assert all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\\\' for ch in body.get("error_description", ""))


@pytest.fixture
def post(application, pem_issuer):
    client = Client(HTTP_HOST="localhost")

    def do(body, auth=True, raw=False):
        headers = {"HTTP_AUTHORIZATION": basic_auth(application.client_id, application.raw_secret)} if auth else {}
        data = body if raw else urlencode(body, doseq=True)
        return client.post("/oauth2/token", data, content_type="application/x-www-form-urlencoded", **headers)

    return do


def _exchange(token):
    return {"grant_type": TOKEN_EXCHANGE, "subject_token": token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}


@FUZZ
@given(header=st.dictionaries(st.sampled_from(STANDARD_HEADERS) | st.text(max_size=5), json_values, max_size=5),
       overrides=st.dictionaries(st.sampled_from(STANDARD_CLAIMS), json_values, max_size=4))
def test_signed_tokens_with_random_headers_and_claims(post, header, overrides):
    """Validly signed by issuer A, with every standard header and claim given random JSON types."""
    claims = claims_for("https://pem.issuer.test")
    claims.update(overrides)
    check(post(_exchange(signed(private_key("rsa", "issuer-a"), {"alg": "RS256", **header}, claims, alg="RS256"))))


@FUZZ
@given(segments=st.lists(st.binary(max_size=64), min_size=1, max_size=5))
def test_random_bytes_per_segment(post, segments):
    check(post(_exchange(".".join(b64url(s) for s in segments))))


@FUZZ
@given(token=st.text(max_size=200))
def test_random_text_tokens(post, token):
    check(post(_exchange(token or "x")))


FORM_KEYS = ["grant_type", "subject_token", "subject_token_type", "requested_token_type", "audience", "resource",
             "scope", "actor_token", "actor_token_type", "client_id", "client_secret", "refresh_token", "code"]


@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(FORM_KEYS) | st.text(max_size=8),
                                st.sampled_from([TOKEN_EXCHANGE, "refresh_token", "client_credentials", ""])
                                | st.text(max_size=30)), max_size=8),
       auth=st.booleans())
def test_random_form_bodies(post, pairs, auth):
    check(post(pairs, auth=auth))


@FUZZ
@given(body=st.binary(max_size=300))
def test_random_raw_bodies(post, body):
    check(post(body, raw=True))


@FUZZ
@given(header=st.text(max_size=80) | st.binary(max_size=60).map(lambda b: "Basic " + __import__("base64").b64encode(b).decode()))
def test_random_authorization_headers(application, pem_issuer, header):
    client = Client(HTTP_HOST="localhost")
    response = client.post("/oauth2/token", urlencode(_exchange("a.b.c")),
                           content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION=header)
    check(response)
