"""Lone UTF-16 surrogates anywhere in a subject token (issue 13, finding 6): they were refused only in
``sub``, ``jti``, ``iss`` and top-level header strings; in an ``aud`` element, a custom claim, a claim
name, a nested value or a header member name the token was accepted. Now any of them makes the token
``malformed``, at JSON parse time (the token-validations API: tests/api/test_hostile_validations.py).
"""

import json
from http import HTTPStatus

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from exchange.models import AccessToken
from exchange.subject_token import SubjectTokenRejected, validate_subject_token

from ..factories import claims_for, signed
from ..utils import assert_subject_rejected


# -- a lone surrogate anywhere makes the token malformed ----------------------------------------------
# json.dumps escapes a lone surrogate as "\ud800" (ASCII output): exactly what an attacker sends.

LONE = "\ud800"

PAYLOAD_POSITIONS = {
    "aud element": lambda c: {**c, "aud": [settings.CONSOLE_ISSUER, LONE]},
    "aud string": lambda c: {**c, "aud": settings.CONSOLE_ISSUER + LONE},
    "custom claim value": lambda c: {**c, "note": f"hello {LONE}"},
    "custom claim name": lambda c: {**c, f"x{LONE}": "hello"},
    "claim name alone": lambda c: {**c, "\udc00": 1},
    "nested object value": lambda c: {**c, "ctx": {"a": {"b": LONE}}},
    "nested object name": lambda c: {**c, "ctx": {"a": {LONE: 1}}},
    "array in array": lambda c: {**c, "groups": [["ok", ["deeper", "\udfff"]]]},
    "object in array": lambda c: {**c, "groups": [{"name": "x\udbff"}]},
    "sub": lambda c: {**c, "sub": LONE},
    "iss": lambda c: {**c, "iss": c["iss"] + "\udfff"},
    "jti": lambda c: {**c, "jti": LONE},
    "low surrogate first": lambda c: {**c, "note": "\udc00\ud800"},
    "high surrogate then text": lambda c: {**c, "note": "\ud83dx"},
    "high surrogate at the end": lambda c: {**c, "note": "smile\ud83d"},
}

HEADER_POSITIONS = {
    "header member value": {"alg": "RS256", "x-note": LONE},
    "header member name": {"alg": "RS256", LONE: "x"},
    "header nested value": {"alg": "RS256", "x-ext": {"a": [1, LONE]}},
    "header nested name": {"alg": "RS256", "x-ext": {LONE: 1}},
    "kid": {"alg": "RS256", "kid": LONE},
    "typ": {"alg": "RS256", "typ": "JWT" + LONE},
}


def _payload_token(position, pem_issuer, rsa_key):
    claims = PAYLOAD_POSITIONS[position](claims_for(pem_issuer.issuer))
    return signed(rsa_key, {"alg": "RS256"}, json.dumps(claims), alg="RS256")


def _header_token(position, pem_issuer, rsa_key):
    return signed(rsa_key, HEADER_POSITIONS[position], json.dumps(claims_for(pem_issuer.issuer)), alg="RS256")


#: (token maker, position) pairs, one per position: ``make(position, issuer, key)`` signs the token.
LONE_SURROGATE_TOKENS = (
    [pytest.param(_payload_token, p, id=p) for p in PAYLOAD_POSITIONS]
    + [pytest.param(_header_token, p, id=p) for p in HEADER_POSITIONS]
)


@pytest.mark.parametrize("make, position", LONE_SURROGATE_TOKENS)
def test_a_lone_surrogate_makes_the_token_malformed(make, position, pem_issuer, rsa_key):
    with pytest.raises(SubjectTokenRejected) as rejected:
        validate_subject_token(make(position, pem_issuer, rsa_key))
    assert rejected.value.cause == "malformed"
    assert [s.name for s in rejected.value.report.steps if s.ok is False] == ["format"]


@pytest.mark.parametrize("make, position", LONE_SURROGATE_TOKENS)
def test_a_lone_surrogate_at_the_token_endpoint(make, position, exchange, pem_issuer, rsa_key):
    assert_subject_rejected(exchange(make(position, pem_issuer, rsa_key)), "malformed")
    assert not AccessToken.objects.exists()


def test_a_lone_surrogate_on_the_test_a_token_page(client, pem_issuer, rsa_key):
    client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.com", "pw"))
    for position in PAYLOAD_POSITIONS:
        response = client.post(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=test",
                                {"token": _payload_token(position, pem_issuer, rsa_key)})
        assert response.status_code == HTTPStatus.OK
        assert response.context["report"].cause == "malformed", position


@pytest.mark.parametrize("claims_text", [
    pytest.param('"note": "smile \\ud83d\\ude00"', id="escaped pair"),
    pytest.param('"grou\\ud83d\\ude00ps": [["\\ud83d\\ude00"]]', id="escaped pair in a name and nested"),
    pytest.param('"note": "\\\\ud800"', id="an escaped backslash, not an escape"),
    pytest.param('"note": "\\u00e9t\\u00e9"', id="other escapes"),
])
def test_paired_surrogates_and_other_escapes_are_text(claims_text, pem_issuer, rsa_key):
    payload = json.dumps(claims_for(pem_issuer.issuer))[:-1] + ", " + claims_text + "}"
    report = validate_subject_token(signed(rsa_key, {"alg": "RS256"}, payload, alg="RS256"), replay="check")
    assert report.ok
