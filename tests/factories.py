"""The one place tests and benchmarks build keys, self-signed certificates and JWS/JWT tokens.

Importable without a configured Django: only ``claims_for`` reads ``settings.CONSOLE_ISSUER``, and only
when the caller does not give ``aud`` (``bench/`` mints in worker processes that never set Django up).
"""

import base64
import datetime
import hashlib
import hmac
import json
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

# -- keys ----------------------------------------------------------------------------------------------

_KEY_CACHE = {}


def new_key(kind="rsa"):
    """A fresh private key: "rsa" (2048), "rsa1024", "ec" (P-256), "ec384" or "ed25519"."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def private_key(kind="rsa", name="default"):
    """A private key, generated once per test session for each (kind, name)."""
    marker = (kind, name)
    if marker not in _KEY_CACHE:
        _KEY_CACHE[marker] = new_key(kind)
    return _KEY_CACHE[marker]


def default_alg(key):
    """The JWS algorithm a key signs with by default (RS256, ES256/384/512 by curve, EdDSA)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]
    return "EdDSA"


def public_jwk(key, kid, **extra):
    """The public half of ``key`` as a JWK dict with ``kid`` (and any ``extra`` members)."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    jwk.pop("key_ops", None)
    jwk["kid"] = kid
    jwk.update(extra)
    return jwk


# -- self-signed certificates --------------------------------------------------------------------------

def certificate_for(key, *, days=365, not_before=None, common_name="Test issuer"):
    """A self-signed X.509 certificate for ``key``, valid from a day ago (or ``not_before``) for ``days``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    start = not_before or now - datetime.timedelta(days=1)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .sign(key, algorithm)
    )


def certificate_pem(key, **kwargs):
    """``certificate_for`` as PEM text."""
    return certificate_for(key, **kwargs).public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_der(key, **kwargs):
    """``certificate_for`` as DER bytes."""
    return certificate_for(key, **kwargs).public_bytes(serialization.Encoding.DER)


# -- JWS / JWT ---------------------------------------------------------------------------------------------

def b64url(data):
    """Unpadded base64url of bytes (or of a str's UTF-8)."""
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


DROP = object()


def claims_for(issuer, **overrides):
    """Valid subject-token claims of ``issuer`` for this console; override any, or DROP it."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "alice",
        "aud": overrides["aud"] if "aud" in overrides else settings.CONSOLE_ISSUER,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def mint(key, issuer="https://issuer.test", *, kid=None, alg=None, headers=None, **claims):
    """A subject token signed by ``key`` with sensible default claims (override or DROP them), through PyJWT."""
    header = {"typ": "JWT"}
    if kid:
        header["kid"] = kid
    header.update(headers or {})
    return jwt.encode(claims_for(issuer, **claims), key, algorithm=alg or default_alg(key), headers=header)


def signed(key, header, payload, alg=None):
    """A compact JWS over exactly these header and payload values, for shapes PyJWT refuses to produce.

    Dicts are JSON-encoded; str and bytes are taken as the raw segment content. ``key`` is a private key,
    or the secret bytes for HS256/384/512. ``alg`` defaults to the header's own ``alg``.
    """
    encode = lambda v: b64url(v) if isinstance(v, (str, bytes)) else b64url(json.dumps(v))  # noqa: E731
    signing_input = f"{encode(header)}.{encode(payload)}"
    alg = alg or header["alg"]
    if alg.startswith("HS"):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        signature = hmac.new(key, signing_input.encode(), digest).digest()
    else:
        signature = get_default_algorithms()[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


def raw_token(header, claims, signature=b"sig"):
    """A token assembled by hand with a made-up signature (str segments are used as they are)."""
    segment = lambda value: value if isinstance(value, str) else b64url(json.dumps(value))  # noqa: E731
    return f"{segment(header)}.{segment(claims)}.{b64url(signature)}"
