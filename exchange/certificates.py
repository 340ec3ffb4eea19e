"""Reading the keys administrators give us: PEM or DER certificates, or bare public keys.

PyJWT refuses certificate PEMs as keys, so certificates are loaded with
``cryptography.x509`` and their public key is what verifies tokens.
"""

import base64
import binascii
import datetime
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from .conf import exchange_settings

_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.+?)\r?\n?-----END \1-----", re.DOTALL
)
_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class CertificateError(ValueError):
    """The text or file is not a usable certificate or public key (message is safe to show)."""


@dataclass(frozen=True)
class CertificateInfo:
    pem: str
    fingerprint: str
    subject: str
    issuer: str
    not_before: datetime.datetime | None
    not_after: datetime.datetime | None
    key_description: str
    public_key: object

    @property
    def is_certificate(self):
        return self.not_after is not None


def _fingerprint(der):
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def describe_key(key):
    """'RSA 2048', 'EC P-256', 'Ed25519' — raising CertificateError for keys we never trust."""
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < exchange_settings.MIN_RSA_KEY_BITS:
            raise CertificateError(
                f"The RSA key is {bits} bits; at least {exchange_settings.MIN_RSA_KEY_BITS} bits are required."
            )
        if bits > exchange_settings.MAX_RSA_KEY_BITS:
            raise CertificateError(f"The RSA key is {bits} bits; at most {exchange_settings.MAX_RSA_KEY_BITS} are accepted.")
        if key.public_numbers().e < 3 or key.public_numbers().e % 2 == 0:
            raise CertificateError("The RSA key has an unusable public exponent.")
        return f"RSA {bits}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_ALGORITHMS:
            raise CertificateError(f"The EC curve {key.curve.name} is not supported (P-256, P-384, P-521 are).")
        return {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}[key.curve.name]
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    raise CertificateError("The key type is not supported (RSA, EC or EdDSA keys are).")


def der_to_pem(data):
    """Turn a DER certificate (a .crt/.cer/.der file) into PEM text."""
    try:
        cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertificateError("The file is neither a PEM nor a DER certificate.") from None
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def normalize_upload(data):
    """Bytes of an uploaded file (PEM or DER) → PEM text."""
    if isinstance(data, str):
        return data
    stripped = data.lstrip(b"\xef\xbb\xbf").strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            return stripped.decode("ascii")
        except UnicodeDecodeError:
            raise CertificateError("The PEM file contains non-ASCII bytes.") from None
    return der_to_pem(stripped)


def inspect_pem(text, *, now=None, check_validity=True):
    """Parse exactly one PEM certificate or public key and describe it.

    Refuses private keys, several blocks, trailing garbage, expired or not-yet-valid
    certificates (unless ``check_validity`` is false: stored certificates are
    re-read that way and their window is checked per token) and weak keys, each
    with a message an administrator can act on.
    """
    if not isinstance(text, str):
        text = normalize_upload(text)
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise CertificateError("Paste or upload a PEM certificate.")
    if "PRIVATE KEY" in text:
        raise CertificateError("This is a private key. Upload the certificate or public key only.")
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks:
        raise CertificateError("This is not a PEM certificate (no -----BEGIN CERTIFICATE----- block).")
    if len(blocks) > 1:
        raise CertificateError("The PEM holds several blocks; add one certificate at a time.")
    block = blocks[0]
    if block.start() != 0 or block.end() != len(text):
        raise CertificateError("The PEM has text before or after the certificate block.")
    label = block.group(1)
    try:
        der = base64.b64decode("".join(block.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("The PEM body is not valid base64.") from None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if label == "CERTIFICATE":
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise CertificateError("The certificate could not be parsed.") from None
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        if check_validity and not_after < now:
            raise CertificateError(f"The certificate expired on {not_after:%Y-%m-%d %H:%M} UTC.")
        if check_validity and not_before > now:
            raise CertificateError(f"The certificate is not valid until {not_before:%Y-%m-%d %H:%M} UTC.")
        key = cert.public_key()
        description = describe_key(key)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return CertificateInfo(
            pem=pem,
            fingerprint=_fingerprint(der),
            subject=cert.subject.rfc4514_string()[:500],
            issuer=cert.issuer.rfc4514_string()[:500],
            not_before=not_before,
            not_after=not_after,
            key_description=description,
            public_key=key,
        )
    if label == "PUBLIC KEY":
        try:
            key = serialization.load_der_public_key(der)
        except (ValueError, TypeError):
            raise CertificateError("The public key could not be parsed.") from None
        description = describe_key(key)
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
        return CertificateInfo(
            pem=pem, fingerprint=_fingerprint(der), subject="", issuer="",
            not_before=None, not_after=None, key_description=description, public_key=key,
        )
    raise CertificateError(f"A {label} block is not a certificate or public key.")


def algorithms_for_key(key):
    """The JWS algorithms a key can verify (intersected later with the issuer's allow-list)."""
    if isinstance(key, rsa.RSAPublicKey):
        return {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _CURVE_ALGORITHMS.get(key.curve.name)
        return {alg} if alg else set()
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return {"EdDSA"}
    return set()
