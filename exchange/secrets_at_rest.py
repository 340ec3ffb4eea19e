"""Signing private keys encrypted at rest: AES-256-GCM under a key derived from SECRET_KEY.

A stored value reads ``aes256gcm:<key id>:<base64url(nonce || ciphertext || tag)>``. The AES key
is HKDF-SHA256 of the key-encryption secret: ``TOKEN_EXCHANGE["SIGNING_KEY_ENCRYPTION_KEY"]``
when set, else Django's ``SECRET_KEY``. New values are sealed with that secret; its fallbacks
(``SIGNING_KEY_ENCRYPTION_KEY_FALLBACKS``, else ``SECRET_KEY_FALLBACKS``) still open older ones,
so a rotation keeps every key readable until ``reencrypt_signing_keys`` has sealed them anew.
The key id (a second HKDF output, not the key) says which secret sealed a value; the
authenticated data binds it to its row, so a value copied onto another row does not open.

A value that does not open is an error, never a reason to generate a new key: the caller
stops with ``SecretUnavailable`` and its message says what to do.
"""

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .conf import exchange_settings

PREFIX = "aes256gcm:"
_SALT = b"identity-console secrets at rest v1"
_NONCE_BYTES = 12


class SecretUnavailable(Exception):
    """A stored secret cannot be opened (wrong key, altered value, or not encrypted): fail closed."""


def _hkdf(secret, info, length):
    material = secret.encode("utf-8", "surrogatepass") if isinstance(secret, str) else bytes(secret)
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(material)


def _derived(secret):
    """(key id, AES-256 key) for one key-encryption secret."""
    key_id = _hkdf(secret, b"key id", 6).hex()
    return key_id, _hkdf(secret, b"aes-256-gcm key", 32)


def _secrets():
    """The key-encryption secrets, the one that seals new values first."""
    if exchange_settings.SIGNING_KEY_ENCRYPTION_KEY:
        return [exchange_settings.SIGNING_KEY_ENCRYPTION_KEY, *exchange_settings.SIGNING_KEY_ENCRYPTION_KEY_FALLBACKS]
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _context(kid):
    return f"exchange.SigningKey:{kid}".encode()


def is_sealed(value):
    return isinstance(value, str) and value.startswith(PREFIX)


def seal(plaintext, kid):
    """Encrypt the PEM text of signing key ``kid`` with the current key-encryption secret."""
    key_id, key = _derived(_secrets()[0])
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode("ascii"), _context(kid))
    return f"{PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"


def sealed_with_current_secret(value):
    """True if ``value`` is sealed with the secret new values are sealed with (not a fallback)."""
    return is_sealed(value) and value[len(PREFIX):].split(":", 1)[0] == _derived(_secrets()[0])[0]


def unseal(value, kid):
    """The PEM text of signing key ``kid`` from its stored ``value``; SecretUnavailable if it cannot be opened."""
    if not is_sealed(value):
        raise SecretUnavailable(
            f"Signing key {kid} is not stored encrypted; run `manage.py migrate` (migration 0007 encrypts it)."
        )
    key_id, _, payload = value[len(PREFIX):].partition(":")
    keys = dict(_derived(secret) for secret in _secrets())
    if key_id not in keys:
        raise SecretUnavailable(
            f"Signing key {kid} was encrypted with a secret that is neither the current key-encryption "
            "secret nor one of its fallbacks: put the previous SECRET_KEY in SECRET_KEY_FALLBACKS (or the "
            "previous SIGNING_KEY_ENCRYPTION_KEY in SIGNING_KEY_ENCRYPTION_KEY_FALLBACKS)."
        )
    try:
        data = base64.b64decode(payload.encode("ascii"), altchars=b"-_", validate=True)
        plaintext = AESGCM(keys[key_id]).decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], _context(kid))
    except (InvalidTag, ValueError, binascii.Error):
        raise SecretUnavailable(
            f"Signing key {kid} failed its integrity check: the stored value was altered or corrupted. "
            "No key is generated in its place; restore it from a backup, or retire it and rotate."
        ) from None
    return plaintext.decode("ascii")
