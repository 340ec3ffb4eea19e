"""Hostile inputs found missing or only partly covered by an audit against attack-cases.md, and a few the
catalogue does not list. Every rejection asserts the exact status and error code, that no token was issued
and the recorded cause (``assert_subject_rejected``)."""

import json
from http import HTTPStatus
from unittest import mock

import pytest

from .utils import assert_subject_rejected, claims_for
from .test_hostile_subject_tokens import signed


# -- Strings no store can hold: lone surrogates (JSON "\ud800" escapes) and NUL -------------------------
# Found by this audit: a validly signed token with such an iss or jti, or such a header value, was a 500 at
# the token endpoint (the database lookup of iss, the hash of jti) and on the console's "Test a token" page.

UNSTORABLE = {
    "iss lone surrogate": ({}, {"iss": "\ud800"}, "invalid_claim"),
    "iss surrogate after the real issuer": ({}, {"iss": "https://pem.issuer.test\udfff"}, "invalid_claim"),
    "iss with NUL": ({}, {"iss": "https://pem.issuer.test\x00"}, "invalid_claim"),
    "jti lone surrogate": ({}, {"jti": "\ud800"}, "invalid_claim"),
    "jti with NUL": ({}, {"jti": "a\x00b"}, "invalid_claim"),
    "kid lone surrogate": ({"kid": "\ud800"}, {}, "malformed"),
    "typ lone surrogate": ({"typ": "\udc00jwt"}, {}, "malformed"),
    "cty lone surrogate": ({"cty": "\ud800"}, {}, "malformed"),
    "alg lone surrogate": ({"alg": "RS256\ud800"}, {}, "malformed"),
    "unknown header parameter lone surrogate": ({"x-note": "\ud800"}, {}, "malformed"),
}


def _unstorable_token(case, pem_issuer, rsa_key):
    header, overrides, _ = UNSTORABLE[case]
    claims = claims_for(pem_issuer.issuer, **overrides)
    return signed(rsa_key, {"alg": "RS256", **header}, json.dumps(claims), alg="RS256")


@pytest.mark.parametrize("case", sorted(UNSTORABLE))
def test_unstorable_strings_are_rejected_not_500(case, exchange, pem_issuer, rsa_key):
    assert_subject_rejected(exchange(_unstorable_token(case, pem_issuer, rsa_key)), UNSTORABLE[case][2])


@pytest.mark.parametrize("case", sorted(UNSTORABLE))
def test_unstorable_strings_on_the_test_a_token_page(case, client, pem_issuer, rsa_key, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "pw"))
    response = client.post(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=test",
                           {"token": _unstorable_token(case, pem_issuer, rsa_key)})
    assert response.status_code == HTTPStatus.OK
    assert response.context["report"].cause == UNSTORABLE[case][2]


def test_iss_with_nul_never_reaches_the_database(exchange, pem_issuer, rsa_key):
    """PostgreSQL refuses NUL in a text parameter (Django raises ValueError): the lookup must not happen."""
    token = signed(rsa_key, {"alg": "RS256"}, json.dumps(claims_for("https://evil.test\x00")))
    with mock.patch("exchange.registry._load_issuer", side_effect=ValueError("NUL")) as lookup:
        assert_subject_rejected(exchange(token), "invalid_claim")
    lookup.assert_not_called()


def test_paired_surrogates_are_ordinary_text(exchange, pem_issuer, rsa_key):
    """A valid escaped pair ("\\ud83d\\ude00") is one code point, not a lone surrogate: accepted."""
    claims = json.dumps(claims_for(pem_issuer.issuer, sub="smile")).replace('"smile"', '"smile\\ud83d\\ude00"')
    response = exchange(signed(rsa_key, {"alg": "RS256", "kid": "\U0001F600"}, claims, alg="RS256"))
    assert response.status_code == HTTPStatus.OK, response.content


# -- T79 (c): a security event or logout token is not a subject token ------------------------------------
# Found by this audit: without a typ, a validly signed token carrying an RFC 8417 "events" claim (a SET, or
# an OpenID Connect back-channel logout token whose aud is our alias) was exchanged for an access token.

LOGOUT_EVENT = {"http://schemas.openid.net/event/backchannel-logout": {}}


@pytest.mark.parametrize("events, header", [
    (LOGOUT_EVENT, {}),
    (LOGOUT_EVENT, {"typ": "JWT"}),
    ({"https://schemas.openid.net/secevent/risc/event-type/account-disabled": {"subject": {}}}, {}),
    ({}, {}),
    (None, {}),
])
def test_security_event_and_logout_tokens_are_refused(events, header, exchange, pem_issuer, rsa_key):
    claims = claims_for(pem_issuer.issuer, events=events, aud="console-at-pem")
    token = signed(rsa_key, {"alg": "RS256", **header}, json.dumps(claims), alg="RS256")
    assert_subject_rejected(exchange(token), "wrong_type")
