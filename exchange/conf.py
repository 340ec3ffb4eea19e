"""The token-exchange knobs: one namespaced settings dict resolved against DEFAULTS.

``settings.TOKEN_EXCHANGE`` holds overrides; every key can also be set from the
environment as ``TOKEN_EXCHANGE_<KEY>`` (see ``from_environ``), which is how
``identity_console.settings`` builds the dict. Read values through
``exchange_settings.KEY``; the object re-reads Django settings when tests
change them.
"""

import os

from django.core.signals import setting_changed

#: Algorithms a third-party issuer may be allowed to use. Never ``none``, never HS*:
#: an issuer's verification key is public, so a MAC with it proves nothing.
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA",
)

#: No token lifetime setting may exceed this (ten years): far-future expiry times overflow dates.
HARD_MAX_TOKEN_LIFETIME_SECONDS = 10 * 365 * 86400

DEFAULTS = {
    # Subject tokens
    "SUBJECT_TOKEN_MAX_BYTES": 16384,
    "DEFAULT_ALLOWED_ALGORITHMS": list(ASYMMETRIC_ALGORITHMS),
    "DEFAULT_CLOCK_SKEW_SECONDS": 60,
    "DEFAULT_MAX_TOKEN_AGE_SECONDS": 3600,
    "MAX_SUBJECT_LENGTH": 255,
    "MIN_RSA_KEY_BITS": 2048,
    "MAX_RSA_KEY_BITS": 8192,
    # JWKS fetching (WSO2's [oauth.jwks_endpoint] defaults: 1000 ms / 1000 ms)
    "JWKS_CONNECT_TIMEOUT_MS": 1000,
    "JWKS_READ_TIMEOUT_MS": 1000,
    "JWKS_TOTAL_TIMEOUT_MS": 2000,
    "JWKS_MAX_BYTES": 65536,
    "JWKS_MAX_KEYS": 100,
    "JWKS_CACHE_SECONDS": 300,
    "JWKS_STALE_IF_ERROR_SECONDS": 3600,
    "JWKS_REFETCH_COOLDOWN_SECONDS": 30,
    "JWKS_ALLOW_HTTP": False,
    "JWKS_ALLOW_PRIVATE_ADDRESSES": True,
    # Client-authentication brute-force throttling (see exchange/throttling.py)
    "CLIENT_AUTH_THROTTLE_WINDOW_SECONDS": 300,
    "CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 20,
    "CLIENT_AUTH_MAX_FAILURES_PER_CLIENT": 100,
    # Console sign-in: the same counters and window, per username (identity_console/console.py)
    "CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS": 10,
    "CONSOLE_LOGIN_MAX_FAILURES_PER_USERNAME": 50,
    # Issued tokens
    "ACCESS_TOKEN_LIFETIME_SECONDS": 3600,
    # Upper bound of every access-token lifetime (server default, per application, management)
    "MAX_TOKEN_LIFETIME_SECONDS": 86400,
    # Tokens carrying the management scope live at most this long, whatever the application says
    "MANAGEMENT_TOKEN_LIFETIME_SECONDS": 3600,
    "SIGNING_ALGORITHM": "RS256",
    "SIGNING_KEY_FILE": "",
    "SIGNING_KEY_ID": "",
    # In-process caches of issuers and applications (exchange/registry.py)
    "REGISTRY_CHECK_MS": 1000,
    "REGISTRY_MAX_AGE_SECONDS": 60,
    # Key rotation (rotate_signing_key) and keys managed outside the database
    "SIGNING_KEY_PUBLISH_AHEAD_SECONDS": 600,
    "SIGNING_KEY_RELOAD_SECONDS": 30,
    "SIGNING_PUBLISHED_KEY_FILES": [],
    # Audit
    "AUDIT_RETENTION_DAYS": 90,
}

_TYPES = {key: type(value) for key, value in DEFAULTS.items()}


def _parse(key, raw):
    kind = _TYPES[key]
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind is int:
        return int(raw)
    if kind is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def from_environ(environ=None):
    """Return the overrides found in ``TOKEN_EXCHANGE_<KEY>`` environment variables."""
    environ = os.environ if environ is None else environ
    overrides = {}
    for key in DEFAULTS:
        raw = environ.get(f"TOKEN_EXCHANGE_{key}")
        if raw is not None and raw != "":
            overrides[key] = _parse(key, raw)
    return overrides


class ExchangeSettings:
    """Attribute access to ``settings.TOKEN_EXCHANGE`` merged over ``DEFAULTS``."""

    def __init__(self):
        self._cache = None

    def _load(self):
        from django.conf import settings

        merged = dict(DEFAULTS)
        merged.update(getattr(settings, "TOKEN_EXCHANGE", {}) or {})
        unknown = set(merged) - set(DEFAULTS)
        if unknown:
            raise AttributeError(f"Unknown TOKEN_EXCHANGE settings: {sorted(unknown)}")
        self._cache = merged
        return merged

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        values = self._cache or self._load()
        try:
            return values[name]
        except KeyError:
            raise AttributeError(f"Unknown TOKEN_EXCHANGE setting {name!r}") from None

    def reload(self):
        self._cache = None


exchange_settings = ExchangeSettings()


def _reload(*, setting, **kwargs):
    if setting in ("TOKEN_EXCHANGE", "CONSOLE_ISSUER"):
        exchange_settings.reload()


setting_changed.connect(_reload)
