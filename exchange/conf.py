"""The app's settings, all read here: ``exchange_settings`` and ``project_settings``.

``exchange_settings.KEY`` — the token-exchange knobs, one namespaced dict (the
DRF/django-oauth-toolkit pattern): ``settings.TOKEN_EXCHANGE`` holds overrides of
``DEFAULTS``; every key can also be set from the environment as
``TOKEN_EXCHANGE_<KEY>`` (see ``from_environ``), which is how
``identity_console.settings`` builds the dict.

``project_settings.NAME`` — the few top-level settings the app shares with the
project and the deployment (its issuer URL, its data folder, who may read the
operations endpoints), resolved against ``PROJECT_DEFAULTS``; a ``REQUIRED``
name must be set by the project.

The app reads no other setting of its own: ``django.conf.settings`` is read
directly only for Django's and django-oauth-toolkit's (``SECRET_KEY``,
``AUTH_USER_MODEL``, ``PASSWORD_HASHERS``, ``OAUTH2_PROVIDER``). Both objects
cache what they read and forget it on ``setting_changed``, so tests that
override settings see their values.
"""

import json
import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
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
    # An unknown kid refetches at most once per cooldown: a rotated-in key works within ~10 s
    # (Keycloak's minTimeBetweenJwksRequests), and a storm of made-up kids costs one fetch per 10 s.
    "JWKS_REFETCH_COOLDOWN_SECONDS": 10,
    "JWKS_ALLOW_HTTP": False,
    "JWKS_ALLOW_PRIVATE_ADDRESSES": True,
    # Client-authentication brute-force throttling (see exchange/throttling.py)
    "CLIENT_AUTH_THROTTLE_WINDOW_SECONDS": 300,
    "CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 20,
    "CLIENT_AUTH_MAX_FAILURES_PER_CLIENT": 100,
    # Console sign-in: the same counters and window, per username (identity_console/console.py)
    "CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS": 10,
    "CONSOLE_LOGIN_MAX_FAILURES_PER_USERNAME": 50,
    # Sign-in for the registered applications (exchange/signin.py): public clients always need PKCE
    "PKCE_REQUIRED_FOR_CONFIDENTIAL_CLIENTS": True,
    # Issued tokens
    "ACCESS_TOKEN_LIFETIME_SECONDS": 3600,
    # Upper bound of every access-token lifetime (server default, per application, management)
    "MAX_TOKEN_LIFETIME_SECONDS": 86400,
    # Tokens carrying the management scope live at most this long, whatever the application says
    "MANAGEMENT_TOKEN_LIFETIME_SECONDS": 3600,
    "SIGNING_ALGORITHM": "RS256",
    "SIGNING_KEY_FILE": "",
    "SIGNING_KEY_ID": "",
    # Signing private keys in the database are encrypted with a key derived from this secret, else
    # from SECRET_KEY; the fallbacks (else SECRET_KEY_FALLBACKS) still decrypt (exchange/secrets_at_rest.py)
    "SIGNING_KEY_ENCRYPTION_KEY": "",
    "SIGNING_KEY_ENCRYPTION_KEY_FALLBACKS": [],
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

#: Marks a project-level setting without a default: the project must define it.
REQUIRED = object()

#: Top-level settings (``settings.NAME``) the app reads, with their defaults. The project
#: sets them from plain environment variables of the same name (identity_console/settings.py).
PROJECT_DEFAULTS = {
    # This server's issuer URL: ``iss`` of the tokens it issues, the ``aud`` subject tokens must carry,
    # the issuer in the discovery document.
    "CONSOLE_ISSUER": REQUIRED,
    # A writable folder (pathlib.Path): the registry version file, the demo issuer's key.
    "VAR_DIR": REQUIRED,
    # Reverse proxies (CIDRs) whose X-Forwarded-For names the client (exchange/ops/proxies.py).
    "TRUSTED_PROXIES": [],
    # /metrics: the bearer token it accepts ("" accepts none) and the networks (CIDRs) it
    # answers without one; with neither it answers 403 (exchange/ops/metrics.py).
    "METRICS_TOKEN": "",
    "METRICS_ALLOWED_NETWORKS": [],
    # /readyz answers 503, not 200 "degraded", while the shared cache is unreachable (exchange/ops/health.py).
    "HEALTH_CACHE_REQUIRED": False,
    # After a shared-cache failure, seconds during which a worker keeps its own copy (exchange/shared_cache.py).
    "SHARED_CACHE_RETRY_SECONDS": 5,
}

#: Written into VAR_DIR by ``bootstrap --port`` (``make run``): the issuer and URL of the server this
#: checkout serves, so that the server and every command run in the checkout agree without exports.
LOCAL_SERVER_FILE = "local_server.json"
#: The issuer of a local run when nothing else says otherwise.
DEFAULT_LOCAL_ISSUER = "http://localhost:8000/oauth2/token"


def local_issuer(port):
    """The issuer of a server run on localhost:``port`` (its token endpoint's URL)."""
    return f"http://localhost:{int(port)}/oauth2/token"


def read_local_server(var_dir):
    """The local server's record in ``var_dir`` (``{"issuer": …, "server_url": …}``), or {} without one."""
    try:
        record = json.loads((var_dir / LOCAL_SERVER_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {k: v for k, v in record.items() if k in ("issuer", "server_url") and isinstance(v, str) and v}


def write_local_server(var_dir, issuer, server_url):
    """Record the issuer and URL of the server this checkout serves (read back by the settings)."""
    path = var_dir / LOCAL_SERVER_FILE
    path.write_text(json.dumps({"issuer": issuer, "server_url": server_url}, indent=2) + "\n")


def server_url_of(issuer):
    """The origin of an issuer URL (``http://localhost:8101`` for ``http://localhost:8101/oauth2/token``)."""
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


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


class ProjectSettings:
    """Attribute access to the top-level settings named in ``PROJECT_DEFAULTS``, each read once."""

    def __init__(self):
        self._cache = {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._cache[name]
        except KeyError:
            pass
        if name not in PROJECT_DEFAULTS:
            raise AttributeError(f"{name!r} is not a project setting the exchange app reads (see PROJECT_DEFAULTS)")
        value = getattr(settings, name, PROJECT_DEFAULTS[name])
        if value is REQUIRED:
            raise ImproperlyConfigured(f"The exchange app needs the {name} setting.")
        self._cache[name] = value
        return value

    def reload(self):
        self._cache = {}


exchange_settings = ExchangeSettings()
project_settings = ProjectSettings()


def _reload(*, setting, **kwargs):
    if setting == "TOKEN_EXCHANGE":
        exchange_settings.reload()
    elif setting in PROJECT_DEFAULTS:
        project_settings.reload()


setting_changed.connect(_reload)
