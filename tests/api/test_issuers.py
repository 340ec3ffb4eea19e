"""Management API: trusted token issuers, their keys, and subject-token validations."""

import base64
import datetime
from http import HTTPStatus

import pytest
from cryptography.hazmat.primitives import serialization

from exchange.conf import ASYMMETRIC_ALGORITHMS
from exchange.models import ExchangeEvent, TrustedTokenIssuer

from ..factories import certificate_der, certificate_pem, mint, private_key
from .helpers import API, assert_problem


def pem_body(key=None, **fields):
    key = key or private_key("rsa", "api-issuer")
    body = {"name": "Partner IdP", "issuer": "https://idp.partner.test", "certificates": [certificate_pem(key)]}
    body.update(fields)
    return body


# -- create ---------------------------------------------------------------------------------------


def test_create_from_pem_uses_the_console_defaults(api):
    response = api.post("trusted-token-issuers", pem_body(alias="console-at-partner"))
    assert response.status_code == HTTPStatus.CREATED, response.content
    body = response.json()
    assert response["Location"].endswith(f"{API}/trusted-token-issuers/{body['id']}")
    assert body["name"] == "Partner IdP"
    assert body["issuer"] == "https://idp.partner.test"
    assert body["alias"] == "console-at-partner"
    assert body["key_source"] == "pem"
    assert body["jwks_uri"] == ""
    assert body["enabled"] is True
    # The same defaults as the console's wizard and the create_trusted_token_issuer command.
    assert body["allowed_algorithms"] == list(ASYMMETRIC_ALGORITHMS)
    assert (body["clock_skew"], body["max_token_age"]) == (60, 3600)
    assert (body["reject_replayed_jti"], body["require_jti"]) == (True, False)
    [cert] = body["certificates"]
    assert cert["key_description"] == "RSA 2048"
    assert cert["subject"] == "CN=Test issuer"
    assert len(cert["fingerprint"]) == 95
    assert TrustedTokenIssuer.objects.get(pk=body["id"]).certificates.count() == 1


def test_create_from_base64_der(api):
    der = certificate_der(private_key("ec", "api-der"))
    response = api.post("trusted-token-issuers", pem_body(certificates=[base64.b64encode(der).decode()]))
    assert response.status_code == HTTPStatus.CREATED, response.content
    assert response.json()["certificates"][0]["key_description"] == "EC P-256"


def test_create_with_jwks_uri_and_options(api, jwks_server):
    response = api.post("trusted-token-issuers", {
        "name": "JWKS IdP", "issuer": "https://jwks.partner.test", "jwks_uri": jwks_server.url,
        "allowed_algorithms": ["ES256"], "clock_skew": 5, "max_token_age": 600,
        "reject_replayed_jti": False, "require_jti": True, "enabled": False,
    })
    assert response.status_code == HTTPStatus.CREATED, response.content
    body = response.json()
    assert (body["key_source"], body["jwks_uri"], body["certificates"]) == ("jwks", jwks_server.url, [])
    assert body["allowed_algorithms"] == ["ES256"]
    assert (body["clock_skew"], body["max_token_age"]) == (5, 600)
    assert (body["reject_replayed_jti"], body["require_jti"], body["enabled"]) == (False, True, False)
    assert jwks_server.requests == []  # nothing fetched until keys are needed


def _expired_pem():
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    return certificate_pem(private_key("rsa", "api-expired"), not_before=start, days=2)


def _private_pem():
    return private_key("rsa", "api-private").private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
    ).decode()


def _param(change, field, message, id):
    return pytest.param(change, field, message, id=id)


@pytest.mark.parametrize("change, field, message", [
    _param(lambda b: {"certificates": ["not a certificate"]}, "certificates",
           "neither a PEM certificate nor base64 DER", "garbage certificate"),
    _param(lambda b: {"certificates": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]},
           "certificates", "could not be parsed", "unparsable certificate"),
    _param(lambda b: {"certificates": [_private_pem()]}, "certificates", "private key", "private key"),
    _param(lambda b: {"certificates": [_expired_pem()]}, "certificates", "expired", "expired certificate"),
    _param(lambda b: {"certificates": [certificate_pem(private_key("rsa1024", "api-weak"))]}, "certificates",
           "at least 2048 bits", "weak key"),
    _param(lambda b: {"certificates": b["certificates"] * 2}, "certificates", "twice", "same certificate twice"),
    _param(lambda b: {"certificates": [True]}, "certificates.0", None, "certificate not a string"),
    _param(lambda b: {"certificates": "one"}, "certificates", None, "certificates not a list"),
    _param(lambda b: {"jwks_uri": "https://idp.partner.test/jwks"}, "jwks_uri", "either a JWKS endpoint or",
           "both key sources"),
    _param(lambda b: {"certificates": []}, "jwks_uri", "either a JWKS endpoint or", "no key source"),
    _param(lambda b: {"allowed_algorithms": ["HS256"]}, "allowed_algorithms", "HS256 is not an allowed algorithm",
           "HMAC algorithm"),
    _param(lambda b: {"allowed_algorithms": ["none"]}, "allowed_algorithms", "none is not an allowed algorithm",
           "alg none"),
    _param(lambda b: {"allowed_algorithms": ["RS256", "XY999"]}, "allowed_algorithms", "XY999",
           "unknown algorithm"),
    _param(lambda b: {"allowed_algorithms": []}, "allowed_algorithms", "blank", "no algorithm"),
    _param(lambda b: {"allowed_algorithms": "RS256"}, "allowed_algorithms", None, "algorithms not a list"),
    _param(lambda b: {"clock_skew": -1}, "clock_skew", None, "negative skew"),
    _param(lambda b: {"clock_skew": 2**70}, "clock_skew", None, "huge skew"),
    _param(lambda b: {"max_token_age": "soon"}, "max_token_age", None, "age not a number"),
    _param(lambda b: {"issuer": " https://idp.partner.test"}, "issuer", "whitespace", "issuer whitespace"),
    _param(lambda b: {"name": ""}, "name", None, "blank name"),
    _param(lambda b: {"issuer": ""}, "issuer", None, "blank issuer"),
    _param(lambda b: {"name": None}, "name", None, "null name"),
    _param(lambda b: {"name": "x" * 121}, "name", None, "long name"),
    _param(lambda b: {"name": "a\x00b"}, "name", None, "NUL in name"),
])
def test_create_refuses_invalid_input(api, change, field, message):
    body = pem_body()
    body.update(change(body))
    response = api.post("trusted-token-issuers", body)
    assert_problem(response, HTTPStatus.BAD_REQUEST, field, message)
    assert not TrustedTokenIssuer.objects.exists()


def test_create_requires_name_and_issuer(api):
    body = assert_problem(api.post("trusted-token-issuers", {}), HTTPStatus.BAD_REQUEST)
    assert {"name", "issuer"} <= set(body["errors"])


@pytest.mark.parametrize("field", ["name", "issuer"])
def test_create_refuses_a_duplicate(api, field):
    assert api.post("trusted-token-issuers", pem_body()).status_code == HTTPStatus.CREATED
    other = pem_body(name="Other", issuer="https://other.test")
    other[field] = pem_body()[field]
    body = assert_problem(api.post("trusted-token-issuers", other), HTTPStatus.BAD_REQUEST, field, "already exists")
    assert body["code"] == "unique"
    assert TrustedTokenIssuer.objects.count() == 1


def test_create_refuses_plain_http_jwks_beyond_loopback(api):
    body = {"name": "x", "issuer": "https://x.test", "jwks_uri": "http://idp.example.com/jwks"}
    assert_problem(api.post("trusted-token-issuers", body), HTTPStatus.BAD_REQUEST, "jwks_uri", "https")


@pytest.mark.parametrize("payload, content_type", [
    ("{not json", "application/json"),
    ('{"name": "\\ud800"}', "application/json"),
    ("[" * 100000 + "]" * 100000, "application/json"),
    ("name=x", "application/x-www-form-urlencoded"),
])
def test_malformed_bodies_are_problems_not_errors(api, payload, content_type):
    response = api.client.post(f"{API}/trusted-token-issuers", payload, content_type=content_type, **api.headers)
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    assert_problem(response, response.status_code)


# -- the created issuer works at once --------------------------------------------------------------


def test_issuer_created_through_the_api_works_at_the_token_endpoint(api, exchange):
    key = private_key("rsa", "api-live")
    response = api.post("trusted-token-issuers", pem_body(key, issuer="https://live.partner.test"))
    assert response.status_code == HTTPStatus.CREATED
    token = mint(key, "https://live.partner.test", sub="dana")
    result = exchange(token)
    assert result.status_code == HTTPStatus.OK, result.content
    assert ExchangeEvent.objects.get().outcome == "issued"


def test_jwks_issuer_created_through_the_api_works_at_the_token_endpoint(api, exchange, jwks_server):
    key = private_key("ec", "api-live-jwks")
    jwks_server.serve_keys((key, "live-1"))
    response = api.post("trusted-token-issuers", {
        "name": "Live JWKS", "issuer": "https://live-jwks.test", "jwks_uri": jwks_server.url,
        "allowed_algorithms": ["ES256"],
    })
    assert response.status_code == HTTPStatus.CREATED, response.content
    result = exchange(mint(key, "https://live-jwks.test", kid="live-1", sub="frank"))
    assert result.status_code == HTTPStatus.OK, result.content
    keys = api.get(f"trusted-token-issuers/{response.json()['id']}/keys").json()
    assert [k["kid"] for k in keys["keys"]] == ["live-1"]
    assert len(jwks_server.requests) == 1  # the exchange's fetch is what the keys endpoint shows


def test_disabling_through_the_api_stops_exchanges(api, exchange):
    key = private_key("rsa", "api-live")
    issuer_id = api.post("trusted-token-issuers", pem_body(key)).json()["id"]
    response = api.patch(f"trusted-token-issuers/{issuer_id}", {"enabled": False})
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["enabled"] is False
    result = exchange(mint(key, "https://idp.partner.test"))
    assert result.status_code == HTTPStatus.BAD_REQUEST
    assert result.json()["error_description"] == "The subject token's issuer is disabled."


# -- list, retrieve, update, delete ----------------------------------------------------------------


@pytest.fixture
def three_issuers(db):
    from exchange import flows

    pem = certificate_pem(private_key("rsa", "api-list"))
    return [
        flows.create_trusted_token_issuer(name=name, issuer=issuer, certificates=[pem], enabled=enabled)
        for name, issuer, enabled in [
            ("Alpha IdP", "https://alpha.test", True),
            ("Beta IdP", "https://beta.test", False),
            ("Gamma", "https://gamma.test", True),
        ]
    ]


def test_list_is_paginated(api, three_issuers):
    body = api.get("trusted-token-issuers?limit=2").json()
    assert body["count"] == 3
    assert [i["name"] for i in body["results"]] == ["Alpha IdP", "Beta IdP"]
    assert body["next"].endswith("limit=2&offset=2")
    body = api.get("trusted-token-issuers?limit=2&offset=2").json()
    assert [i["name"] for i in body["results"]] == ["Gamma"]


@pytest.mark.parametrize("query, names", [
    ("name=idp", ["Alpha IdP", "Beta IdP"]),
    ("name=GAMMA", ["Gamma"]),
    ("issuer=https://beta.test", ["Beta IdP"]),
    ("issuer=https://beta", []),
    ("enabled=true", ["Alpha IdP", "Gamma"]),
    ("enabled=false", ["Beta IdP"]),
    ("name=idp&enabled=true", ["Alpha IdP"]),
    ("name=", ["Alpha IdP", "Beta IdP", "Gamma"]),
    ("issuer=", []),
])
def test_list_filters(api, three_issuers, query, names):
    response = api.get(f"trusted-token-issuers?{query}")
    assert response.status_code == HTTPStatus.OK
    assert [i["name"] for i in response.json()["results"]] == names


@pytest.mark.parametrize("query, field", [
    ("enabled=perhaps", "enabled"), ("enabled=", "enabled"), ("enabled=1", "enabled"),
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=x", "limit"), ("limit=", "limit"),
    ("offset=-1", "offset"), ("offset=" + "9" * 30, "offset"), ("offset=null", "offset"),
    ("name=a%00b", "name"),
])
def test_list_refuses_a_bad_query(api, query, field):
    assert_problem(api.get(f"trusted-token-issuers?{query}"), HTTPStatus.BAD_REQUEST, field)


def test_retrieve(api, three_issuers):
    issuer = three_issuers[1]
    for path in (f"trusted-token-issuers/{issuer.pk}", f"trusted-token-issuers/{issuer.pk}/"):
        response = api.get(path)
        assert response.status_code == HTTPStatus.OK
        assert response.json()["issuer"] == "https://beta.test"


@pytest.mark.parametrize("ident", ["999999", "0", "abc", "1.5", "9" * 30, "9" * 5000, "%C2%B2", "%EF%BC%91"])
@pytest.mark.parametrize("method, suffix", [
    ("get", ""), ("patch", ""), ("delete", ""), ("get", "/keys"), ("post", "/keys/refresh"),
])
def test_unknown_issuer_is_404(api, db, ident, method, suffix):
    response = getattr(api, method)(f"trusted-token-issuers/{ident}{suffix}")
    assert_problem(response, HTTPStatus.NOT_FOUND)


def test_partial_update(api, three_issuers):
    issuer = three_issuers[0]
    response = api.patch(f"trusted-token-issuers/{issuer.pk}", {
        "alias": "us-at-alpha", "allowed_algorithms": ["RS256", "PS256"], "clock_skew": 0, "require_jti": True,
    })
    assert response.status_code == HTTPStatus.OK, response.content
    issuer.refresh_from_db()
    assert (issuer.alias, issuer.allowed_algorithms, issuer.clock_skew, issuer.require_jti) == (
        "us-at-alpha", ["RS256", "PS256"], 0, True)
    assert issuer.name == "Alpha IdP"  # untouched


@pytest.mark.parametrize("change, field, message", [
    ({"name": "Gamma"}, "name", "already exists"),
    ({"issuer": "https://gamma.test"}, "issuer", "already exists"),
    ({"allowed_algorithms": ["HS512"]}, "allowed_algorithms", "not an allowed algorithm"),
    ({"jwks_uri": "https://alpha.test/jwks"}, "jwks_uri", "PEM certificates"),
    ({"max_token_age": -5}, "max_token_age", None),
    ({"name": "Alpha IdP "}, "name", "whitespace"),
])
def test_partial_update_refuses_invalid_changes(api, three_issuers, change, field, message):
    issuer = three_issuers[0]
    response = api.patch(f"trusted-token-issuers/{issuer.pk}", change)
    assert_problem(response, HTTPStatus.BAD_REQUEST, field, message)
    issuer.refresh_from_db()
    assert (issuer.name, issuer.issuer, issuer.jwks_uri) == ("Alpha IdP", "https://alpha.test", "")


def test_jwks_issuer_keeps_a_jwks_uri(api, jwks_issuer):
    response = api.patch(f"trusted-token-issuers/{jwks_issuer.pk}", {"jwks_uri": ""})
    assert_problem(response, HTTPStatus.BAD_REQUEST, "jwks_uri")


def test_put_is_not_offered(api, three_issuers):
    response = api.put(f"trusted-token-issuers/{three_issuers[0].pk}", {"name": "x"})
    assert_problem(response, HTTPStatus.METHOD_NOT_ALLOWED)


def test_delete(api, three_issuers):
    issuer = three_issuers[0]
    assert api.delete(f"trusted-token-issuers/{issuer.pk}").status_code == HTTPStatus.NO_CONTENT
    assert not TrustedTokenIssuer.objects.filter(pk=issuer.pk).exists()
    assert_problem(api.get(f"trusted-token-issuers/{issuer.pk}"), HTTPStatus.NOT_FOUND)


# -- keys -----------------------------------------------------------------------------------------


def test_keys_of_a_pem_issuer(api, pem_issuer):
    body = api.get(f"trusted-token-issuers/{pem_issuer.pk}/keys").json()
    assert (body["key_source"], body["error"]) == ("pem", None)
    [key] = body["keys"]
    assert key["kid"] is None
    assert key["source"] == "pem"
    assert key["description"] == "RSA 2048"
    assert "RS256" in key["algorithms"] and "ES256" not in key["algorithms"]
    assert key["current"] is True
    assert key["not_after"] == pem_issuer.certificates.get().not_after.isoformat().replace("+00:00", "Z")


def test_keys_of_a_jwks_issuer(api, jwks_issuer, jwks_server):
    body = api.get(f"trusted-token-issuers/{jwks_issuer.pk}/keys").json()
    assert body["error"] is None
    assert [(k["kid"], k["algorithms"], k["source"], k["description"]) for k in body["keys"]] == [
        ("k1", ["ES256"], "jwks", "EC P-256")]
    assert body["keys_fetched_at"] is not None
    # Served from the cache the second time, as token validation would.
    api.get(f"trusted-token-issuers/{jwks_issuer.pk}/keys")
    assert len(jwks_server.requests) == 1


def test_keys_report_an_unreachable_jwks(api, jwks_issuer, jwks_server):
    jwks_server.status = HTTPStatus.SERVICE_UNAVAILABLE
    response = api.get(f"trusted-token-issuers/{jwks_issuer.pk}/keys")
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["keys"] == []
    assert body["error"] == "The JWKS endpoint answered HTTP 503."
    assert body["key_fetch_error"] == "The JWKS endpoint answered HTTP 503."


def test_refresh_fetches_the_jwks_now(api, jwks_issuer, jwks_server):
    api.get(f"trusted-token-issuers/{jwks_issuer.pk}/keys")
    jwks_server.serve_keys((private_key("ec", "issuer-b"), "k1"), (private_key("ec", "rotated"), "k2"))
    response = api.post(f"trusted-token-issuers/{jwks_issuer.pk}/keys/refresh")
    assert response.status_code == HTTPStatus.OK, response.content
    assert [k["kid"] for k in response.json()["keys"]] == ["k1", "k2"]
    assert len(jwks_server.requests) == 2


def test_refresh_failure_keeps_cached_keys(api, jwks_issuer, jwks_server):
    api.get(f"trusted-token-issuers/{jwks_issuer.pk}/keys")
    jwks_server.body = b"<html>"
    body = assert_problem(api.post(f"trusted-token-issuers/{jwks_issuer.pk}/keys/refresh"), HTTPStatus.CONFLICT)
    assert body["detail"] == "The JWKS response is not valid JSON."
    keys = api.get(f"trusted-token-issuers/{jwks_issuer.pk}/keys").json()["keys"]
    assert [k["kid"] for k in keys] == ["k1"]


def test_refresh_of_a_pem_issuer_is_a_conflict(api, pem_issuer):
    assert_problem(api.post(f"trusted-token-issuers/{pem_issuer.pk}/keys/refresh"), HTTPStatus.CONFLICT)


# -- token validations ----------------------------------------------------------------------------


def test_token_validation_explains_a_valid_token_without_consuming_it(api, pem_issuer, rsa_key, exchange):
    token = mint(rsa_key, pem_issuer.issuer, sub="erin")
    response = api.post("token-validations", {"subject_token": token})
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert (body["valid"], body["cause"], body["issuer"]) == (True, None, "PEM issuer")
    assert [step["name"] for step in body["steps"]][:3] == ["format", "header", "issuer"]
    assert all(step["ok"] for step in body["steps"])
    assert body["claims"]["sub"] == "erin"
    assert not ExchangeEvent.objects.exists()
    # Explained twice, then still exchangeable: the jti was not consumed.
    assert api.post("token-validations", {"subject_token": token}).json()["valid"] is True
    assert exchange(token).status_code == HTTPStatus.OK


@pytest.mark.parametrize("token_factory, cause", [
    (lambda key, iss: mint(key, iss, exp=1), "expired"),
    (lambda key, iss: mint(key, "https://unknown.test"), "unknown_issuer"),
    (lambda key, iss: mint(private_key("rsa", "api-other"), iss), "bad_signature"),
    (lambda key, iss: mint(key, iss, aud="https://someone-else.test"), "audience_mismatch"),
    (lambda key, iss: "not-a-jwt", "malformed"),
    (lambda key, iss: "", "malformed"),
])
def test_token_validation_reports_the_cause(api, pem_issuer, rsa_key, token_factory, cause):
    body = api.post("token-validations", {"subject_token": token_factory(rsa_key, pem_issuer.issuer)}).json()
    assert (body["valid"], body["cause"]) == (False, cause)
    assert body["description"]
    failed = [step for step in body["steps"] if step["ok"] is False]
    assert len(failed) == 1
    assert not ExchangeEvent.objects.exists()


def test_token_validation_of_a_replayed_token(api, pem_issuer, rsa_key, exchange):
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == HTTPStatus.OK
    body = api.post("token-validations", {"subject_token": token}).json()
    assert (body["valid"], body["cause"]) == (False, "replayed")


def test_token_validation_renders_any_claims(api, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer, note="\u202e reversed \x00 nul", sub=" padded")
    body = api.post("token-validations", {"subject_token": token}).json()
    assert (body["valid"], body["cause"]) == (False, "invalid_claim")
    assert body["claims"]["note"] == "\u202e reversed \x00 nul"


@pytest.mark.parametrize("payload", [{}, {"subject_token": None}, {"subject_token": True}, {"subject_token": ["a"]}])
def test_token_validation_needs_a_token(api, payload):
    assert_problem(api.post("token-validations", payload), HTTPStatus.BAD_REQUEST, "subject_token")


# -- certificates ---------------------------------------------------------------------------------


def test_add_a_certificate_for_the_next_key(api, pem_issuer, rsa_key, exchange):
    next_key = private_key("ec", "api-next")
    response = api.post(f"trusted-token-issuers/{pem_issuer.pk}/certificates",
                        {"certificate": certificate_pem(next_key)})
    assert response.status_code == HTTPStatus.CREATED, response.content
    assert response.json()["key_description"] == "EC P-256"
    keys = api.get(f"trusted-token-issuers/{pem_issuer.pk}/keys").json()["keys"]
    assert sorted(k["description"] for k in keys) == ["EC P-256", "RSA 2048"]
    # Both keys are trusted now.
    assert exchange(mint(next_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK


def test_add_a_base64_der_certificate(api, pem_issuer):
    der = base64.b64encode(certificate_der(private_key("ed25519", "api-next-der"))).decode()
    response = api.post(f"trusted-token-issuers/{pem_issuer.pk}/certificates", {"certificate": der})
    assert response.status_code == HTTPStatus.CREATED, response.content


@pytest.mark.parametrize("certificate, message", [
    ("rsa-key", "already registered"),
    ("junk!", "neither a PEM certificate nor base64 DER"),
    ("junk", "neither a PEM nor a DER certificate"),
    (None, None),
])
def test_add_certificate_refuses(api, pem_issuer, rsa_key, certificate, message):
    value = {"rsa-key": pem_issuer.certificates.get().pem}.get(certificate, certificate)
    response = api.post(f"trusted-token-issuers/{pem_issuer.pk}/certificates", {"certificate": value})
    assert_problem(response, HTTPStatus.BAD_REQUEST, "certificate" if certificate is None else "certificates", message)
    assert pem_issuer.certificates.count() == 1


def test_a_jwks_issuer_takes_no_certificates(api, jwks_issuer):
    response = api.post(f"trusted-token-issuers/{jwks_issuer.pk}/certificates",
                        {"certificate": certificate_pem(private_key("rsa", "api-next"))})
    assert_problem(response, HTTPStatus.BAD_REQUEST, "certificates", "JWKS endpoint")


def test_remove_a_certificate(api, pem_issuer, rsa_key, exchange):
    added = api.post(f"trusted-token-issuers/{pem_issuer.pk}/certificates",
                     {"certificate": certificate_pem(private_key("ec", "api-next"))}).json()
    old = pem_issuer.certificates.exclude(fingerprint=added["fingerprint"]).get()
    response = api.delete(f"trusted-token-issuers/{pem_issuer.pk}/certificates/{old.fingerprint}")
    assert response.status_code == HTTPStatus.NO_CONTENT
    assert list(pem_issuer.certificates.values_list("fingerprint", flat=True)) == [added["fingerprint"]]
    result = exchange(mint(rsa_key, pem_issuer.issuer))
    assert result.json()["error_description"] == "No signing key of the subject token's issuer matches the token."


def test_the_last_certificate_stays(api, pem_issuer):
    fingerprint = pem_issuer.certificates.get().fingerprint
    response = api.delete(f"trusted-token-issuers/{pem_issuer.pk}/certificates/{fingerprint}")
    assert_problem(response, HTTPStatus.BAD_REQUEST, "certificates", "only certificate")
    assert pem_issuer.certificates.count() == 1


@pytest.mark.parametrize("fingerprint", [":".join(["AB"] * 32), "AB:CD", "not-a-fingerprint"])
def test_remove_an_unknown_certificate_is_404(api, pem_issuer, fingerprint):
    response = api.delete(f"trusted-token-issuers/{pem_issuer.pk}/certificates/{fingerprint}")
    assert_problem(response, HTTPStatus.NOT_FOUND)


def test_a_lost_uniqueness_race_is_a_conflict(api, monkeypatch):
    """Validation passed, then a concurrent request inserted the same issuer: 409, not 500."""
    from django.db import IntegrityError

    from exchange.api import views

    def racing_create(**kwargs):
        raise IntegrityError("UNIQUE constraint failed: exchange_trustedtokenissuer.issuer")

    monkeypatch.setattr(views.flows, "create_trusted_token_issuer", racing_create)
    body = assert_problem(api.post("trusted-token-issuers", pem_body()), HTTPStatus.CONFLICT)
    assert body["code"] == "conflict"


# -- links to applications and the required type ----------------------------------------------------


def test_create_and_update_links_and_required_type(api, make_application, exchange, application):
    key = private_key("rsa", "api-links")
    elsewhere = make_application(name="Elsewhere")
    response = api.post("trusted-token-issuers", pem_body(key, applications=[elsewhere.client_id],
                                                          required_type="at+jwt"))
    assert response.status_code == HTTPStatus.CREATED, response.content
    body = response.json()
    assert body["applications"] == [elsewhere.client_id] and body["required_type"] == "at+jwt"
    token = lambda: mint(key, "https://idp.partner.test", headers={"typ": "at+jwt"})  # noqa: E731
    refused = exchange(token())
    assert refused.json()["error_description"] == "The subject token's issuer is not trusted for this client."
    response = api.patch(f"trusted-token-issuers/{body['id']}", {"applications": [application.client_id, elsewhere.client_id]})
    assert response.status_code == HTTPStatus.OK, response.content
    assert sorted(response.json()["applications"]) == sorted([application.client_id, elsewhere.client_id])
    assert exchange(token()).status_code == HTTPStatus.OK
    response = api.patch(f"trusted-token-issuers/{body['id']}", {"applications": []})
    assert response.json()["applications"] == []


@pytest.mark.parametrize("change, field", [
    ({"applications": ["no-such-client"]}, "applications"),
    ({"applications": "not-a-list"}, "applications"),
    ({"required_type": "at +jwt"}, "required_type"),
])
def test_links_and_type_refuse_invalid_values(api, three_issuers, change, field):
    issuer = three_issuers[0]
    response = api.patch(f"trusted-token-issuers/{issuer.pk}", change)
    assert_problem(response, HTTPStatus.BAD_REQUEST, field, None)
    issuer.refresh_from_db()
    assert issuer.required_type == "" and not issuer.applications.exists()
