"""``POST /token-validations`` with hostile subject tokens (issue 13, findings 5 and 6): a number beyond
the float range (``1e400``) answered 500 (the JSON renderer refuses infinity); lone surrogates anywhere
make the token ``malformed``, as at the token endpoint."""

from http import HTTPStatus

import pytest

from ..factories import mint
from ..security.test_lone_surrogates import LONE_SURROGATE_TOKENS
from ..token_endpoint.test_no_500s import overflowing_token


@pytest.mark.parametrize("claim, literal, valid, cause, shown", [
    ("exp", "1e400", False, "invalid_claim", "Infinity"),
    ("iat", "1e400", False, "invalid_claim", "Infinity"),
    ("nbf", "-1e400", False, "invalid_claim", "-Infinity"),
    ("note", "1e400", True, None, "Infinity"),
    ("note", '[1, {"deep": -1e999}]', True, None, [1, {"deep": "-Infinity"}]),
])
def test_an_overflowing_number_is_a_200_not_a_500(api, pem_issuer, rsa_key, claim, literal, valid, cause, shown):
    response = api.post("token-validations", {"subject_token": overflowing_token(pem_issuer, rsa_key, claim, literal)})
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert (body["valid"], body["cause"]) == (valid, cause)
    assert body["claims"][claim] == shown


def test_an_overflowing_header_member(api, pem_issuer, rsa_key):
    token = overflowing_token(pem_issuer, rsa_key, "note", "1", header_extra=', "x-big": 1e400')
    response = api.post("token-validations", {"subject_token": token})
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["header"]["x-big"] == "Infinity"


def test_the_strings_infinity_and_nan_are_rendered_as_themselves(api, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer, note="Infinity", nan="NaN")
    body = api.post("token-validations", {"subject_token": token}).json()
    assert (body["claims"]["note"], body["claims"]["nan"]) == ("Infinity", "NaN")


@pytest.mark.parametrize("make, position", LONE_SURROGATE_TOKENS)
def test_a_lone_surrogate_is_malformed(make, position, api, pem_issuer, rsa_key):
    response = api.post("token-validations", {"subject_token": make(position, pem_issuer, rsa_key)})
    assert response.status_code == HTTPStatus.OK, response.content
    assert (response.json()["valid"], response.json()["cause"]) == (False, "malformed")
