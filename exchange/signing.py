"""The console's own signing keys and the JWT access tokens it issues (RFC 9068 style).

The signing key comes from ``TOKEN_EXCHANGE["SIGNING_KEY_FILE"]`` when set
(keys managed outside the database; ``SIGNING_PUBLISHED_KEY_FILES`` publishes
previous or next keys beside it), else from the newest active ``SigningKey`` row
whose activation time has come; the first one is generated on first use.

Rotation (``rotate_signing_key``) publishes the new key at once but signs with
it only ``SIGNING_KEY_PUBLISH_AHEAD_SECONDS`` later, so resource servers that
cached the JWKS have refreshed it before they meet the new ``kid``; superseded
keys stay published until every token they signed has expired, then are retired
(private half erased). Each process re-reads the key list every
``SIGNING_KEY_RELOAD_SECONDS``. Public halves are served at ``/oauth2/jwks``.
"""

import base64
import datetime
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms
from oauthlib.oauth2.rfc6749 import errors

from . import secrets_at_rest
from .accounts import local_subject
from .claim_mapping import RESERVED_TARGETS
from .conf import exchange_settings, project_settings
from .models import Application, SigningKey, bounded_lifetime

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
    """The published JWK of a signing key: ``use`` ``sig``, and no ``key_ops`` (RFC 7517 §4.3: not both)."""
    jwk = _jwk_dict(public_key)
    jwk.pop("key_ops", None)  # PyJWT adds ["verify"]
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
_ring = None  # (loaded_at wall-clock seconds, ((LoadedKey, activate_at seconds or None), ...) newest first)
_parsed = {}  # kid -> private key object: PEMs are parsed once per process


def _load_from_file(path):
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    return LoadedKey(exchange_settings.SIGNING_KEY_ID or thumbprint(key.public_key()), algorithm_for_key(key), key)


def create_signing_key(algorithm=None, activate_at=None):
    """Generate, store and return a new active SigningKey row (signing from ``activate_at``, default now).

    The row's ``private_pem`` is sealed on save (``SigningKey.save``, exchange/secrets_at_rest.py).
    """
    algorithm = algorithm or exchange_settings.SIGNING_ALGORITHM
    key = generate_private_key(algorithm)
    return SigningKey.objects.create(
        kid=thumbprint(key.public_key()), algorithm=algorithm, private_pem=private_pem(key), active=True,
        activate_at=activate_at,
    )


def _private_key(row):
    key = _parsed.get(row.kid)
    if key is None:
        # SecretUnavailable (wrong secret, altered value) propagates: a key that cannot be opened
        # stops signing rather than being replaced by a new one.
        pem = secrets_at_rest.unseal(row.private_pem, row.kid)
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        if len(_parsed) > 64:
            _parsed.clear()
        _parsed[row.kid] = key
    return key


def retire_expired_keys(now=None):
    """Retire keys past ``retire_after``: unpublished, private half erased. Returns how many."""
    now = now or timezone.now()
    return SigningKey.objects.filter(retired_at=None, retire_after__lte=now).update(
        retired_at=now, active=False, private_pem=""
    )


def _signing_rows():
    return SigningKey.objects.filter(active=True, retired_at=None).order_by("-created", "-pk")


def _load_ring():
    path = exchange_settings.SIGNING_KEY_FILE
    if path:
        return ((_load_from_file(path), None),)
    retire_expired_keys()
    with transaction.atomic():
        rows = list(_signing_rows())
        if not rows:
            rows = [create_signing_key()]
    return tuple(
        (LoadedKey(row.kid, row.algorithm, _private_key(row)),
         row.activate_at.timestamp() if row.activate_at else None)
        for row in rows
    )


def active_key():
    """The key new tokens are signed with.

    Each process keeps the list of signing keys, re-read every
    ``SIGNING_KEY_RELOAD_SECONDS``: the newest key whose activation time has come
    signs. A rotation publishes its key ahead of activation, so every worker
    knows it in advance and switches at the same instant.
    """
    global _ring
    now = time.time()
    ring = _ring
    if ring is None or abs(now - ring[0]) >= exchange_settings.SIGNING_KEY_RELOAD_SECONDS:
        with _lock:
            if _ring is None or _ring is ring:
                _ring = (now, _load_ring())
            ring = _ring
    keys = ring[1]
    for key, activate_at in keys:
        if activate_at is None or activate_at <= now:
            return key
    return keys[-1][0]  # only future keys (clock trouble): the oldest one


def reset():
    """Forget the loaded keys (after rotation, or when tests change settings)."""
    global _ring
    with _lock:
        _ring = None
        _parsed.clear()  # decrypted again on next use: a changed key-encryption secret is seen at once


class RotationError(Exception):
    pass


def longest_token_lifetime():
    """The longest access-token lifetime any application is configured with, in seconds."""
    longest = Application.objects.aggregate(m=Max("access_token_lifetime"))["m"] or 0
    # Capped as tokens are: a row written before lifetimes were bounded must not overflow the dates.
    return bounded_lifetime(max(longest, exchange_settings.ACCESS_TOKEN_LIFETIME_SECONDS))


def rotate_signing_key(algorithm=None, publish_ahead=None, now=None):
    """Create the next signing key: published now, signing after ``publish_ahead`` seconds.

    Keys it supersedes stay published until every token they may have signed
    has expired (activation + the longest token lifetime + the reload
    interval), then are retired automatically.
    """
    if exchange_settings.SIGNING_KEY_FILE:
        raise RotationError(
            "The signing key comes from TOKEN_EXCHANGE['SIGNING_KEY_FILE']; rotate it there "
            "(see docs/deployment.md, Signing keys and rotation)."
        )
    algorithm = algorithm or exchange_settings.SIGNING_ALGORITHM
    if algorithm not in SIGNING_ALGORITHMS:
        raise RotationError(f"Unsupported signing algorithm {algorithm!r}; choose one of {', '.join(SIGNING_ALGORITHMS)}.")
    ahead = exchange_settings.SIGNING_KEY_PUBLISH_AHEAD_SECONDS if publish_ahead is None else publish_ahead
    if ahead < 0:
        raise RotationError("The publish-ahead time cannot be negative.")
    now = now or timezone.now()
    activate_at = now + datetime.timedelta(seconds=ahead)
    retire_after = activate_at + datetime.timedelta(
        seconds=longest_token_lifetime() + exchange_settings.SIGNING_KEY_RELOAD_SECONDS + 60
    )
    retire_expired_keys(now)
    with transaction.atomic():
        superseded = list(SigningKey.objects.select_for_update().filter(retired_at=None))
        new = create_signing_key(algorithm, activate_at=activate_at)
        for row in superseded:
            if row.retire_after is None or row.retire_after > retire_after:
                row.retire_after = retire_after
                row.save(update_fields=["retire_after"])
    reset()
    return new, superseded


def _published_file_keys():
    """Public halves from SIGNING_PUBLISHED_KEY_FILES (private keys, public keys or certificates)."""
    keys = []
    for path in exchange_settings.SIGNING_PUBLISHED_KEY_FILES:
        data = Path(path).read_bytes()
        try:
            public = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError):
            try:
                public = serialization.load_pem_public_key(data)
            except ValueError:
                public = x509.load_pem_x509_certificate(data).public_key()
        if isinstance(public, rsa.RSAPublicKey):
            algorithm = "RS256"
        elif isinstance(public, ec.EllipticCurvePublicKey):
            algorithm = "ES256"
        else:
            algorithm = "EdDSA"
        keys.append(public_jwk(public, thumbprint(public), algorithm))
    return keys


def published_jwks():
    """The JWKS document for /oauth2/jwks: every key a live token may be signed with, and the next one."""
    keys = {}
    if exchange_settings.SIGNING_KEY_FILE:
        loaded = active_key()
        keys[loaded.kid] = loaded.public_jwk
        for jwk in _published_file_keys():
            keys.setdefault(jwk["kid"], jwk)
        # Database keys stay published too: tokens they signed before the switch to a file still verify.
    now = timezone.now()
    for row in SigningKey.objects.filter(retired_at=None):
        if row.retire_after is not None and row.retire_after <= now:
            continue
        keys.setdefault(row.kid, public_jwk(_private_key(row).public_key(), row.kid, row.algorithm))
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


def subject_identifier(subject_issuer, sub):
    """RFC 9493's ``iss_sub`` subject identifier: the external (issuer, subject) pair a token was issued for."""
    return {"format": "iss_sub", "iss": subject_issuer, "sub": sub}


def audience_claim(audiences):
    """The ``aud`` claim for a list of audiences: a string when there is one (RFC 7519 §4.1.3)."""
    return audiences[0] if len(audiences) == 1 else list(audiences)


def act_claim(chain):
    """RFC 8693 §4.1 ``act`` from a delegation chain (outermost, most recent actor first): the least
    recent actor is the most deeply nested. None for an empty chain. Built in a loop, not recursively."""
    act = None
    for party in reversed(chain):
        act = {"sub": party["sub"], "iss": party["iss"], **({"act": act} if act is not None else {})}
    return act


def access_token_claims(*, sub, client_id, scope, audience, iat, exp, jti, subject_issuer=None, mapped_claims=None,
                        act=None, external_subject=None):
    """The claims of an access token we issue: the one function behind both the JWT and its introspection.

    ``audience`` is a non-empty list. ``scope`` is omitted when empty: no scope was granted, and an
    empty ``scope`` claim is refused by RFC 9068 validators (RFC 6749 §3.3 defines no empty scope).
    A token exchanged for a third party's subject also carries ``sub_id`` (RFC 9493 ``iss_sub``)
    naming the trusted issuer's ``iss`` beside its ``sub``: two issuers' ``sub: "admin"`` give the
    same ``sub`` but never the same ``sub_id``, so resource servers can tell them apart (identify
    by ``sub_id``, never by ``sub`` alone). A token for the local user an external identity is linked
    to (exchange/accounts.py) has the user's local subject as ``sub`` and the external ``sub`` as
    ``external_subject``: ``sub_id`` names the external identity it was exchanged for.
    ``mapped_claims``: what the trusted issuer's claim mapping carries (claim_mapping.py); they come
    first, so no claim of this server can be overridden by one. A delegated token (RFC 8693 §4.1)
    carries ``act`` (``act_claim``): who acts on behalf of ``sub`` (a linked user's token too).
    """
    claims = {name: value for name, value in (mapped_claims or {}).items() if name.lower() not in RESERVED_TARGETS}
    claims.update({
        "iss": project_settings.CONSOLE_ISSUER,
        "sub": sub,
        "aud": audience_claim(audience),
        "client_id": client_id,
    })
    if scope:
        claims["scope"] = scope
    claims.update({"iat": int(iat), "exp": int(exp), "jti": jti})
    if subject_issuer is not None:
        claims["sub_id"] = subject_identifier(subject_issuer, external_subject or sub)
    if act is not None:
        claims["act"] = act
    return claims


def new_access_token_claims(*, sub, client_id, scope, audience, lifetime, jti=None, now=None, subject_issuer=None,
                            mapped_claims=None, act=None, external_subject=None):
    """The claims of a new access token: issued now (``now``, Unix time), valid for ``lifetime`` seconds."""
    now = int(time.time() if now is None else now)
    if isinstance(audience, str):
        audience = [audience]
    return access_token_claims(
        sub=sub, client_id=client_id, scope=scope, audience=list(audience), iat=now, exp=now + int(lifetime),
        jti=jti or uuid.uuid4().hex, subject_issuer=subject_issuer, mapped_claims=mapped_claims, act=act,
        external_subject=external_subject,
    )


def token_subject(row):
    """The ``sub`` of the token an AccessToken or RefreshToken row was written for.

    An exchanged token: the external ``sub``, or, when it was issued for a linked local user, that
    user's local subject (accounts.local_subject). Otherwise the user's local subject, else the client.
    """
    if row.user_id:
        return local_subject(row.user)
    return row.subject or row.application.client_id


def sign(claims):
    """The compact JWS of ``claims`` with the active signing key (``typ`` ``at+jwt``)."""
    return _compact_jws(active_key(), claims)


def sign_id_token(claims):
    """An OpenID Connect ID token: ``claims`` signed with the active signing key, ``typ`` ``JWT``.

    The same keys as the access tokens (one key store): the ``kid`` is in ``/oauth2/jwks``, and a
    rotation moves both kinds of token to the new key at the same instant. ``typ`` is plain ``JWT``:
    an ID token is not an access token (RFC 9068 §2.1 reserves ``at+jwt`` for those).
    """
    key = active_key()
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"})


def verify_id_token(token):
    """The claims of an ID token this server signed (signature and ``iss`` checked; expiry not), or None."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        keys = {jwk["kid"]: jwk for jwk in published_jwks()["keys"]}
        if kid not in keys:
            return None
        key = jwt.PyJWK.from_dict(keys[kid])
        return jwt.decode(token, key, algorithms=[keys[kid]["alg"]], issuer=project_settings.CONSOLE_ISSUER,
                          options={"verify_aud": False, "verify_exp": False})
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
        return None


def id_token_algorithms():
    """The algorithms ID tokens may be signed with: those of the published keys (the active one and the next)."""
    return sorted({jwk["alg"] for jwk in published_jwks()["keys"]})


def issue_access_token(**kwargs):
    """Sign a new access token (arguments as ``new_access_token_claims``); the JWT."""
    return sign(new_access_token_claims(**kwargs))


def stored_audience(row):
    """The audiences of an AccessToken row: as issued, or, for rows older than the column, as they were derived."""
    if row.audience:
        return list(row.audience)
    return list(row.resource or []) or [row.application.client_id]


def row_claims(row):
    """The claims of the JWT an AccessToken row was written for, rebuilt from the row (introspection).

    The row was written from the same claims (storage.access_token_row), so this equals the token.
    """
    issuer = row.trusted_issuer if row.subject and row.trusted_issuer_id else None
    return access_token_claims(
        sub=token_subject(row), client_id=row.application.client_id, scope=row.scope, audience=stored_audience(row),
        iat=row.created.timestamp(), exp=row.expires.timestamp(), jti=row.jti or None,
        subject_issuer=issuer.issuer if issuer is not None else None, mapped_claims=row.mapped_claims,
        act=row.act or None, external_subject=row.subject or None,
    )


def _requested_resources(request):
    """The RFC 8707 ``resource`` values of a DOT token request (oauthlib keeps only the last; the body has all)."""
    values = [value for key, value in (getattr(request, "decoded_body", None) or []) if key == "resource" and value]
    if not values and isinstance(getattr(request, "resource", None), str) and request.resource:
        values = [request.resource]
    return values


def _dot_audience(request):
    """``aud`` of a token DOT issues: the requested resources, else what the refreshed token had, else the client.

    A refresh keeps the original token's audience (audience and resource of the exchange); a
    ``resource`` sent with the refresh may only narrow it. Resources requested with the other
    grants must be audiences the application allows, as for the exchange (grant.check_targets).
    """
    client = request.client
    refresh = getattr(request, "refresh_token_instance", None)
    original = refresh.access_token if refresh is not None else None
    resources = _requested_resources(request)
    if resources:
        if refresh is not None:
            allowed = stored_audience(original) if original is not None else []
        else:
            allowed = client.allowed_audiences or []
        if any(value not in allowed for value in resources):
            raise errors.CustomOAuth2Error(
                error="invalid_target", description="The requested resource is not allowed for this client.",
                request=request,
            )
        return resources
    if original is not None:
        return stored_audience(original)
    return [client.client_id]


def access_token_generator(request, refresh_token=False):
    """DOT's ACCESS_TOKEN_GENERATOR: every access token this server issues is a signed JWT.

    The subject is the resource owner, otherwise the client; a refresh of an exchanged token
    keeps its external ``sub``, ``sub_id``, mapped claims and ``act`` (carried by the refresh token), its audience, its
    scope (oauthlib takes the original scopes when none are asked) and its bound: never past the
    refresh token's ``not_after``. The claims are left on
    the request (``issued_claims``): the validator writes the AccessToken row from them.
    """
    refresh = getattr(request, "refresh_token_instance", None)
    external, issuer, mapped, act = None, None, None, None
    if refresh is not None and getattr(refresh, "subject", ""):
        external, issuer = refresh.subject, refresh.trusted_issuer
        mapped = refresh.mapped_claims or None  # the exchanged token's mapped claims stay with its refreshes
        request.exchange_subject, request.exchange_issuer = external, issuer
        request.exchange_mapped_claims = mapped or {}
        act = refresh.act or None  # a delegated token stays delegated: the same actor, the same chain
        if act is not None:
            request.exchange_act = act
            request.exchange_actor_issuer = refresh.actor_trusted_issuer
            request.exchange_actor_subject = refresh.actor_subject
    user = getattr(request, "user", None)
    if getattr(user, "pk", None) is not None:
        subject = local_subject(user)  # a local user's sub everywhere (accounts.local_subject), linked or signed in
    else:
        subject = external or request.client.client_id
    now = int(time.time())
    lifetime = request.expires_in
    not_after = getattr(refresh, "not_after", None)
    if not_after is not None:  # a refresh of a token bounded by its subject token stays bounded
        lifetime = max(0, min(lifetime, int(not_after.timestamp()) - now))
    claims = new_access_token_claims(
        sub=subject, client_id=request.client.client_id, scope=" ".join(request.scopes or []),
        audience=_dot_audience(request), lifetime=lifetime,
        subject_issuer=issuer.issuer if issuer is not None else None, now=now, mapped_claims=mapped, act=act,
        external_subject=external,
    )
    request.issued_claims = claims
    return sign(claims)
