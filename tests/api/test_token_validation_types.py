"""POST /api/server/v1/token-validations with subject_token_type: the token endpoint's type check (issue 14)."""

from http import HTTPStatus

import pytest

from exchange.protocol import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TYPE

from ..factories import mint


@pytest.mark.parametrize("declared, valid, cause", [
    (None, True, None),
    (JWT_TYPE, True, None),
    (ID_TOKEN_TYPE, True, None),
    (ACCESS_TOKEN_TYPE, False, "id_token_as_access_token"),
])
def test_an_id_token_checked_against_the_declared_type(api, pem_issuer, rsa_key, declared, valid, cause):
    token = mint(rsa_key, pem_issuer.issuer, aud="console-at-pem", nonce="n-1")
    body = {"subject_token": token} | ({"subject_token_type": declared} if declared else {})
    response = api.post("token-validations", body)
    assert response.status_code == HTTPStatus.OK, response.content
    assert (response.json()["valid"], response.json()["cause"]) == (valid, cause)


def test_an_unknown_declared_type_is_a_bad_request(api, pem_issuer, rsa_key):
    response = api.post("token-validations", {"subject_token": mint(rsa_key, pem_issuer.issuer),
                                              "subject_token_type": "urn:ietf:params:oauth:token-type:saml2"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
