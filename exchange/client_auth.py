"""Client authentication at the token endpoint: the one implementation.

RFC 6749 §2.3.1: HTTP Basic with form-urlencoded ``client_id:client_secret``
(base64-decode, split at the first colon, then form-urldecode each part), or
``client_id`` + ``client_secret`` in the body. Using both is refused, a client
id named in both places must agree, and every failure looks the same to the
caller. Secrets are checked with the stored hash's hasher (a fast keyed hash;
see hashers.py), and an unknown client costs the same hash computation as a
known one.

``authenticate`` is the whole check, used by the token-exchange grant directly
and by DOT's request validator (the other grants) alike.
"""

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from django.contrib.auth.hashers import check_password, make_password

MAX_CLIENT_ID_LENGTH = 100
MAX_SECRET_LENGTH = 512

_DUMMY_HASH = None


class MalformedCredentials(Exception):
    """Credentials were presented but cannot be read: a failed authentication."""


class MultipleMethods(Exception):
    """The request uses more than one authentication method (RFC 6749 §2.3)."""


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str | None
    method: str  # "client_secret_basic" | "client_secret_post" | "none"


def parse_basic(header):
    """``Basic <base64(urlencode(id):urlencode(secret))>`` → (client_id, client_secret)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise MalformedCredentials
    value = value.strip()
    try:
        raw = base64.b64decode(value, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise MalformedCredentials from None
    if base64.b64encode(raw).decode("ascii") != value:  # only the canonical encoding (no extra padding)
        raise MalformedCredentials
    if ":" not in decoded:
        raise MalformedCredentials
    raw_id, raw_secret = decoded.split(":", 1)
    client_id, client_secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    if not client_id:
        raise MalformedCredentials
    return client_id, client_secret


def extract(authorization, body_client_id, body_client_secret):
    """Which credentials the request presents.

    ``authorization`` is the Authorization header or None; the body values are
    None when absent (empty strings count as absent, RFC 6749 §3.2).
    Raises MultipleMethods or MalformedCredentials.
    """
    body_client_id = body_client_id or None
    body_client_secret = body_client_secret or None
    if authorization:
        if body_client_secret is not None:
            raise MultipleMethods
        client_id, client_secret = parse_basic(authorization)
        if body_client_id is not None and body_client_id != client_id:
            raise MultipleMethods
        return Credentials(client_id, client_secret, "client_secret_basic")
    if body_client_id is None:
        raise MalformedCredentials
    if body_client_secret is not None:
        return Credentials(body_client_id, body_client_secret, "client_secret_post")
    return Credentials(body_client_id, None, "none")


@dataclass(frozen=True)
class Authentication:
    """The outcome of ``authenticate``.

    ``application`` is the application the request named (for the audit trail), also
    when authentication failed for want of a secret; None when the client is unknown,
    the credentials are unreadable or the secret is wrong.
    """

    ok: bool
    application: object = None
    credentials: Credentials | None = None


def authenticate(authorization, body_client_id, body_client_secret, load_application):
    """Authenticate a confidential client by Basic or body credentials (not both).

    ``load_application(client_id)`` returns the Application or None (the in-process
    registry, see registry.py). Every failure runs one secret hash, as a success does.
    Raises MultipleMethods when the request uses both methods.
    """
    try:
        credentials = extract(authorization, body_client_id, body_client_secret)
    except MalformedCredentials:
        check_secret(None, None)
        return Authentication(False)
    application = load_application(credentials.client_id) if plausible_client_id(credentials.client_id) else None
    if credentials.client_secret is None:
        check_secret(None, None)
        return Authentication(False, application, credentials)
    stored = application.client_secret if application is not None else None
    if not check_secret(credentials.client_secret, stored):
        return Authentication(False, None, credentials)
    if not application.is_usable(None):  # a disabled application
        return Authentication(False, application, credentials)
    return Authentication(True, application, credentials)


def plausible_client_id(client_id):
    return 0 < len(client_id) <= MAX_CLIENT_ID_LENGTH and "\x00" not in client_id


def check_secret(provided, stored):
    """Constant-time check of ``provided`` against a stored (hashed) secret.

    ``stored=None`` (unknown client) still runs one hash so that timing does not
    tell unknown clients from wrong secrets.
    """
    global _DUMMY_HASH
    if not stored or provided is None or len(provided) > MAX_SECRET_LENGTH:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = make_password("dummy client secret", hasher="hmac_sha256")
        check_password(provided or "", _DUMMY_HASH)
        return False
    return check_password(provided, stored)
