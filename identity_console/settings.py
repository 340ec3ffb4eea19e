"""Settings for Identity Console, read from the environment (12-factor).

Every value a deployment changes comes from an environment variable; see
docs/configuration.md. Local runs need none: SQLite under ``var/``,
the local-memory cache and a SECRET_KEY generated once into ``var/``.
"""

import os
import secrets
import stat
import tempfile
from pathlib import Path

import dj_database_url

from exchange.conf import DEFAULT_LOCAL_ISSUER, PROJECT_DEFAULTS, from_environ, read_local_server
from exchange.ops.logging import logging_config
from exchange.ops.proxies import parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent


def private_directory(path):
    """Create ``path`` readable by this user only (0700); tighten it if it is ours and more open.

    var/ holds the secret key, the demo issuer's private key and, on SQLite, the database (sessions,
    tokens, signing keys). A shared sticky directory such as /tmp is never changed.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077 and not info.st_mode & stat.S_ISVTX:
        path.chmod(0o700)
    return path


VAR_DIR = private_directory(Path(os.environ.get("VAR_DIR", BASE_DIR / "var")))


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name, default):
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _local_secret_key():
    """A key generated once per checkout and kept in var/, for local runs only."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        # Created 0600, never readable by others even for a moment.
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = os.environ.get("SECRET_KEY") or _local_secret_key()
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
DEBUG = env_bool("DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

#: This organization's issuer value: what a subject token's ``aud`` must contain
#: (or the trusted issuer's alias), and the ``iss`` of the tokens we issue.
#: One value for the server and every command run in this checkout: the environment's, else the one
#: ``make run`` recorded in var/ (``bootstrap --port``: http://localhost:<PORT>/oauth2/token), else port 8000's.
CONSOLE_ISSUER = (os.environ.get("CONSOLE_ISSUER") or read_local_server(VAR_DIR).get("issuer")
                  or DEFAULT_LOCAL_ISSUER)

INSTALLED_APPS = [
    "identity_console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "exchange",
]

MIDDLEWARE = [
    "exchange.ops.logging.RequestIdMiddleware",
    "exchange.ops.health.HealthCheckMiddleware",  # /healthz, /readyz: before host checks, for load balancers
    "exchange.ops.metrics.MetricsMiddleware",
    "exchange.ops.outage.DatabaseOutageMiddleware",  # a database outage raised by a view: 503 + Retry-After
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "exchange.ops.browser.AuthenticationMiddleware",
    "exchange.ops.browser.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Reverse proxies whose X-Forwarded-For names the client (comma-separated CIDRs; see
# exchange/ops/proxies.py). Empty: REMOTE_ADDR is the peer, as it should be without a proxy.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", PROJECT_DEFAULTS["TRUSTED_PROXIES"])
if TRUSTED_PROXIES:
    parse_networks(TRUSTED_PROXIES)  # a typo fails at start-up, not on the first request
    MIDDLEWARE.insert(0, "exchange.ops.proxies.TrustedProxyMiddleware")

ROOT_URLCONF = "identity_console.urls"
WSGI_APPLICATION = "identity_console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        # Persistent connections: opening one per request cost more than the whole
        # token exchange (measured with bench/; see docs/performance.md).
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "600")),
        # Off by default: on PostgreSQL it is a "SELECT 1" round trip per request. Without it a
        # connection the server closed (a restart) is dropped at the next request's start without
        # a round trip (exchange/ops/outage.py); docs/deployment.md compares the two.
        conn_health_checks=env_bool("CONN_HEALTH_CHECKS"),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's SQLite backend, whose transactions first take turns on a lock file: workers then
    # wait for each other there, not in SQLite's busy-handler sleeps (identity_console/sqlite/base.py).
    DATABASES["default"]["ENGINE"] = "identity_console.sqlite"
    # WAL lets readers run beside the one writer; the busy timeout makes concurrent
    # workers wait for the write lock instead of failing with "database is locked";
    # IMMEDIATE transactions take that lock up front (no deadlock on upgrade).
    # The PRAGMAs run once per connection, and connections persist (CONN_MAX_AGE).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    # Tests use a file too, not SQLite's in-memory shared cache: its table locks fail at once
    # ("database table is locked") where a file's busy timeout waits, so concurrency tests
    # would not see what production sees. One file per test process (removed at its end).
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"identity-console-test-{os.getpid()}.sqlite3"),
    }

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "idc",
            # A dead or hung Redis must not hold a worker: fail fast and degrade (exchange/shared_cache.py).
            "OPTIONS": {
                "socket_connect_timeout": float(os.environ.get("REDIS_CONNECT_TIMEOUT", "0.5")),
                "socket_timeout": float(os.environ.get("REDIS_TIMEOUT", "0.5")),
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "identity-console",
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# User passwords keep Django's stretching hasher (listed first). Client secrets are
# random and high-entropy, so they use a fast keyed hash instead (never first here).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "exchange.hashers.ClientSecretHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
#: One date format in the console, with the time zone (identity_console/formats/en/formats.py).
FORMAT_MODULE_PATH = ["identity_console.formats"]

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve straight from the apps in development and tests
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "console:login"

OAUTH2_PROVIDER_APPLICATION_MODEL = "exchange.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "exchange.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "exchange.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER = {
    "OAUTH2_SERVER_CLASS": "exchange.server.Server",
    "OIDC_SERVER_CLASS": "exchange.server.Server",
    "OAUTH2_VALIDATOR_CLASS": "exchange.oauth2_validators.OAuth2Validator",
    "SCOPES_BACKEND_CLASS": "exchange.scopes.ApplicationScopes",
    "ACCESS_TOKEN_GENERATOR": "exchange.signing.access_token_generator",
    "REFRESH_TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
    "CLIENT_SECRET_HASHER": "hmac_sha256",
    "CLIENT_SECRET_GENERATOR_LENGTH": 48,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    # RFC 9700 (OAuth 2.0 Security BCP) behaviour for what DOT offers beyond token exchange
    # (no implicit or password grant, S256 PKCE only, no tokens in URLs, iss in authorization
    # responses, a replayed refresh token revokes its family): `check --deploy` stays clean.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    # Production sets "https" only (docs/deployment.md); http stays allowed for loopback development.
    "ALLOWED_REDIRECT_URI_SCHEMES": env_list("OAUTH2_REDIRECT_URI_SCHEMES", ["http", "https"]),
    # Scopes are data: the scope registry (exchange/scopes.py, models.Scope), managed in the console and
    # the API. The scopes backend above reads it; DOT's SCOPES setting is not used.
    "SCOPES": {},
    "DEFAULT_SCOPES": [],
    # Sign-in for the registered applications: the validator asks exchange.signin.pkce_required (always for
    # public clients, for confidential ones unless TOKEN_EXCHANGE["PKCE_REQUIRED_FOR_CONFIDENTIAL_CLIENTS"]
    # is off; S256 only). True here is what DOT's own checks read.
    "PKCE_REQUIRED": True,
    # OpenID Connect: ID tokens signed with the console's own keys (signing.py), iss = CONSOLE_ISSUER.
    "OIDC_ENABLED": True,
    "OIDC_ISS_ENDPOINT": CONSOLE_ISSUER,
    "ID_TOKEN_EXPIRE_SECONDS": 3600,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "REQUEST_APPROVAL_PROMPT": "force",
}

#: Token-exchange knobs; defaults and meanings in exchange/conf.py.
TOKEN_EXCHANGE = from_environ()

# The management API (exchange/api/): bearer tokens first, so that a request without
# credentials gets 401 with a Bearer challenge; errors as RFC 9457 problem details.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "oauth2_provider.contrib.rest_framework.OAuth2Authentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["exchange.api.permissions.ManagementPermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["exchange.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "exchange.api.errors.problem_exception_handler",
    "UNICODE_JSON": False,  # \uXXXX escapes: any string (even an unpaired surrogate in a token's claims) renders
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Identity Console management API",
    "DESCRIPTION": (
        "Trusted token issuers, applications, local users and their linked identities, roles' scopes and "
        "subject-token checks. Authenticate with a console "
        "session (CSRF token on unsafe methods) or a bearer token with the `console:manage` scope "
        "(client_credentials at /oauth2/token). Errors are RFC 9457 problem details "
        "(`application/problem+json`)."
    ),
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": r"/api/server/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "exchange.api.schema.canonical_paths",
    ],
    "ENUM_NAME_OVERRIDES": {"KeySourceEnum": ["jwks", "pem"],
                            "LookupAttributeEnum": "exchange.models.LOOKUP_ATTRIBUTE_CHOICES"},
    "OAUTH2_FLOWS": ["clientCredentials"],
    "OAUTH2_TOKEN_URL": "/oauth2/token",
    "OAUTH2_SCOPES": {"console:manage": "Manage trusted token issuers and applications through the API"},
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if env_bool("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE")
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE")
# Behind a TLS-terminating proxy (docs/deployment.md): redirect http, send HSTS.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
# Prometheus scrapes each instance directly (plain http inside the network, METRICS_TOKEN).
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]

# -- Operations: logs, health, metrics -------------------------------------------------
# Defaults of the settings the app reads: exchange/conf.py, PROJECT_DEFAULTS.

#: "json" for one JSON object per line (with request_id); anything else for text lines.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()
LOGGING = logging_config(LOG_FORMAT, os.environ.get("LOG_LEVEL", "INFO"))

#: Bearer token that /metrics requires (unset: no token accepted).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", PROJECT_DEFAULTS["METRICS_TOKEN"])
#: Client networks (CIDR, comma-separated) allowed to read /metrics without the token.
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", PROJECT_DEFAULTS["METRICS_ALLOWED_NETWORKS"])
if METRICS_ALLOWED_NETWORKS:
    parse_networks(METRICS_ALLOWED_NETWORKS)  # a typo fails at start-up, not as a 500 on every scrape
#: /readyz answers 503 when the shared cache is unreachable (default: 200, "degraded").
HEALTH_CACHE_REQUIRED = env_bool("HEALTH_CACHE_REQUIRED", PROJECT_DEFAULTS["HEALTH_CACHE_REQUIRED"])
#: After a shared-cache failure, seconds during which a worker uses its own memory for JWKS.
SHARED_CACHE_RETRY_SECONDS = float(os.environ.get("SHARED_CACHE_RETRY_SECONDS") or PROJECT_DEFAULTS["SHARED_CACHE_RETRY_SECONDS"])
