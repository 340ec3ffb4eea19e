"""Hostile inputs found missing or only partly covered by an audit against the attack catalogue, and a few the
catalogue does not list. Every rejection asserts the exact status and error code, that no token was issued
and the recorded cause (``assert_subject_rejected``).

The catalogue is the project's adversarial test list (``../shared/reference/attack-cases.md``, beside the
repository, not in it). Its numbers (T23, T45, …) are kept to trace a case back to it; each case, group or
test here also says what the attack is.
"""

import json
import time
from http import HTTPStatus
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.conf import settings

from exchange import flows
from exchange.models import AccessToken, ExchangeEvent

from ..factories import b64url, certificate_pem, claims_for, mint, private_key, public_jwk, signed
from ..utils import (
    ACCESS_TOKEN_TYPE, FORM, assert_oauth_error, assert_subject_rejected, basic_auth, exchange_body, post_form,
)

# M, the attacker: the same keys as security/conftest.py's (private_key caches them by name).
ATTACKER = private_key("rsa", "attacker-m")
ATTACKER_EC = private_key("ec", "attacker-m")


# -- Strings no store can hold: lone surrogates (JSON "\ud800" escapes) and NUL -------------------------
# Found by this audit: a validly signed token with such an iss or jti, or such a header value, was a 500 at
# the token endpoint (the database lookup of iss, the hash of jti) and on the console's "Test a token" page.

UNSTORABLE = {
    "iss lone surrogate": ({}, {"iss": "\ud800"}, "malformed"),
    "iss surrogate after the real issuer": ({}, {"iss": "https://pem.issuer.test\udfff"}, "malformed"),
    "iss with NUL": ({}, {"iss": "https://pem.issuer.test\x00"}, "invalid_claim"),
    "jti lone surrogate": ({}, {"jti": "\ud800"}, "malformed"),
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
    """T79 (c), token-kind confusion: a signed RFC 8417 security event or a back-channel logout token
    (an "events" claim, even empty or null) offered as a subject token is refused as the wrong type."""
    claims = claims_for(pem_issuer.issuer, events=events, aud="console-at-pem")
    token = signed(rsa_key, {"alg": "RS256", **header}, json.dumps(claims), alg="RS256")
    assert_subject_rejected(exchange(token), "wrong_type")


# -- Catalogue gaps: subject tokens (A = pem_issuer RSA-2048; B = jwks_issuer P-256 kid k1; M = attacker) ----

def _json_b64(value):
    return b64url(value if isinstance(value, (str, bytes)) else json.dumps(value))


def _psychic_for(key, issuer, alg, size):
    head = signed(key, {"alg": alg}, claims_for(issuer), alg=alg).rsplit(".", 1)[0]
    return f"{head}.{b64url(bytes(size))}"


def _p521():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP521R1())


def _ec_issuer(curve, name):
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(curve)
    return key, flows.create_trusted_token_issuer(name=name, issuer=f"https://{name}.test",
                                                  certificates=[certificate_pem(key)])


GAP_CASES = {
    # T23: characters outside base64url
    "T23 hash": (lambda c: c.a_signed().replace(".", "#.", 1), "malformed"),
    "T23 brace": (lambda c: "{" + c.a_signed(), "malformed"),
    "T23 double quote": (lambda c: '"' + c.a_signed() + '"', "malformed"),
    "T23 tab inside": (lambda c: c.a_signed().replace(".", "\t.", 1), "malformed"),
    "T23 CRLF inside": (lambda c: c.a_signed().replace(".", ".\r\n", 1), "malformed"),
    "T23 leading BOM": (lambda c: "\ufeff" + c.a_signed(), "malformed"),
    "T23 full-width dot": (lambda c: c.a_signed().replace(".", "\uff0e", 1), "malformed"),
    # T24: general JWS JSON serialization
    "T24 general json serialization": (lambda c: json.dumps({
        "payload": c.a_signed().split(".")[1],
        "signatures": [{"protected": c.a_signed().split(".")[0], "signature": c.a_signed().split(".")[2]}]}),
        "malformed"),
    # T25: a JWE (five parts) addressed to A's key
    "T25 JWE RSA-OAEP to A": (lambda c: ".".join([_json_b64({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "a"}),
                                                  b64url(b"k" * 256), b64url(b"iv" * 6), b64url(b"ct"), b64url(b"t" * 16)]),
                              "malformed"),
    # T27: non-object and invalid JSON
    "T27 header null": (lambda c: signed(c.a_key, "null", c.a_claims(), alg="RS256"), "malformed"),
    "T27 header invalid json": (lambda c: signed(c.a_key, '{"alg": "RS256"', c.a_claims(), alg="RS256"), "malformed"),
    "T27 payload a string": (lambda c: signed(c.a_key, {"alg": "RS256"}, '"x"'), "malformed"),
    "T27 payload an array": (lambda c: signed(c.a_key, {"alg": "RS256"}, "[]"), "malformed"),
    "T27 payload invalid json": (lambda c: signed(c.a_key, {"alg": "RS256"}, '{"iss": '), "malformed"),
    "T27 payload with a raw control character": (
        lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims()).replace('"alice"', '"ali\x01ce"')), "malformed"),
    # T28: strict UTF-8 in the header too
    "T28 header utf-16": (lambda c: signed(c.a_key, json.dumps({"alg": "RS256"}).encode("utf-16"),
                                                json.dumps(c.a_claims()).encode(), "RS256"), "malformed"),
    "T28 header with BOM": (lambda c: signed(c.a_key, b"\xef\xbb\xbf" + json.dumps({"alg": "RS256"}).encode(),
                                                  json.dumps(c.a_claims()).encode(), "RS256"), "malformed"),
    "T28 payload latin-1": (lambda c: signed(c.a_key, json.dumps({"alg": "RS256"}).encode(),
                                                  json.dumps(c.a_claims(sub="caf\u00e9"), ensure_ascii=False).encode("latin-1"),
                                                  "RS256"), "malformed"),
    # T29 (own variant): duplicates spelled with JSON escapes
    "T29 escaped duplicate sub": (lambda c: signed(c.a_key, {"alg": "RS256"},
                                                   json.dumps(c.a_claims())[:-1] + ', "s\\u0075b": "admin"}'), "malformed"),
    "T29 escaped duplicate header alg": (lambda c: signed(c.a_key, '{"alg": "RS256", "\\u0061lg": "none"}',
                                                          c.a_claims(), alg="RS256"), "malformed"),
    "T29 duplicate inside aud object": (lambda c: signed(c.a_key, {"alg": "RS256"},
                                                         json.dumps(c.a_claims()).replace('"sub": "alice"', '"sub": "alice", "x": {"a": 1, "a": 2}')),
                                        "malformed"),
    # T32/T33 (own variants): look-alike algorithm names
    "T33 alg with Cyrillic S": (lambda c: signed(c.a_key, {"alg": "R\u0405256"}, c.a_claims(), alg="RS256"), "algorithm_not_allowed"),
    "T33 alg full-width": (lambda c: signed(c.a_key, {"alg": "\uff32\uff33256"}, c.a_claims(), alg="RS256"), "algorithm_not_allowed"),
    "T33 alg none with zero-width space": (lambda c: _json_b64({"alg": "none\u200b"}) + "." + _json_b64(c.a_claims()) + ".",
                                           "algorithm_not_allowed"),
    "T33 alg ES256K": (lambda c: signed(c.a_key, {"alg": "ES256K", "kid": "k1"}, claims_for(c.b.issuer), alg="RS256"),
                       "algorithm_not_allowed"),
    # T37: key type or curve mismatch
    "T37 ES512 for B's P-256 key": (lambda c: signed(_p521(), {"alg": "ES512", "kid": "k1"}, claims_for(c.b.issuer)), "unknown_key"),
    "T37 PS256 for B's EC key": (lambda c: signed(c.a_key, {"alg": "PS256", "kid": "k1"}, claims_for(c.b.issuer)), "unknown_key"),
    # T44: embedded EC jwk of M for B
    "T44 embedded EC jwk of M, B's kid": (lambda c: signed(ATTACKER_EC, {"alg": "ES256", "kid": "k1", "jwk": public_jwk(ATTACKER_EC, "k1")},
                                                           claims_for(c.b.issuer)), "bad_signature"),
    "T44 embedded jwk of B, signed by M": (lambda c: signed(ATTACKER_EC, {"alg": "ES256", "kid": "k1", "jwk": public_jwk(c.b_key, "k1")},
                                                            claims_for(c.b.issuer)), "bad_signature"),
    # T45: jku on the PEM issuer; jku pointing at B's real JWKS URL but signed by M
    "T45 jku on the PEM issuer, signed by M": (lambda c: signed(ATTACKER, {"alg": "RS256", "jku": c.listener, "kid": "m"},
                                                                c.a_claims()), "bad_signature"),
    # T46: x5t / x5t#S256 thumbprints of M's certificate
    "T46 x5t of M's certificate": (lambda c: signed(ATTACKER, {"alg": "RS256", "x5t": b64url(b"t" * 20), "x5t#S256": b64url(b"t" * 32),
                                                               "x5u": c.listener}, c.a_claims()), "bad_signature"),
    # T47 (own variant): a very long kid
    "T47 kid of 8 KB for B": (lambda c: c.b_signed({"kid": "k" * 8192}), "unknown_key"),
    "T47 kid with NUL for B": (lambda c: c.b_signed({"kid": "k1\x00"}), "unknown_key"),
    "T47 kid with a URL for B": (lambda c: c.b_signed({"kid": c.listener}), "unknown_key"),
    # T49: b64=false with a detached (empty) payload
    "T49 b64 false detached": (lambda c: c.a_signed({"b64": False, "crit": ["b64"]}).split(".")[0] + ".."
                               + c.a_signed().split(".")[2], "malformed"),
    # T56: modified header, missing everything
    "T56 modified header": (lambda c: _json_b64({"alg": "RS256", "kid": "x"}) + "." + ".".join(c.a_signed().split(".")[1:]),
                            "bad_signature"),
    "T56 only dots": (lambda c: "..", "malformed"),
    "T56 one dot": (lambda c: ".", "malformed"),
    # T61 / own: issuer look-alikes (exact string match only)
    "T61 iss with Cyrillic e": (lambda c: c.a_signed(iss=c.a.issuer.replace("e", "\u0435", 1)), "unknown_issuer"),
    "T61 iss full-width": (lambda c: c.a_signed(iss=c.a.issuer.replace("pem", "\uff50\uff45\uff4d")), "unknown_issuer"),
    "T61 iss with zero-width space": (lambda c: c.a_signed(iss=c.a.issuer + "\u200b"), "unknown_issuer"),
    "T61 iss decomposed": (lambda c: c.a_signed(iss=c.a.issuer + "/caf\u0065\u0301"), "unknown_issuer"),
    "T61 iss empty": (lambda c: c.a_signed(iss=""), "invalid_claim"),
    "T61 iss true": (lambda c: c.a_signed(iss=True), "invalid_claim"),
    # T64-T67 (own variants): audience look-alikes and shapes
    "T67 aud with zero-width space": (lambda c: c.a_signed(aud=settings.CONSOLE_ISSUER + "\u200b"), "audience_mismatch"),
    "T67 aud with Cyrillic o": (lambda c: c.a_signed(aud=settings.CONSOLE_ISSUER.replace("o", "\u043e", 1)), "audience_mismatch"),
    "T67 aud 300 other values": (lambda c: c.a_signed(aud=[f"https://rp{i}.example" for i in range(300)]), "audience_mismatch"),
    "T64 aud list with null": (lambda c: c.a_signed(aud=[settings.CONSOLE_ISSUER, None]), "invalid_claim"),
    "T64 aud true": (lambda c: c.a_signed(aud=True), "invalid_claim"),
    # T70/T72 (own variants): unusual JSON number forms
    "T70 exp 1e308": (lambda c: c.a_signed(exp=1e308), "invalid_claim"),
    "T70 exp 2**63": (lambda c: c.a_signed(exp=2**63), "invalid_claim"),
    "T70 exp 2**64 + 1": (lambda c: c.a_signed(exp=2**64 + 1), "invalid_claim"),
    "T70 exp 5000 digits": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims(exp=1)).replace('"exp": 1', '"exp": 1' + "0" * 5000)),
                            "malformed"),
    "T70 exp -Infinity": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims(exp=1)).replace('"exp": 1', '"exp": -Infinity')),
                          "malformed"),
    "T70 exp -0": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims(exp=1)).replace('"exp": 1', '"exp": -0')), "expired"),
    "T70 exp hex": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims(exp=1)).replace('"exp": 1', '"exp": 0x7fffffff')),
                    "malformed"),
    "T70 exp leading zero": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims(exp=1)).replace('"exp": 1', '"exp": 01')),
                             "malformed"),
    "T70 nbf null": (lambda c: c.a_signed(nbf=None), "invalid_claim"),
    "T70 nbf true": (lambda c: c.a_signed(nbf=True), "invalid_claim"),
    "T70 iat a list": (lambda c: c.a_signed(iat=[1]), "invalid_claim"),
    "T70 iat 1e400": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims(iat=1)).replace('"iat": 1', '"iat": 1e400')),
                      "invalid_claim"),
    # T74: sub shapes not listed in the main table
    "T74 sub an object": (lambda c: c.a_signed(sub={"id": "admin"}), "invalid_claim"),
    "T74 sub true": (lambda c: c.a_signed(sub=True), "invalid_claim"),
    "T75 sub zero-width joiner": (lambda c: c.a_signed(sub="ad\u200dmin"), "invalid_claim"),
    "T75 sub only whitespace": (lambda c: c.a_signed(sub="   "), "invalid_claim"),
}


@pytest.mark.parametrize("case", sorted(GAP_CASES))
def test_catalogue_gap(case, ctx, exchange):
    """Each case is named by its catalogue number and what it sends; the comment above its group says the attack."""
    build, cause = GAP_CASES[case]
    assert_subject_rejected(exchange(build(ctx)), cause)


def test_gap_controls_pass(ctx, exchange):
    """The number forms above are not refused for being numbers: a float or an exponent form is a NumericDate."""
    now = int(time.time())
    payload = json.dumps(ctx.a_claims(exp=now + 300, iat=now)).replace(f'"exp": {now + 300}', f'"exp": {now + 300}.5')
    assert exchange(signed(ctx.a_key, {"alg": "RS256"}, payload)).status_code == HTTPStatus.OK
    payload = json.dumps(ctx.a_claims(iat=now)).replace(f'"iat": {now}', f'"iat": {now}e0')
    assert exchange(signed(ctx.a_key, {"alg": "RS256"}, payload)).status_code == HTTPStatus.OK


def test_jku_to_the_issuers_own_jwks_is_not_a_key_source(ctx, exchange, jwks_server):
    """T45: jku naming B's real JWKS, signed by M with a kid B does not publish: no extra fetch, rejected."""
    exchange(ctx.b_signed())  # warm B's cache
    fetches = len(jwks_server.requests)
    token = signed(ATTACKER_EC, {"alg": "ES256", "kid": "k1", "jku": jwks_server.url}, claims_for(ctx.b.issuer))
    assert_subject_rejected(exchange(token), "bad_signature", issued_before=1)
    assert len(jwks_server.requests) == fetches


def test_no_kid_tries_at_most_ten_keys(exchange, jwks_issuer, jwks_server, ec_key):
    """T40: without a kid, a JWKS of 30 EC keys costs at most 10 signature checks (no CPU amplifier)."""
    from exchange import subject_token

    jwks_server.serve_keys(*[(private_key("ec", f"many-{i}"), f"k{i}") for i in range(30)])
    seen = []
    real = subject_token.verify_signature

    def spy(signing_input, signature, alg, keys):
        seen.append(len(keys))
        return real(signing_input, signature, alg, keys)

    with mock.patch.object(subject_token, "verify_signature", spy):
        assert_subject_rejected(exchange(mint(ATTACKER_EC, jwks_issuer.issuer)), "bad_signature")
    assert seen == [10]


@pytest.mark.parametrize("curve, alg, size", [("SECP384R1", "ES384", 96), ("SECP521R1", "ES512", 132)])
def test_psychic_signature_on_larger_curves(curve, alg, size, exchange, db):
    """T52: r = s = 0 for ES384 and ES512 (CVE-2022-21449), against a PEM issuer on that curve."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key, trusted = _ec_issuer(getattr(ec, curve)(), f"psychic-{alg.lower()}")
    assert exchange(signed(key, {"alg": alg}, claims_for(trusted.issuer))).status_code == HTTPStatus.OK  # control
    assert_subject_rejected(exchange(_psychic_for(key, trusted.issuer, alg, size)), "bad_signature", issued_before=1)


def test_certificate_key_decides_the_algorithm(exchange, db):
    """T98: a P-256 certificate verifies ES256 only; header kid/x5c/jku never switch to another key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key, trusted = _ec_issuer(ec.SECP256R1(), "p256-cert")
    other = ec.generate_private_key(ec.SECP384R1())
    assert_subject_rejected(exchange(signed(other, {"alg": "ES384"}, claims_for(trusted.issuer))), "unknown_key")
    token = signed(ATTACKER_EC, {"alg": "ES256", "kid": "x", "x5c": ["AAAA"], "jku": "http://127.0.0.1:9/"},
                   claims_for(trusted.issuer))
    assert_subject_rejected(exchange(token), "bad_signature")


def test_hs_with_the_pem_issuers_certificate_der(exchange, pem_issuer, rsa_key):
    """T97: HS256 whose secret is the certificate's DER bytes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(pem_issuer.certificates.get().pem.encode()).public_bytes(serialization.Encoding.DER)
    assert_subject_rejected(exchange(signed(der, {"alg": "HS256"}, claims_for(pem_issuer.issuer))), "algorithm_not_allowed")


def test_eddsa_refused_when_not_on_the_allow_list(exchange, db):
    """T58: an Ed25519 issuer whose allow-list does not name EdDSA."""
    key = private_key("ed25519", "eddsa-not-allowed")
    trusted = flows.create_trusted_token_issuer(name="Ed", issuer="https://ed.test", certificates=[certificate_pem(key)])
    trusted.allowed_algorithms = ["ES256"]
    trusted.save()
    assert_subject_rejected(exchange(mint(key, trusted.issuer)), "algorithm_not_allowed")


def test_secp256k1_key_in_a_jwks_is_never_used(exchange, jwks_issuer, jwks_server, ec_key):
    """T37: a secp256k1 key served in the JWKS (ES256K is not allowed) cannot verify ES256 or ES256K."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    k1 = ec.generate_private_key(ec.SECP256K1())
    jwk = ECAlgorithm.to_jwk(k1.public_key(), as_dict=True)
    jwks_server.document["keys"].append({**jwk, "kid": "k256"})
    assert_subject_rejected(exchange(signed(k1, {"alg": "ES256", "kid": "k256"}, claims_for(jwks_issuer.issuer), alg="ES256K")),
                            "unknown_key")
    assert_subject_rejected(exchange(signed(k1, {"alg": "ES256K", "kid": "k256"}, claims_for(jwks_issuer.issuer))),
                            "algorithm_not_allowed")


# -- Catalogue gaps: request shape ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["head", "trace"])
def test_other_methods_never_issue(method, client, auth, subject_token):
    """T01: HEAD and TRACE are refused with 405 (HEAD carries no body, by definition)."""
    response = getattr(client, method)("/oauth2/token", **auth)
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Cache-Control"] == "no-store"
    assert not AccessToken.objects.exists()


def test_options_is_refused_like_other_methods(client, auth):
    """T01: OPTIONS should be a 405 JSON error like GET, PUT, PATCH, DELETE, HEAD and TRACE."""
    response = client.options("/oauth2/token", **auth)
    assert not AccessToken.objects.exists()
    assert_oauth_error(response, HTTPStatus.METHOD_NOT_ALLOWED, "invalid_request")


def test_options_never_issues(client, auth, subject_token):
    response = client.options("/oauth2/token", exchange_body(subject_token), **auth)
    assert response.status_code < 500 and b"access_token" not in response.content
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("params, error, description", [
    # T08: actor_token_type without actor_token
    ({"actor_token_type": "urn:ietf:params:oauth:token-type:jwt"}, "invalid_request",
     "The actor_token_type parameter must not be sent without an actor_token."),
    # T09: an unknown requested type URI, and a case variant of a supported one
    ({"requested_token_type": "urn:example:unknown"}, "invalid_request", "The requested_token_type is not supported."),
    ({"requested_token_type": ACCESS_TOKEN_TYPE.upper()}, "invalid_request", "The requested_token_type is not supported."),
    # T07: a case variant and an unknown URI for the subject type
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:JWT"}, "invalid_request", "The subject_token_type is not supported."),
    ({"subject_token_type": "urn:example:unknown"}, "invalid_request", "The subject_token_type is not supported."),
    # T10: resource must be an allowed absolute URI; a fragment or a relative path is never allowed
    ({"resource": "relative/path"}, "invalid_target", None),
    ({"resource": "https://api.example#frag"}, "invalid_target", None),
    ({"audience": "https://api.example/"}, "invalid_target", None),
    ({"audience": "HTTPS://API.EXAMPLE"}, "invalid_target", None),
    ({"audience": "https://api.example\u200b"}, "invalid_target", None),
])
def test_parameter_gaps(params, error, description, client, subject_token, make_application):
    app = make_application(name="Targets", allowed_audiences=["https://api.example"])
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, **params),
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, error)
    if description:
        assert body["error_description"] == description
    assert not AccessToken.objects.exists()
    assert not ExchangeEvent.objects.filter(outcome="issued").exists()


# -- Own ideas: form bodies and media types ---------------------------------------------------------------

@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded-evil",
    "text/plain; x=application/x-www-form-urlencoded",
    "application/json; charset=application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded, application/json",
])
def test_media_type_look_alikes_are_refused(content_type, client, auth, subject_token):
    response = client.generic("POST", "/oauth2/token", urlencode(exchange_body(subject_token)), content_type=content_type, **auth)
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded; charset=utf-8",
    "Application/X-WWW-Form-Urlencoded",
])
def test_media_type_parameters_and_case_are_accepted(content_type, client, auth, subject_token):
    response = client.post("/oauth2/token", urlencode(exchange_body(subject_token)), content_type=content_type, **auth)
    assert response.status_code == HTTPStatus.OK, response.content


@pytest.mark.parametrize("mangle, status, error", [
    # ";" is not a separator: grant_type becomes "<urn>;subject_token=..."
    (lambda body: body.replace("&", ";"), HTTPStatus.BAD_REQUEST, "unsupported_grant_type"),
    # parameter names are case-sensitive: no subject_token at all
    (lambda body: body.replace("subject_token=", "Subject_Token="), HTTPStatus.BAD_REQUEST, "invalid_request"),
    (lambda body: body.replace("subject_token=", "subject_token%20="), HTTPStatus.BAD_REQUEST, "invalid_request"),
    (lambda body: body.replace("subject_token=", "subject_token[]="), HTTPStatus.BAD_REQUEST, "invalid_request"),
    # a subject_token repeated under a percent-encoded name is still a repeat
    (lambda body: body + "&subject%5Ftoken=x.y.z", HTTPStatus.BAD_REQUEST, "invalid_request"),
    # a raw "+" in the token is a space after form decoding: malformed, never "fixed up"
    (lambda body: body.replace("subject_token=", "subject_token=+"), HTTPStatus.BAD_REQUEST, "invalid_request"),
    # an empty pair and a pair without "=" are ignored, the request is otherwise whole
    (lambda body: "&&=&" + body + "&noval", HTTPStatus.OK, None),
])
def test_form_body_edge_cases(mangle, status, error, client, auth, subject_token):
    response = client.post("/oauth2/token", mangle(urlencode(exchange_body(subject_token))), content_type=FORM, **auth)
    if error is None:
        assert response.status_code == status, response.content
        return
    assert_oauth_error(response, status, error)
    assert not AccessToken.objects.exists()


def test_method_override_headers_are_ignored(client, auth, subject_token):
    """X-HTTP-Method-Override and friends do not turn a GET into a POST (or anything else)."""
    response = client.get("/oauth2/token?" + urlencode(exchange_body(subject_token)), HTTP_X_HTTP_METHOD_OVERRIDE="POST",
                          HTTP_X_METHOD_OVERRIDE="POST", **auth)
    assert_oauth_error(response, HTTPStatus.METHOD_NOT_ALLOWED, "invalid_request")
    assert not AccessToken.objects.exists()


# -- T100: the success response's caching headers; T105: libraries with known JOSE flaws -----------------

def test_success_response_is_not_cached(exchange, pem_issuer, rsa_key):
    """T100: a successful exchange is a JSON body that no cache may keep (no-store, and Pragma for HTTP/1.0)."""
    response = exchange(mint(rsa_key, pem_issuer.issuer))
    assert response.status_code == HTTPStatus.OK
    assert (response["Cache-Control"], response["Pragma"]) == ("no-store", "no-cache")
    assert response["Content-Type"].startswith("application/json")


def test_libraries_with_known_jose_flaws_are_absent_or_fixed():
    """T105, JOSE libraries with known flaws: python-jose (ignores crit; CVE-2024-33663, CVE-2024-33664) is not
    installed; Authlib >= 1.6.9 and jwcrypto >= 1.5.7 if ever installed."""
    from importlib import metadata

    def version(name):
        try:
            return tuple(int(p) for p in metadata.version(name).split(".")[:3] if p.isdigit())
        except metadata.PackageNotFoundError:
            return None

    assert version("python-jose") is None
    assert version("authlib") is None or version("authlib") >= (1, 6, 9)
    assert version("jwcrypto") is None or version("jwcrypto") >= (1, 5, 7)
