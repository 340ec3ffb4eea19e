"""No 500 at the token endpoint (issue 13, finding 5): refreshing an exchanged token whose scope holds
``openid`` answered 500 every time (DOT looked up the claims of a user the token does not have); the
overflowing number of a subject token is ``invalid_claim`` (the token-validations API answers the same
token in tests/api/test_hostile_validations.py)."""

import json
from http import HTTPStatus

import pytest

from exchange.models import RefreshToken

from ..factories import claims_for, mint, signed
from ..utils import assert_subject_rejected, basic_auth, post_form, verify_issued


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


def overflowing_token(issuer, key, claim, literal, header_extra=""):
    """A token whose ``claim`` is the JSON number ``literal`` as written (``1e400`` parses as infinity)."""
    payload = json.dumps(claims_for(issuer.issuer, **{claim: 7})).replace(f'"{claim}": 7', f'"{claim}": {literal}')
    return signed(key, '{"alg": "RS256"' + header_extra + "}", payload, alg="RS256")


def test_an_overflowing_exp_is_invalid_claim(exchange, pem_issuer, rsa_key):
    assert_subject_rejected(exchange(overflowing_token(pem_issuer, rsa_key, "exp", "1e400")), "invalid_claim")
