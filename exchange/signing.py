"""The console's own signing keys and the JWT access tokens it issues (RFC 9068 style).

The active private key is parsed once per process. It comes from
``TOKEN_EXCHANGE["SIGNING_KEY_FILE"]`` when set (keys managed outside the
database), else from the newest active ``SigningKey`` row, which is generated on
first use. Public halves of every published key are served at ``/oauth2/jwks``.
"""

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

from .conf import exchange_settings

SIGNING_ALGORITHMS = ("RS256", "ES256", "EdDSA")


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    algorithm: str
    private_key: object

    @property
    def public_jwk(self):
        return public_jwk(self.private_key.public_key(), self.kid, self.algorithm)


def generate_private_key(algorithm):
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"Unsupported signing algorithm {algorithm!r}; choose one of {', '.join(SIGNING_ALGORITHMS)}.")


def private_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _jwk_dict(public_key):
    if isinstance(public_key, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(public_key, as_dict=True)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(public_key, as_dict=True)
    return OKPAlgorithm.to_jwk(public_key, as_dict=True)


def thumbprint(public_key):
    """RFC 7638 JWK thumbprint, used as the ``kid``."""
    jwk = _jwk_dict(public_key)
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def public_jwk(public_key, kid, algorithm):
    jwk = _jwk_dict(public_key)
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return jwk


def algorithm_for_key(key):
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ValueError("The signing key must be an RSA, EC P-256 or Ed25519 private key.")


_lock = threading.Lock()
_active = None


def _load_from_file(path):
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    return LoadedKey(exchange_settings.SIGNING_KEY_ID or thumbprint(key.public_key()), algorithm_for_key(key), key)


def create_signing_key(algorithm=None):
    """Generate, store and return a new active SigningKey row."""
    from .models import SigningKey

    algorithm = algorithm or exchange_settings.SIGNING_ALGORITHM
    key = generate_private_key(algorithm)
    return SigningKey.objects.create(
        kid=thumbprint(key.public_key()), algorithm=algorithm, private_pem=private_pem(key), active=True
    )


def _load_from_database():
    from .models import SigningKey

    with transaction.atomic():
        row = SigningKey.objects.filter(active=True).order_by("-created").first()
        if row is None:
            row = create_signing_key()
    key = serialization.load_pem_private_key(row.private_pem.encode(), password=None)
    return LoadedKey(row.kid, row.algorithm, key)


def active_key():
    """The key new tokens are signed with (loaded once per process)."""
    global _active
    if _active is None:
        with _lock:
            if _active is None:
                path = exchange_settings.SIGNING_KEY_FILE
                _active = _load_from_file(path) if path else _load_from_database()
    return _active


def reset():
    """Forget the loaded key (after rotation, or when tests change settings)."""
    global _active
    with _lock:
        _active = None


def published_jwks():
    """The JWKS document for /oauth2/jwks: every key a live token may be signed with."""
    from .models import SigningKey

    keys = {}
    if exchange_settings.SIGNING_KEY_FILE:
        loaded = active_key()
        keys[loaded.kid] = loaded.public_jwk
    now = timezone.now()
    for row in SigningKey.objects.all():
        if row.retire_after is not None and row.retire_after <= now:
            continue
        key = serialization.load_pem_private_key(row.private_pem.encode(), password=None)
        keys.setdefault(row.kid, public_jwk(key.public_key(), row.kid, row.algorithm))
    if not keys:
        keys[active_key().kid] = active_key().public_jwk
    return {"keys": list(keys.values())}


_SIGNERS = {name: alg for name, alg in get_default_algorithms().items() if name in SIGNING_ALGORITHMS}
_header_segments = {}  # (kid, algorithm) -> the encoded JOSE header, built once per key


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _compact_jws(key, claims):
    """``jwt.encode(claims, key, headers={"typ": "at+jwt", "kid": ...})`` without its per-call overhead.

    The header segment is encoded once per key; signing is PyJWT's own algorithm object
    (for ES256 it also turns the DER signature into JOSE's r||s).
    """
    marker = (key.kid, key.algorithm)
    header = _header_segments.get(marker)
    if header is None:
        header = _b64(json.dumps({"alg": key.algorithm, "kid": key.kid, "typ": "at+jwt"},
                                 separators=(",", ":"), sort_keys=True).encode())
        _header_segments[marker] = header
    signing_input = header + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = _SIGNERS[key.algorithm].sign(signing_input, key.private_key)
    return (signing_input + b"." + _b64(signature)).decode("ascii")


def issue_access_token(*, sub, client_id, scope, audience, lifetime, jti=None, now=None):
    """Sign an access token. Claims: iss, sub, aud, client_id, scope, iat, exp, jti."""
    key = active_key()
    now = int(time.time() if now is None else now)
    claims = {
        "iss": settings.CONSOLE_ISSUER,
        "sub": sub,
        "aud": audience,
        "client_id": client_id,
        "scope": scope,
        "iat": now,
        "exp": now + int(lifetime),
        "jti": jti or uuid.uuid4().hex,
    }
    return _compact_jws(key, claims)


def access_token_generator(request, refresh_token=False):
    """DOT's ACCESS_TOKEN_GENERATOR: every access token this server issues is a signed JWT.

    The subject is the exchanged external ``sub`` (set by the grant, or carried by
    the refresh token being used); otherwise the resource owner, otherwise the client.
    """
    subject = getattr(request, "exchange_subject", None)
    refresh = getattr(request, "refresh_token_instance", None)
    if subject is None and refresh is not None and getattr(refresh, "subject", ""):
        subject = refresh.subject
        request.exchange_subject = subject
        request.exchange_issuer = refresh.trusted_issuer
    if subject is None:
        user = getattr(request, "user", None)
        subject = str(user.pk) if getattr(user, "pk", None) is not None else request.client.client_id
    jti = uuid.uuid4().hex
    request.issued_jti = jti
    audience = getattr(request, "exchange_audience", None) or request.client.client_id
    return issue_access_token(
        sub=subject,
        client_id=request.client.client_id,
        scope=" ".join(request.scopes or []),
        audience=audience,
        lifetime=request.expires_in,
        jti=jti,
    )
