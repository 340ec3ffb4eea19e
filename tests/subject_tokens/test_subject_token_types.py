"""subject_token_type against what the token says it is (issue 14, defect 7; RFC 8693 §3, RFC 9068 §2.1).

An ID token is exchanged as ``…:token-type:id_token`` (validated like every subject token: a JWT
from a trusted issuer whose ``aud`` names this console or the issuer's alias — typically the
client_id the console has at that provider). An ID token sent as an access token is refused with
its own cause; an ``at+jwt`` access token sent as an ID token too. The check is the type step of
subject_token.py, so the endpoint, explain_token and the console's Test a token share it.
"""

import io
from http import HTTPStatus

import pytest
from django.core.management import CommandError, call_command

from exchange import flows
from exchange.models import AccessToken
from exchange.protocol import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TYPE
from exchange.subject_token import CAUSES, explain_subject_token, says_id_token

from ..factories import DROP, mint
from ..utils import assert_subject_rejected

ALIAS = "console-at-pem"  # pem_issuer's alias: the console's client_id at that provider


def _id_token(key, issuer, **claims):
    """An OpenID Connect ID token as providers issue them: aud the client, nonce, auth_time, azp, no jti."""
    defaults = {"aud": ALIAS, "azp": ALIAS, "nonce": "n-0S6", "auth_time": 1700000000, "jti": DROP}
    return mint(key, issuer, **{**defaults, **claims})


def test_id_tokens_are_accepted_as_id_tokens(exchange, pem_issuer, rsa_key):
    response = exchange(_id_token(rsa_key, pem_issuer.issuer, sub="alice"), subject_token_type=ID_TOKEN_TYPE)
    assert response.status_code == HTTPStatus.OK, response.content
    assert AccessToken.objects.get().subject == "alice"


def test_an_id_token_for_someone_else_is_refused(exchange, pem_issuer, rsa_key):
    """Validated as an ID token: its aud must name this console or the issuer's alias."""
    token = _id_token(rsa_key, pem_issuer.issuer, aud="another-client", azp="another-client")
    assert_subject_rejected(exchange(token, subject_token_type=ID_TOKEN_TYPE), "audience_mismatch")


@pytest.mark.parametrize("claims", [
    {},  # nonce and azp within aud
    {"azp": DROP, "auth_time": DROP},  # nonce alone
    {"nonce": DROP, "at_hash": "x1"},
    {"nonce": DROP, "c_hash": "x1"},
    {"nonce": DROP, "s_hash": "x1"},
    {"nonce": DROP},  # azp that aud contains
    {"nonce": DROP, "aud": [ALIAS, "https://other.example"], "azp": ALIAS},
])
def test_an_id_token_sent_as_an_access_token_is_refused(exchange, pem_issuer, rsa_key, claims):
    response = exchange(_id_token(rsa_key, pem_issuer.issuer, **claims), subject_token_type=ACCESS_TOKEN_TYPE)
    body = assert_subject_rejected(response, "id_token_as_access_token")
    assert body["error_description"] == CAUSES["id_token_as_access_token"]


@pytest.mark.parametrize("header, claims", [
    ({"typ": "at+jwt"}, {"client_id": "c", "auth_time": 1700000000, "acr": "1", "amr": ["pwd"]}),  # RFC 9068 §2.2.1
    ({"typ": "at+jwt"}, {"nonce": "n"}),  # typ decides: RFC 9068 says what it is
    ({"typ": "JWT"}, {"azp": "frontend", "aud": ["account", "console-at-pem"]}),  # Keycloak: azp is the client, not aud
    ({}, {"client_id": "c"}),
])
def test_access_tokens_are_accepted_as_access_tokens(exchange, pem_issuer, rsa_key, header, claims):
    token = mint(rsa_key, pem_issuer.issuer, headers=header, **claims)
    response = exchange(token, subject_token_type=ACCESS_TOKEN_TYPE)
    assert response.status_code == HTTPStatus.OK, response.content


def test_an_at_jwt_access_token_sent_as_an_id_token_is_refused(exchange, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer, headers={"typ": "application/at+JWT"}, client_id="c")
    assert_subject_rejected(exchange(token, subject_token_type=ID_TOKEN_TYPE), "type_mismatch")


@pytest.mark.parametrize("kind", ["id_token", "access_token"])
def test_the_generic_jwt_type_takes_either_kind(exchange, pem_issuer, rsa_key, kind):
    token = (_id_token(rsa_key, pem_issuer.issuer) if kind == "id_token"
             else mint(rsa_key, pem_issuer.issuer, headers={"typ": "at+jwt"}))
    response = exchange(token, subject_token_type=JWT_TYPE)
    assert response.status_code == HTTPStatus.OK, response.content


def test_jti_per_issuer(exchange, pem_issuer, rsa_key):
    """ID tokens often lack jti: accepted unless the issuer requires one (then refused, missing_claim)."""
    response = exchange(_id_token(rsa_key, pem_issuer.issuer), subject_token_type=ID_TOKEN_TYPE)
    assert response.status_code == HTTPStatus.OK
    flows.update_trusted_token_issuer(pem_issuer, require_jti=True)
    assert_subject_rejected(exchange(_id_token(rsa_key, pem_issuer.issuer), subject_token_type=ID_TOKEN_TYPE),
                            "missing_claim", issued_before=1)


def test_the_issuers_required_type_still_applies_to_id_tokens(exchange, pem_issuer, rsa_key):
    flows.update_trusted_token_issuer(pem_issuer, required_type="at+jwt")
    assert_subject_rejected(exchange(_id_token(rsa_key, pem_issuer.issuer), subject_token_type=ID_TOKEN_TYPE),
                            "wrong_type")


def test_one_implementation_explain_and_console_share_it(pem_issuer, rsa_key):
    token = _id_token(rsa_key, pem_issuer.issuer)
    assert explain_subject_token(token).ok  # nothing declared: nothing to compare
    assert explain_subject_token(token, token_type=ID_TOKEN_TYPE).ok
    report = explain_subject_token(token, token_type=ACCESS_TOKEN_TYPE)
    assert report.cause == "id_token_as_access_token"
    assert [step.name for step in report.steps if step.ok is False] == ["type"]
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("explain_token", "--token", token, "--token-type", "access_token", stdout=out)
    assert "FAIL  Token type (typ)" in out.getvalue()
    call_command("explain_token", "--token", token, "--token-type", "id_token", stdout=io.StringIO())


def test_the_console_test_page_takes_the_declared_type(admin_client, pem_issuer, rsa_key):
    url = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=test"
    token = _id_token(rsa_key, pem_issuer.issuer)
    page = admin_client.post(url, {"token": token, "token_type": ACCESS_TOKEN_TYPE}).content.decode()
    assert "id_token_as_access_token" in page
    page = admin_client.post(url, {"token": token, "token_type": ID_TOKEN_TYPE}).content.decode()
    assert "Valid: this token would be accepted" in page


@pytest.mark.parametrize("header, claims, expected", [
    ({}, {"nonce": "n"}, True),
    ({"typ": "at+jwt"}, {"nonce": "n"}, False),
    ({}, {"azp": "a", "aud": "a"}, True),
    ({}, {"azp": "a", "aud": ["b"]}, False),
    ({}, {"azp": ["a"], "aud": [["a"]]}, False),  # hostile shapes never match
    ({}, {"azp": "a", "aud": {"a": 1}}, False),
    ({"typ": 7}, {"nonce": "n"}, True),
    ({}, {"auth_time": 1, "acr": "x", "amr": []}, False),
])
def test_says_id_token(header, claims, expected):
    assert says_id_token(header, claims) is expected
