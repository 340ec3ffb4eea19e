"""Claim mapping: the claims of a trusted issuer's tokens carried into the tokens issued for them.

Configured per issuer (TrustedTokenIssuer.claim_mappings, claim_mapping.py); refused at configuration
when it targets a claim this server sets, or is malformed or too large; applied by the subject-token
validation's ``claims`` step, so the token endpoint, introspection and refresh say the same thing.
"""

import json
import time
from http import HTTPStatus

import pytest
from django.core.exceptions import ValidationError

from exchange import claim_mapping, flows
from exchange.models import AccessToken, RefreshToken, TrustedTokenIssuer
from exchange.registry import registry

from ..factories import mint, signed
from ..utils import assert_subject_rejected, basic_auth, exchanged, introspected, post_form, verify_issued

EMAIL = {"source": "email", "target": "email", "type": "string", "required": True}
GROUPS = {"source": "groups", "target": "groups", "type": "string_list"}
ADMIN = {"source": "is_admin", "target": "https://example.com/admin", "type": "boolean"}
LEVEL = {"source": "level", "target": "level", "type": "number"}


def _map(issuer, *mappings):
    return flows.update_trusted_token_issuer(issuer, claim_mappings=list(mappings))


# -- configuration -------------------------------------------------------------------------------


def test_default_is_only_sub(exchange, pem_issuer, rsa_key, client):
    assert pem_issuer.claim_mappings == []
    response = exchange(mint(rsa_key, pem_issuer.issuer, email="a@example.com", groups=["x"]))
    assert response.status_code == HTTPStatus.OK, response.content
    claims = verify_issued(client, response.json()["access_token"])[1]
    assert "email" not in claims and "groups" not in claims


def test_a_valid_mapping_is_stored_normalized(pem_issuer):
    _map(pem_issuer, EMAIL, GROUPS)
    pem_issuer.refresh_from_db()
    assert pem_issuer.claim_mappings == [EMAIL, {**GROUPS, "required": False}]


@pytest.mark.parametrize("target", [
    "sub", "aud", "act", "iss", "exp", "nbf", "iat", "jti", "client_id", "scope", "may_act", "cnf", "sub_id",
    "auth_time", "nonce", "azp", "active", "token_type", "username", "acr", "amr",
    "SUB", "Aud", "ACT", "Client_ID",  # any case: some consumers compare names case-insensitively
])
def test_a_reserved_target_is_refused_at_configuration(pem_issuer, target):
    with pytest.raises(ValidationError) as caught:
        _map(pem_issuer, {"source": "x", "target": target, "type": "string"})
    assert "claim_mappings" in caught.value.message_dict
    assert "set by this server and cannot be mapped" in caught.value.message_dict["claim_mappings"][0]
    pem_issuer.refresh_from_db()
    assert pem_issuer.claim_mappings == []


@pytest.mark.parametrize(("mappings", "fragment"), [
    ("email", "as a list"),
    ({"source": "a"}, "as a list"),
    ([{"source": "a", "target": "b"}], "give source, target, type"),
    ([{"source": "a", "target": "b", "type": "string", "extra": 1}], "give source, target, type"),
    (["email"], "give source, target, type"),
    ([{"source": "a", "target": "b", "type": "object"}], "the type must be one of"),
    ([{"source": "a", "target": "b", "type": "string", "required": "yes"}], "required must be true or false"),
    ([{"source": "", "target": "b", "type": "string"}], "non-empty string"),
    ([{"source": 5, "target": "b", "type": "string"}], "non-empty string"),
    ([{"source": "a", "target": "", "type": "string"}], "non-empty string"),
    ([{"source": " a", "target": "b", "type": "string"}], "surrounding spaces or control"),
    ([{"source": "a\x00", "target": "b", "type": "string"}], "surrounding spaces or control"),
    ([{"source": "a\u202e", "target": "b", "type": "string"}], "surrounding spaces or control"),
    ([{"source": "a" * 101, "target": "b", "type": "string"}], "longer than 100"),
    ([{"source": "a", "target": "b" * 101, "type": "string"}], "longer than 100"),
    ([{"source": "a", "target": "e mail", "type": "string"}], "printable ASCII"),
    ([{"source": "a", "target": "émail", "type": "string"}], "printable ASCII"),
    ([{"source": "a", "target": "ѕub", "type": "string"}], "printable ASCII"),  # Cyrillic s: a look-alike of sub
    ([{"source": "a", "target": 'x"y', "type": "string"}], "printable ASCII"),
    ([{"source": "a", "target": "b", "type": "string"}, {"source": "c", "target": "B", "type": "string"}],
     "mapped twice"),
])
def test_a_malformed_mapping_is_refused(pem_issuer, mappings, fragment):
    with pytest.raises(ValidationError) as caught:
        flows.update_trusted_token_issuer(pem_issuer, claim_mappings=mappings)
    assert fragment in caught.value.message_dict["claim_mappings"][0]


def test_too_many_mappings_are_refused(pem_issuer):
    many = [{"source": f"c{i}", "target": f"t{i}", "type": "string"} for i in range(claim_mapping.MAX_MAPPINGS + 1)]
    with pytest.raises(ValidationError, match="At most 20 claim mappings"):
        flows.update_trusted_token_issuer(pem_issuer, claim_mappings=many)
    _map(pem_issuer, *many[:-1])  # the maximum itself is fine


def test_nested_and_unicode_source_names_are_taken_literally(exchange, client, pem_issuer, rsa_key):
    _map(pem_issuer, {"source": "realm_access.roles", "target": "roles", "type": "string_list"},
         {"source": "départément", "target": "department", "type": "string"})
    token = mint(rsa_key, pem_issuer.issuer, realm_access={"roles": ["admin"]}, **{"départément": "R&D"})
    response = exchange(token)
    assert response.status_code == HTTPStatus.OK, response.content
    claims = verify_issued(client, response.json()["access_token"])[1]
    assert claims["department"] == "R&D"
    assert "roles" not in claims  # "realm_access.roles" is a claim name, never a path into realm_access
    token = mint(rsa_key, pem_issuer.issuer, **{"realm_access.roles": ["admin"]})
    claims = verify_issued(client, exchange(token).json()["access_token"])[1]
    assert claims["roles"] == ["admin"]


# -- the exchange --------------------------------------------------------------------------------


def test_mapped_claims_are_carried_and_introspected(client, make_application, pem_issuer, rsa_key):
    app = make_application(name="Refreshing", grant_types=["token_exchange", "refresh_token"])
    _map(pem_issuer, EMAIL, GROUPS, ADMIN, LEVEL)
    body = exchanged(client, app, mint(rsa_key, pem_issuer.issuer, email="a@example.com", groups=["g1", "g2"],
                                       is_admin=False, level=3, secret_claim="not carried"))
    claims = verify_issued(client, body["access_token"])[1]
    expected = {"email": "a@example.com", "groups": ["g1", "g2"], "https://example.com/admin": False, "level": 3}
    assert {k: claims[k] for k in expected} == expected
    assert "secret_claim" not in claims and "is_admin" not in claims
    introspection = introspected(client, app, body["access_token"])
    assert {k: introspection[k] for k in expected} == expected
    assert AccessToken.objects.get().mapped_claims == expected
    assert RefreshToken.objects.get().mapped_claims == expected
    # A refresh keeps them: the refresh token carries what the exchanged token carried.
    response = post_form(client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == HTTPStatus.OK, response.content
    refreshed = response.json()
    refreshed_claims = verify_issued(client, refreshed["access_token"])[1]
    assert {k: refreshed_claims[k] for k in expected} == expected
    assert {k: introspected(client, app, refreshed["access_token"])[k] for k in expected} == expected
    assert RefreshToken.objects.get(revoked__isnull=True).mapped_claims == expected


def test_a_missing_required_claim_refuses(exchange, pem_issuer, rsa_key):
    _map(pem_issuer, EMAIL)
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer)), "mapped_claim_missing")


BAD_VALUES = [
    ("string", 5), ("string", ["a"]), ("string", None), ("string", True), ("string", {"a": 1}),
    ("string", "x" * (claim_mapping.MAX_STRING_LENGTH + 1)), ("string", "nul\x00byte"),
    ("string_list", "a"), ("string_list", [1]), ("string_list", ["a", None]), ("string_list", [["a"]]),
    ("string_list", ["a"] * (claim_mapping.MAX_LIST_ITEMS + 1)),
    ("string_list", ["x" * (claim_mapping.MAX_STRING_LENGTH + 1)]),
    ("boolean", "true"), ("boolean", 1), ("boolean", None),
    ("number", "5"), ("number", True), ("number", 2**53), ("number", -(2**60)), ("number", 1e300),
]


@pytest.mark.parametrize(("kind", "value"), BAD_VALUES)
def test_a_required_claim_of_the_wrong_type_or_size_refuses(exchange, pem_issuer, rsa_key, kind, value):
    _map(pem_issuer, {"source": "c", "target": "c", "type": kind, "required": True})
    body = assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer, c=value)), "mapped_claim_invalid")
    assert "c" not in body["error_description"].split()  # a fixed sentence: never the claim or its value


@pytest.mark.parametrize(("kind", "value"), BAD_VALUES)
def test_an_optional_claim_of_the_wrong_type_or_size_is_dropped(exchange, client, pem_issuer, rsa_key, kind, value):
    _map(pem_issuer, {"source": "c", "target": "c", "type": kind}, {"source": "email", "target": "email",
                                                                      "type": "string"})
    response = exchange(mint(rsa_key, pem_issuer.issuer, c=value, email="a@example.com"))
    assert response.status_code == HTTPStatus.OK, response.content
    claims = verify_issued(client, response.json()["access_token"])[1]
    assert "c" not in claims
    assert claims["email"] == "a@example.com"


def test_a_lone_surrogate_value_is_never_stored(exchange, pem_issuer, rsa_key):
    """A JSON \\ud800 escape: the subject token's format step refuses it before the mapping sees it."""
    _map(pem_issuer, {"source": "c", "target": "c", "type": "string"})
    now = int(time.time())
    payload = json.dumps({"iss": pem_issuer.issuer, "sub": "u", "aud": "console-at-pem", "iat": now, "exp": now + 60,
                          "c": "x"}).replace('"x"', '"\\ud800"')
    response = exchange(signed(rsa_key, {"alg": "RS256", "typ": "JWT"}, payload))
    assert_subject_rejected(response, "malformed")


def test_oversized_mapped_claims_in_total_refuse(exchange, pem_issuer, rsa_key):
    mappings = [{"source": f"c{i}", "target": f"t{i}", "type": "string"} for i in range(10)]
    _map(pem_issuer, *mappings)
    values = {f"c{i}": "x" * claim_mapping.MAX_STRING_LENGTH for i in range(10)}  # each fine, 10 KiB together
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer, **values)), "mapped_claims_too_large")


def test_a_refused_mapping_does_not_spend_the_jti(exchange, pem_issuer, rsa_key):
    _map(pem_issuer, EMAIL)
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer, jti="once")), "mapped_claim_missing")
    response = exchange(mint(rsa_key, pem_issuer.issuer, jti="once", email="a@example.com"))
    assert response.status_code == HTTPStatus.OK, response.content


def test_a_mapping_stored_behind_the_models_back_cannot_override_a_server_claim(exchange, client, pem_issuer, rsa_key):
    """Defence in depth: even a row written with raw SQL never lets a subject token set sub, aud or scope."""
    TrustedTokenIssuer.objects.filter(pk=pem_issuer.pk).update(claim_mappings=[
        {"source": "evil_sub", "target": "sub", "type": "string", "required": False},
        {"source": "evil_aud", "target": "AUD", "type": "string", "required": False},
    ])
    registry.clear()
    response = exchange(mint(rsa_key, pem_issuer.issuer, evil_sub="admin", evil_aud="https://bank.example"))
    assert response.status_code == HTTPStatus.OK, response.content
    claims = verify_issued(client, response.json()["access_token"])[1]
    assert claims["sub"] != "admin"
    assert "AUD" not in claims and claims["aud"] != "https://bank.example"
