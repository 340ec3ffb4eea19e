"""Data-plane findings of the security review (issue 13): the 500s (finding 5) and lone UTF-16
surrogates anywhere in a subject token (finding 6). Each test is the attack.
"""

import json
from http import HTTPStatus

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from jwt.algorithms import get_default_algorithms

from exchange.models import AccessToken, RefreshToken
from exchange.subject_token import SubjectTokenRejected, validate_subject_token

from .api_utils import api, management_token, manager_app  # noqa: F401 (fixtures)
from .utils import assert_subject_rejected, b64url, basic_auth, claims_for, mint, post_form, verify_issued


def signed(key, header, payload_text):
    """An RS256 compact JWS over exactly this header (a dict or JSON text) and payload JSON text."""
    header_text = header if isinstance(header, str) else json.dumps(header)
    signing_input = f"{b64url(header_text)}.{b64url(payload_text)}"
    signature = get_default_algorithms()["RS256"].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


# -- finding 5: refreshing an exchanged token whose scope holds openid ----------------------------


@pytest.mark.parametrize("scope", ["openid", "openid profile"])
def test_refreshing_an_exchanged_openid_token_is_a_200_without_an_id_token(
        exchange, client, pem_issuer, rsa_key, make_application, scope):
    app = make_application(name="Refreshing", grant_types=["token_exchange", "refresh_token"], scopes="openid profile")
    issued = exchange(mint(rsa_key, pem_issuer.issuer, sub="dave"), app=app, scope=scope)
    assert issued.status_code == HTTPStatus.OK, issued.content
    auth = basic_auth(app.client_id, app.raw_secret)
    refresh_token = issued.json()["refresh_token"]
    for _ in range(2):  # "every time": and the new refresh token works again
        refreshed = post_form(client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": refresh_token},
                              HTTP_AUTHORIZATION=auth)
        assert refreshed.status_code == HTTPStatus.OK, refreshed.content
        body = refreshed.json()
        assert "id_token" not in body
        assert body["scope"] == scope
        _, claims = verify_issued(client, body["access_token"])
        assert (claims["sub"], claims["scope"]) == ("dave", scope)
        refresh_token = body["refresh_token"]
    assert RefreshToken.objects.filter(subject="dave", revoked__isnull=True).count() == 1


# -- finding 5: 1e400 at the token-validations API -------------------------------------------------


def _overflowing(pem_issuer, rsa_key, claim, literal, header_extra=""):
    payload = json.dumps(claims_for(pem_issuer.issuer, **{claim: 7}))
    payload = payload.replace(f'"{claim}": 7', f'"{claim}": {literal}')
    return signed(rsa_key, '{"alg": "RS256"' + header_extra + "}", payload)


@pytest.mark.parametrize("claim, literal, valid, cause, shown", [
    ("exp", "1e400", False, "invalid_claim", "Infinity"),
    ("iat", "1e400", False, "invalid_claim", "Infinity"),
    ("nbf", "-1e400", False, "invalid_claim", "-Infinity"),
    ("note", "1e400", True, None, "Infinity"),
    ("note", "[1, {\"deep\": -1e999}]", True, None, [1, {"deep": "-Infinity"}]),
])
def test_token_validation_with_an_overflowing_number_is_not_a_500(api, pem_issuer, rsa_key, claim, literal, valid,
                                                                   cause, shown):
    response = api.post("token-validations", {"subject_token": _overflowing(pem_issuer, rsa_key, claim, literal)})
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert (body["valid"], body["cause"]) == (valid, cause)
    assert body["claims"][claim] == shown


def test_token_validation_with_an_overflowing_header_member(api, pem_issuer, rsa_key):
    token = _overflowing(pem_issuer, rsa_key, "note", "1", header_extra=', "x-big": 1e400')
    response = api.post("token-validations", {"subject_token": token})
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["header"]["x-big"] == "Infinity"


def test_the_token_endpoint_answers_the_same_token_with_invalid_claim(exchange, pem_issuer, rsa_key):
    assert_subject_rejected(exchange(_overflowing(pem_issuer, rsa_key, "exp", "1e400")), "invalid_claim")


def test_the_string_infinity_is_rendered_as_itself(api, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer, note="Infinity", nan="NaN")
    body = api.post("token-validations", {"subject_token": token}).json()
    assert (body["claims"]["note"], body["claims"]["nan"]) == ("Infinity", "NaN")


# -- finding 6: a lone surrogate anywhere makes the token malformed -----------------------------------
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
    return signed(rsa_key, {"alg": "RS256"}, json.dumps(PAYLOAD_POSITIONS[position](claims_for(pem_issuer.issuer))))


def _header_token(position, pem_issuer, rsa_key):
    return signed(rsa_key, HEADER_POSITIONS[position], json.dumps(claims_for(pem_issuer.issuer)))


def _tokens():
    return ([pytest.param(_payload_token, p, id=p) for p in PAYLOAD_POSITIONS]
            + [pytest.param(_header_token, p, id=p) for p in HEADER_POSITIONS])


@pytest.mark.parametrize("make, position", _tokens())
def test_a_lone_surrogate_makes_the_token_malformed(make, position, pem_issuer, rsa_key):
    with pytest.raises(SubjectTokenRejected) as rejected:
        validate_subject_token(make(position, pem_issuer, rsa_key))
    assert rejected.value.cause == "malformed"
    assert [s.name for s in rejected.value.report.steps if s.ok is False] == ["format"]


@pytest.mark.parametrize("make, position", _tokens())
def test_a_lone_surrogate_at_the_token_endpoint(make, position, exchange, pem_issuer, rsa_key):
    assert_subject_rejected(exchange(make(position, pem_issuer, rsa_key)), "malformed")
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("make, position", _tokens())
def test_a_lone_surrogate_at_the_token_validations_api(make, position, api, pem_issuer, rsa_key):
    response = api.post("token-validations", {"subject_token": make(position, pem_issuer, rsa_key)})
    assert response.status_code == HTTPStatus.OK, response.content
    assert (response.json()["valid"], response.json()["cause"]) == (False, "malformed")


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
    report = validate_subject_token(signed(rsa_key, {"alg": "RS256"}, payload), replay="check")
    assert report.ok
