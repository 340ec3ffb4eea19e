"""Hostile subject tokens at the token endpoint: each class from the attack catalogue, with the exact answer.

The catalogue is the project's adversarial test list (``../shared/reference/attack-cases.md``, beside the
repository, not in it); each case here says what it sends, so this file reads without it.

Every rejection is 400 ``invalid_request`` with the cause's fixed sentence, no token issued, and the cause
recorded on the ExchangeEvent (``assert_subject_rejected``). Issuer A is RSA-2048 with a PEM certificate
(``pem_issuer``); issuer B is P-256 behind a JWKS on 127.0.0.1 (``jwks_issuer``, kid ``k1``); M is the attacker.
"""

import json
import time
from http import HTTPStatus

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings

from exchange import flows
from exchange.models import AccessToken, ExchangeEvent

from ..factories import (
    DROP, b64url, certificate_der, certificate_for, certificate_pem, claims_for, mint, private_key, public_jwk, signed,
)
from ..utils import assert_subject_rejected

# M, the attacker: the same keys as security/conftest.py's (private_key caches them by name).

ATTACKER = private_key("rsa", "attacker-m")
ATTACKER_EC = private_key("ec", "attacker-m")


def _pem(ctx, fmt=serialization.PublicFormat.SubjectPublicKeyInfo):
    return ctx.a_public.public_bytes(serialization.Encoding.PEM, fmt)


HS_SECRETS = {
    "spki pem": lambda c: _pem(c),
    "spki pem no newline": lambda c: _pem(c).rstrip(b"\n"),
    "spki pem crlf": lambda c: _pem(c).replace(b"\n", b"\r\n"),
    "pkcs1 pem": lambda c: _pem(c, serialization.PublicFormat.PKCS1),
    "der": lambda c: c.a_public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    "jwk json": lambda c: json.dumps(public_jwk(c.a_key, "k")).encode(),
    "jwks json": lambda c: json.dumps({"keys": [public_jwk(c.a_key, "k")]}).encode(),
    "modulus bytes": lambda c: c.a_public.public_numbers().n.to_bytes(256, "big"),
    "openssh": lambda c: c.a_public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    "certificate pem": lambda c: certificate_pem(c.a_key).encode(),
    "bom pem": lambda c: b"\xef\xbb\xbf" + _pem(c),
    "empty": lambda c: b"",
}


def _hs_cases():
    cases = {}
    for name, secret in HS_SECRETS.items():
        for alg in ("HS256", "HS384", "HS512"):
            cases[f"{alg} with A's {name}"] = (
                lambda c, s=secret, a=alg: signed(s(c), {"alg": a}, c.a_claims()), "algorithm_not_allowed")
    return cases


def _none_cases():
    cases = {}
    for spelling in ("none", "None", "NONE", "nOnE"):
        header = b64url(json.dumps({"alg": spelling}))
        cases[f"alg {spelling}, empty signature"] = (
            lambda c, h=header: f"{h}.{b64url(json.dumps(c.a_claims()))}.", "algorithm_not_allowed")
        cases[f"alg {spelling}, garbage signature"] = (
            lambda c, h=header: f"{h}.{b64url(json.dumps(c.a_claims()))}.{b64url(b'garbage')}", "algorithm_not_allowed")
        cases[f"alg {spelling}, no trailing dot"] = (
            lambda c, h=header: f"{h}.{b64url(json.dumps(c.a_claims()))}", "malformed")
    return cases


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _stray_bits(token):
    """A 256-byte RSA signature ends in a character with 4 unused bits: set one (a non-canonical encoding)."""
    return token[:-1] + _B64[_B64.index(token[-1]) | 1]


def _psychic(c, size):
    token = c.b_signed()
    return token.rsplit(".", 1)[0] + "." + b64url(b"\x00" * size)


P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _ecdsa_rs(c, r, s):
    return c.b_signed().rsplit(".", 1)[0] + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _der_signature(c):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    head = c.b_signed().rsplit(".", 1)[0]
    return head + "." + b64url(c.b_key.sign(head.encode(), ec.ECDSA(hashes.SHA256())))


CASES = {
    # -- B. syntax, encoding, size ----------------------------------------------------------
    "two segments": (lambda c: c.a_signed().rsplit(".", 1)[0], "malformed"),
    "four segments": (lambda c: c.a_signed() + ".x", "malformed"),
    "JWE-shaped (five segments)": (lambda c: "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", "malformed"),
    "over the size limit": (lambda c: c.a_signed(pad="x" * 16384), "malformed"),
    "padding": (lambda c: c.a_signed() + "==", "malformed"),
    "padded header": (lambda c: c.a_signed().replace(".", "=.", 1), "malformed"),
    "plus and slash": (lambda c: c.a_signed().replace("-", "+").replace("_", "/") + "+/", "malformed"),
    "inner space": (lambda c: c.a_signed().replace(".", " .", 1), "malformed"),
    "leading space": (lambda c: " " + c.a_signed(), "malformed"),
    "trailing newline": (lambda c: c.a_signed() + "\n", "malformed"),
    "question mark": (lambda c: c.a_signed().replace(".", "?.", 1), "malformed"),
    "non-ascii": (lambda c: c.a_signed() + "é", "malformed"),
    "json serialization": (lambda c: json.dumps({
        "protected": c.a_signed().split(".")[0], "payload": c.a_signed().split(".")[1],
        "signature": c.a_signed().split(".")[2]}), "malformed"),
    "header a string": (lambda c: signed(c.a_key, '"x"', c.a_claims(), alg="RS256"), "malformed"),
    "header an array": (lambda c: signed(c.a_key, "[]", c.a_claims(), alg="RS256"), "malformed"),
    "payload null": (lambda c: signed(c.a_key, {"alg": "RS256"}, "null"), "malformed"),
    "payload a number": (lambda c: signed(c.a_key, {"alg": "RS256"}, "123"), "malformed"),
    "payload with trailing bytes": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims()) + "x"), "malformed"),
    "payload utf-16": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims()).encode("utf-16")), "malformed"),
    "payload with bom": (lambda c: signed(c.a_key, {"alg": "RS256"}, b"\xef\xbb\xbf" + json.dumps(c.a_claims()).encode()), "malformed"),
    "duplicate sub": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims())[:-1] + ', "sub": "admin"}'), "malformed"),
    "duplicate header alg": (lambda c: signed(c.a_key, '{"alg": "RS256", "alg": "none"}', c.a_claims(), alg="RS256"), "malformed"),
    "NaN exp": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims()).replace('"exp": ', '"exp": NaN, "x": ')), "malformed"),
    "deep nesting": (lambda c: signed(c.a_key, {"alg": "RS256"}, "[" * 5000 + "]" * 5000), "malformed"),
    "non-canonical base64 tail": (lambda c: _stray_bits(c.a_signed()), "malformed"),
    # -- C. algorithms and keys --------------------------------------------------------------
    **_none_cases(),
    "alg missing": (lambda c: signed(c.a_key, {"typ": "JWT"}, c.a_claims(), alg="RS256"), "malformed"),
    "alg empty": (lambda c: signed(c.a_key, {"alg": ""}, c.a_claims(), alg="RS256"), "malformed"),
    "alg null": (lambda c: signed(c.a_key, {"alg": None}, c.a_claims(), alg="RS256"), "malformed"),
    "alg number": (lambda c: signed(c.a_key, {"alg": 1}, c.a_claims(), alg="RS256"), "malformed"),
    "alg list": (lambda c: signed(c.a_key, {"alg": ["RS256"]}, c.a_claims(), alg="RS256"), "malformed"),
    "alg object": (lambda c: signed(c.a_key, {"alg": {}}, c.a_claims(), alg="RS256"), "malformed"),
    "alg trailing space": (lambda c: signed(c.a_key, {"alg": "RS256 "}, c.a_claims(), alg="RS256"), "algorithm_not_allowed"),
    "alg lowercase": (lambda c: signed(c.a_key, {"alg": "rs256"}, c.a_claims(), alg="RS256"), "algorithm_not_allowed"),
    "alg with NUL": (lambda c: signed(c.a_key, {"alg": "RS256\u0000"}, c.a_claims(), alg="RS256"), "algorithm_not_allowed"),
    **_hs_cases(),
    "HS256 with the oct key served in B's JWKS": (
        lambda c: signed(b"symmetric-secret-32-bytes-long!!", {"alg": "HS256", "kid": "sym"}, claims_for(c.b.issuer)),
        "algorithm_not_allowed"),
    "ES256 header, RSA signature for A": (lambda c: signed(c.a_key, {"alg": "ES256"}, c.a_claims(), alg="RS256"), "unknown_key"),
    "ES384 for B's P-256 key": (lambda c: signed(private_key("ec384", "m"), {"alg": "ES384", "kid": "k1"}, claims_for(c.b.issuer)), "unknown_key"),
    "EdDSA for B's EC key": (lambda c: signed(private_key("ed25519", "m"), {"alg": "EdDSA", "kid": "k1"}, claims_for(c.b.issuer)), "unknown_key"),
    "RS256 for B's EC key": (lambda c: signed(c.a_key, {"alg": "RS256", "kid": "k1"}, claims_for(c.b.issuer)), "unknown_key"),
    "kid of B's 1024-bit RSA key": (lambda c: signed(private_key("rsa1024", "weak"), {"alg": "RS256", "kid": "weak"}, claims_for(c.b.issuer)), "unknown_key"),
    "no kid, signed by M for B": (lambda c: signed(ATTACKER_EC, {"alg": "ES256"}, claims_for(c.b.issuer)), "bad_signature"),
    # -- D. header injection (never followed; see also the zero-outbound test) ---------------
    "embedded jwk of M": (lambda c: signed(ATTACKER, {"alg": "RS256", "jwk": public_jwk(ATTACKER, "m")}, c.a_claims()), "bad_signature"),
    "embedded jwk of A, signed by M": (lambda c: signed(ATTACKER, {"alg": "RS256", "jwk": public_jwk(c.a_key, "a")}, c.a_claims()), "bad_signature"),
    "embedded oct jwk": (lambda c: signed(b"k" * 32, {"alg": "HS256", "jwk": {"kty": "oct", "k": b64url(b"k" * 32)}}, c.a_claims()), "algorithm_not_allowed"),
    "jku to the listener, signed by M": (lambda c: signed(ATTACKER, {"alg": "RS256", "jku": c.listener}, c.a_claims()), "bad_signature"),
    "jku + kid of M for B": (lambda c: signed(ATTACKER_EC, {"alg": "ES256", "kid": "m", "jku": c.listener}, claims_for(c.b.issuer)), "unknown_key"),
    "jku with B's kid, signed by M": (lambda c: signed(ATTACKER_EC, {"alg": "ES256", "kid": "k1", "jku": c.listener}, claims_for(c.b.issuer)), "bad_signature"),
    "x5u to the listener": (lambda c: signed(ATTACKER, {"alg": "RS256", "x5u": c.listener}, c.a_claims()), "bad_signature"),
    "x5c with M's certificate": (lambda c: signed(ATTACKER, {"alg": "RS256", "x5c": [
        __import__("base64").b64encode(certificate_for(ATTACKER).public_bytes(serialization.Encoding.DER)).decode()]},
        c.a_claims()), "bad_signature"),
    "kid path traversal for B": (lambda c: c.b_signed({"kid": "../../../../../../dev/null"}), "unknown_key"),
    "kid /dev/null for B": (lambda c: c.b_signed({"kid": "/dev/null"}), "unknown_key"),
    "kid SQL for B": (lambda c: c.b_signed({"kid": "x' UNION SELECT '1';--"}), "unknown_key"),
    "kid shell for B": (lambda c: c.b_signed({"kid": "|sleep 10"}), "unknown_key"),
    "kid empty for B": (lambda c: c.b_signed({"kid": ""}), "unknown_key"),
    "kid not a string": (lambda c: c.b_signed({"kid": 1}), "malformed"),
    "kid a list": (lambda c: c.b_signed({"kid": ["k1"]}), "malformed"),
    "crit unknown": (lambda c: c.a_signed({"crit": ["x-bind"], "x-bind": 1}), "unsupported_header"),
    "crit empty": (lambda c: c.a_signed({"crit": []}), "unsupported_header"),
    "crit a string": (lambda c: c.a_signed({"crit": "b64"}), "unsupported_header"),
    "crit standard": (lambda c: c.a_signed({"crit": ["alg"]}), "unsupported_header"),
    "crit missing param": (lambda c: c.a_signed({"crit": ["x-missing"]}), "unsupported_header"),
    "b64 false with crit": (lambda c: c.a_signed({"b64": False, "crit": ["b64"]}), "unsupported_header"),
    "b64 false alone": (lambda c: c.a_signed({"b64": False}), "unsupported_header"),
    "zip": (lambda c: c.a_signed({"zip": "DEF"}), "unsupported_header"),
    "enc": (lambda c: c.a_signed({"enc": "A256GCM"}), "unsupported_header"),
    "nested JWT": (lambda c: c.a_signed({"cty": "JWT"}), "unsupported_header"),
    "nested application/jwt": (lambda c: c.a_signed({"cty": "application/JWT"}), "unsupported_header"),
    # -- E. signature primitives -------------------------------------------------------------
    "psychic ES256 r=s=0": (lambda c: _psychic(c, 64), "bad_signature"),
    "ES256 signature too short": (lambda c: _psychic(c, 63), "bad_signature"),
    "ES256 signature too long": (lambda c: c.b_signed() + "AA", "bad_signature"),
    "ES256 r=s=n": (lambda c: _ecdsa_rs(c, P256_N, P256_N), "bad_signature"),
    "ES256 r=n, s=n-1": (lambda c: _ecdsa_rs(c, P256_N, P256_N - 1), "bad_signature"),
    "ES256 r=0, s=1": (lambda c: _ecdsa_rs(c, 0, 1), "bad_signature"),
    "ES256 DER-encoded signature": (_der_signature, "bad_signature"),
    "empty signature": (lambda c: c.a_signed().rsplit(".", 1)[0] + ".", "bad_signature"),
    "modified payload": (lambda c: c.a_signed().split(".")[0] + "." + b64url(json.dumps(c.a_claims(sub="admin"))) + "." + c.a_signed().split(".")[2], "bad_signature"),
    "RSA signature of zero": (lambda c: c.a_signed().rsplit(".", 1)[0] + "." + b64url(b"\x00" * 256), "bad_signature"),
    # -- F. claims ---------------------------------------------------------------------------
    "iss missing": (lambda c: c.a_signed(iss=DROP), "missing_claim"),
    "iss null": (lambda c: c.a_signed(iss=None), "missing_claim"),
    "iss a list": (lambda c: c.a_signed(iss=[c.a.issuer]), "invalid_claim"),
    "iss a number": (lambda c: c.a_signed(iss=123), "invalid_claim"),
    "iss an object": (lambda c: c.a_signed(iss={}), "invalid_claim"),
    "iss trailing slash": (lambda c: c.a_signed(iss=c.a.issuer + "/"), "unknown_issuer"),
    "iss uppercase": (lambda c: c.a_signed(iss=c.a.issuer.upper()), "unknown_issuer"),
    "iss with whitespace": (lambda c: c.a_signed(iss=c.a.issuer + " "), "unknown_issuer"),
    "iss prefix": (lambda c: c.a_signed(iss=c.a.issuer[:-2]), "unknown_issuer"),
    "iss is the console": (lambda c: c.a_signed(iss=settings.CONSOLE_ISSUER), "unknown_issuer"),
    "iss is the listener": (lambda c: signed(ATTACKER, {"alg": "RS256"}, claims_for(c.listener.rsplit("/", 1)[0])), "unknown_issuer"),
    "exp missing": (lambda c: c.a_signed(exp=DROP), "missing_claim"),
    "exp a string": (lambda c: c.a_signed(exp=str(int(time.time()) + 300)), "invalid_claim"),
    "exp true": (lambda c: c.a_signed(exp=True), "invalid_claim"),
    "exp a list": (lambda c: c.a_signed(exp=[int(time.time()) + 300]), "invalid_claim"),
    "exp an object": (lambda c: c.a_signed(exp={}), "invalid_claim"),
    "exp null": (lambda c: c.a_signed(exp=None), "invalid_claim"),
    "exp 10**30": (lambda c: c.a_signed(exp=10**30), "invalid_claim"),
    "exp 1e400": (lambda c: signed(c.a_key, {"alg": "RS256"}, json.dumps(c.a_claims(exp=1)).replace('"exp": 1', '"exp": 1e400')), "invalid_claim"),
    "exp negative": (lambda c: c.a_signed(exp=-1), "invalid_claim"),
    "exp now": (lambda c: c.a_signed(exp=int(time.time()) - 61), "expired"),
    "nbf a string": (lambda c: c.a_signed(nbf="0"), "invalid_claim"),
    "nbf in the future": (lambda c: c.a_signed(nbf=int(time.time()) + 120), "not_yet_valid"),
    "iat a string": (lambda c: c.a_signed(iat=str(int(time.time()))), "invalid_claim"),
    "iat false": (lambda c: c.a_signed(iat=False), "invalid_claim"),
    "iat in the future": (lambda c: c.a_signed(iat=int(time.time()) + 120), "not_yet_valid"),
    "iat 30 days ago": (lambda c: c.a_signed(iat=int(time.time()) - 30 * 86400), "too_old"),
    "no iat, 10-year exp": (lambda c: c.a_signed(iat=DROP, exp=int(time.time()) + 10 * 365 * 86400), "too_old"),
    "aud missing": (lambda c: c.a_signed(aud=DROP), "missing_claim"),
    "aud null": (lambda c: c.a_signed(aud=None), "missing_claim"),
    "aud empty string": (lambda c: c.a_signed(aud=""), "audience_mismatch"),
    "aud empty list": (lambda c: c.a_signed(aud=[]), "invalid_claim"),
    "aud an object": (lambda c: c.a_signed(aud={"aud": settings.CONSOLE_ISSUER}), "invalid_claim"),
    "aud with a number": (lambda c: c.a_signed(aud=[settings.CONSOLE_ISSUER, 1]), "invalid_claim"),
    "aud nested list": (lambda c: c.a_signed(aud=[[settings.CONSOLE_ISSUER]]), "invalid_claim"),
    "aud another relying party": (lambda c: c.a_signed(aud="https://other-rp.example"), "audience_mismatch"),
    "aud console with trailing slash": (lambda c: c.a_signed(aud=settings.CONSOLE_ISSUER + "/"), "audience_mismatch"),
    "aud console uppercase": (lambda c: c.a_signed(aud=settings.CONSOLE_ISSUER.upper()), "audience_mismatch"),
    "aud another issuer's alias": (lambda c: c.a_signed(aud="console-at-b"), "audience_mismatch"),
    "aud substring of the console": (lambda c: c.a_signed(aud=settings.CONSOLE_ISSUER[:-1]), "audience_mismatch"),
    "sub missing": (lambda c: c.a_signed(sub=DROP), "missing_claim"),
    "sub null": (lambda c: c.a_signed(sub=None), "invalid_claim"),
    "sub empty": (lambda c: c.a_signed(sub=""), "invalid_claim"),
    "sub a number": (lambda c: c.a_signed(sub=123), "invalid_claim"),
    "sub a list": (lambda c: c.a_signed(sub=[]), "invalid_claim"),
    "sub with NUL": (lambda c: c.a_signed(sub="ali\u0000ce"), "invalid_claim"),
    "sub with control char": (lambda c: c.a_signed(sub="ali\u0007ce"), "invalid_claim"),
    "sub lone surrogate": (lambda c: c.a_signed(sub="\ud800"), "malformed"),
    "sub RTL override": (lambda c: c.a_signed(sub="\u202eadmin"), "invalid_claim"),
    "sub 10 KB": (lambda c: c.a_signed(sub="a" * 10240), "invalid_claim"),
    "sub leading space": (lambda c: c.a_signed(sub=" alice"), "invalid_claim"),
    "sub trailing newline": (lambda c: c.a_signed(sub="alice\n"), "invalid_claim"),
    "jti a number": (lambda c: c.a_signed(jti=123), "invalid_claim"),
    "jti empty": (lambda c: c.a_signed(jti=""), "invalid_claim"),
    "jti too long": (lambda c: c.a_signed(jti="j" * 256), "invalid_claim"),
    # -- F. cross-issuer key confusion -------------------------------------------------------
    "iss B signed by A's key": (lambda c: signed(c.a_key, {"alg": "RS256", "kid": "k1"}, claims_for(c.b.issuer)), "unknown_key"),
    "iss A signed by B's key": (lambda c: signed(c.b_key, {"alg": "ES256", "kid": "k1"}, c.a_claims()), "unknown_key"),
    "iss B signed by C's k1": (lambda c: signed(private_key("ec", "issuer-c"), {"alg": "ES256", "kid": "k1"}, claims_for(c.b.issuer)), "bad_signature"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_subject_token(case, ctx, exchange):
    build, cause = CASES[case]
    assert_subject_rejected(exchange(build(ctx)), cause)


def test_controls_pass(ctx, exchange):
    """The builders make valid tokens when nothing is wrong (guards against cases failing for another reason)."""
    assert exchange(ctx.a_signed()).status_code == HTTPStatus.OK
    assert exchange(ctx.b_signed()).status_code == HTTPStatus.OK
    assert exchange(ctx.a_signed({"kid": "../../dev/null"})).status_code == HTTPStatus.OK  # A's kid is not used
    assert exchange(ctx.a_signed(aud=["https://other-rp.example", settings.CONSOLE_ISSUER])).status_code == HTTPStatus.OK
    assert exchange(ctx.b_signed(aud="console-at-b")).status_code == HTTPStatus.OK
    assert AccessToken.objects.count() == 5


def test_algorithm_allow_list_is_per_issuer(ctx, exchange):
    ctx.a.allowed_algorithms = ["RS256"]
    ctx.a.save()
    token = signed(ctx.a_key, {"alg": "PS256"}, ctx.a_claims())
    assert_subject_rejected(exchange(token), "algorithm_not_allowed")
    token = signed(ctx.a_key, {"alg": "RS384"}, ctx.a_claims())
    assert_subject_rejected(exchange(token), "algorithm_not_allowed")


def test_huge_subject_token_rejected_before_parsing(exchange, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer).split(".")
    huge = f"{token[0]}.{'A' * (2 * 1024 * 1024)}.{token[2]}"
    started = time.monotonic()
    assert_subject_rejected(exchange(huge), "malformed")
    assert time.monotonic() - started < 1.0


def test_body_over_the_django_limit(exchange, pem_issuer, rsa_key):
    response = exchange("A" * (3 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("offset, ok", [(-1, True), (0, False), (1, False)])
def test_expiry_boundary_with_leeway(offset, ok, exchange, pem_issuer, rsa_key, time_machine):
    """exp + leeway (60 s) must be strictly after now."""
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    token = mint(rsa_key, pem_issuer.issuer, iat=now - 100, exp=now - 60 - offset)
    response = exchange(token)
    if ok:
        assert response.status_code == HTTPStatus.OK, response.content
    else:
        assert_subject_rejected(response, "expired")


@pytest.mark.parametrize("claim, cause", [("nbf", "not_yet_valid"), ("iat", "not_yet_valid")])
@pytest.mark.parametrize("ahead, ok", [(60, True), (61, False)])
def test_future_nbf_and_iat_with_leeway(claim, cause, ahead, ok, exchange, pem_issuer, rsa_key, time_machine):
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    response = exchange(mint(rsa_key, pem_issuer.issuer, **{claim: now + ahead}))
    if ok:
        assert response.status_code == HTTPStatus.OK, response.content
    else:
        assert_subject_rejected(response, cause)


def test_replay_and_the_malleated_ecdsa_twin(exchange, jwks_issuer, ec_key):
    """s → n − s still verifies (ECDSA is malleable): replay detection must key on (iss, jti), not the bytes."""
    token = mint(ec_key, jwks_issuer.issuer, kid="k1")
    head, signature = token.rsplit(".", 1)
    import base64

    raw = base64.urlsafe_b64decode(signature + "==")
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    twin = f"{head}.{b64url(r + (P256_N - s).to_bytes(32, 'big'))}"
    assert exchange(token).status_code == HTTPStatus.OK
    assert_subject_rejected(exchange(twin), "replayed", issued_before=1)
    assert_subject_rejected(exchange(token), "replayed", issued_before=1)


def test_malleated_twin_verifies_on_its_own(exchange, jwks_issuer, ec_key):
    token = mint(ec_key, jwks_issuer.issuer, kid="k1")
    head, signature = token.rsplit(".", 1)
    import base64

    raw = base64.urlsafe_b64decode(signature + "==")
    twin = f"{head}.{b64url(raw[:32] + (P256_N - int.from_bytes(raw[32:], 'big')).to_bytes(32, 'big'))}"
    assert exchange(twin).status_code == HTTPStatus.OK


def test_replay_store_is_per_issuer(exchange, pem_issuer, jwks_issuer, rsa_key, ec_key):
    assert exchange(mint(rsa_key, pem_issuer.issuer, jti="same")).status_code == HTTPStatus.OK
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1", jti="same")).status_code == HTTPStatus.OK


def test_require_jti(exchange, pem_issuer, rsa_key):
    pem_issuer.require_jti = True
    pem_issuer.save()
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer, jti=DROP)), "missing_claim")


def test_replay_allowed_when_the_issuer_opts_out(exchange, pem_issuer, rsa_key):
    pem_issuer.reject_replayed_jti = False
    pem_issuer.save()
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == exchange(token).status_code == HTTPStatus.OK


def test_replay_store_entry_expires_with_the_token(exchange, pem_issuer, rsa_key, time_machine):
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    token = mint(rsa_key, pem_issuer.issuer, iat=now, exp=now + 30)
    assert exchange(token).status_code == HTTPStatus.OK
    from exchange.models import SharedCacheEntry
    from exchange.shared_cache import database_store

    # Without Redis the replay store is the database, shared by every worker: the entry exists ...
    (entry,) = SharedCacheEntry.objects.filter(key__startswith="jti:")
    assert entry.expires == now + 30 + 60
    assert database_store.get(entry.key) == 1
    time_machine.shift(30 + 60 + 2)  # ... until exp + leeway
    assert database_store.get(entry.key) is None


def test_only_the_fixed_sentence_is_revealed(ctx, exchange):
    """Two tokens failing different checks in the same step get byte-identical bodies; nothing is echoed."""
    first = exchange(ctx.a_signed(aud="https://x.example/<script>"))
    second = exchange(ctx.a_signed(aud="https://y.example/' OR 1=1"))
    assert first.content == second.content
    assert b"x.example" not in first.content
    for cause in ExchangeEvent.objects.values_list("cause", flat=True):
        assert cause == "audience_mismatch"


def test_weak_and_oversized_keys_refused_at_registration(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        flows.create_trusted_token_issuer(name="Weak", issuer="https://weak.test",
                                          certificates=[certificate_pem(private_key("rsa1024", "weak"))])


def test_oversized_rsa_key_skipped_in_jwks():
    from jwt.algorithms import RSAAlgorithm

    from exchange.key_sources import parse_jwks

    huge = {"kty": "RSA", "kid": "huge", "n": b64url((2**16383 + 1).to_bytes(2048, "big")), "e": "AQAB"}
    small_e = {"kty": "RSA", "kid": "e1", "n": public_jwk(private_key("rsa", "e1"), "x")["n"], "e": "AQ"}
    assert parse_jwks({"keys": [huge, small_e]}) == []
    assert RSAAlgorithm  # the loader used by parse_jwks


def test_replay_entry_bounded_by_the_maximum_age(exchange, pem_issuer, rsa_key, time_machine):
    """A 10-year exp does not keep a replay entry for 10 years: the token is too old after max_token_age anyway."""
    from exchange.models import SharedCacheEntry

    now = int(time.time())
    time_machine.move_to(now, tick=False)
    token = mint(rsa_key, pem_issuer.issuer, iat=now, exp=now + 10 * 365 * 86400)
    assert exchange(token).status_code == HTTPStatus.OK
    (entry,) = SharedCacheEntry.objects.filter(key__startswith="jti:")
    assert entry.expires - now <= 3600 + 60 + 1
    time_machine.shift(3600 + 60 + 2)
    assert_subject_rejected(exchange(token), "too_old", issued_before=1)


def test_dependency_floor():
    """Catalogue T104, the dependency floor: pyjwt >= 2.15.1 and a current cryptography.

    That floor carries the fixes of CVE-2017-11424, CVE-2022-29217, CVE-2024-53861 (iss substring match),
    CVE-2026-32597 (crit ignored), CVE-2026-48522..48526 (JWKS URI scheme, PyJWK algorithm binding, kid
    refetch and cache wipe, b64 DoS, a JWK used as HMAC secret) and pyjwt 2.14/2.15's hardening.
    """
    import cryptography
    import jwt

    assert tuple(int(p) for p in jwt.__version__.split(".")[:3]) >= (2, 15, 1)
    assert int(cryptography.__version__.split(".")[0]) >= 44


def test_concurrent_replays_only_one_wins(transactional_db, rsa_key):
    """Two workers exchanging the same token at once: the cache's atomic add lets exactly one through."""
    import threading

    from exchange.subject_token import SubjectTokenRejected, validate_subject_token

    trusted = flows.create_trusted_token_issuer(name="Race", issuer="https://race.test",
                                                certificates=[certificate_pem(rsa_key)])
    token = mint(rsa_key, trusted.issuer)
    outcomes, barrier = [], threading.Barrier(8)

    def worker():
        from django.db import connection

        barrier.wait()
        try:
            validate_subject_token(token)
            outcomes.append("ok")
        except SubjectTokenRejected as exc:
            outcomes.append(exc.cause)
        finally:
            connection.close()  # each thread's own connection: left open, it blocks dropping the test database

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["ok"] + ["replayed"] * 7


def _pem_of(key, **kwargs):
    return certificate_pem(key, **kwargs)


@pytest.mark.parametrize("build", [
    lambda: _pem_of(private_key("rsa1024", "weak")),  # RSA-1024
    lambda: _pem_of(private_key("rsa", "expired"), days=1, not_before=__import__("datetime").datetime(2020, 1, 1,
                    tzinfo=__import__("datetime").timezone.utc)),  # expired
    lambda: _pem_of(private_key("rsa", "a")) + _pem_of(private_key("rsa", "b")),  # two certificates
    lambda: _pem_of(private_key("rsa", "a")) + "trailing garbage",
    lambda: "garbage before\n" + _pem_of(private_key("rsa", "a")),
    lambda: private_key("rsa", "a").private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()).decode(),  # a private key
    lambda: _pem_of(private_key("rsa", "a")).replace("MII", "M!I", 1),  # broken base64
    lambda: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",  # not a certificate
    lambda: "",
])
def test_certificate_hygiene_at_registration(build, db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        flows.create_trusted_token_issuer(name="Bad cert", issuer="https://bad-cert.test", certificates=[build()])


def test_crlf_certificate_is_normalised(db, exchange):
    key = private_key("rsa", "crlf")
    trusted = flows.create_trusted_token_issuer(name="CRLF", issuer="https://crlf.test",
                                                certificates=[certificate_pem(key).replace("\n", "\r\n")])
    assert "\r" not in trusted.certificates.get().pem
    assert exchange(mint(key, trusted.issuer)).status_code == HTTPStatus.OK


def test_der_certificate_ending_in_a_whitespace_byte(db):
    """A DER upload is binary: stripping "whitespace" from it corrupted about 1 in 40 certificates."""
    from exchange.certificates import normalize_upload

    key = private_key("ec", "der-whitespace")
    for _ in range(2000):
        der = certificate_der(key)
        if der[-1:] in (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"):
            break
    else:
        pytest.fail("no certificate ending in a whitespace byte was produced")
    assert normalize_upload(der).startswith("-----BEGIN CERTIFICATE-----")
