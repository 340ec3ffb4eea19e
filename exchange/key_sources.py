"""Where a trusted issuer's verification keys come from: its JWKS endpoint or its PEM certificates.

Trust is per issuer: every key returned here belongs to the issuer it was asked
for, from the source registered for that issuer — never from a URL or key in a
token header.

JWKS documents are fetched with a connect timeout, a per-read timeout, a total
deadline, a size cap, no redirects and no ambient credentials; the document is
kept in the shared cache (so every worker and instance sees one copy) and its
parsed keys in this process. An unknown ``kid`` causes at most one refetch per
cooldown window per issuer, and a failed refetch never replaces good keys
(stale-if-error, bounded by ``JWKS_STALE_IF_ERROR_SECONDS``).
"""

import hashlib
import ipaddress
import json
import logging
import socket
import threading
import time
import math
from dataclasses import dataclass, field

import certifi
import urllib3
from django.db import DatabaseError
from django.utils import timezone
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from . import certificates
from .conf import exchange_settings
from .models import TrustedTokenIssuer
from .ops import metrics
from .shared_cache import jwks_cache as cache  # per-process fallback while Redis is down

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerificationKey:
    kid: str | None
    key: object
    algorithms: frozenset
    source: str  # "jwks" or "pem"
    description: str
    not_before: object = None  # a PEM certificate's validity window (aware datetimes; None: unbounded)
    not_after: object = None
    # The window as Unix times, computed once: valid_at runs for every candidate key of every exchange.
    _valid_from: float = field(init=False, repr=False, compare=False, default=-math.inf)
    _valid_until: float = field(init=False, repr=False, compare=False, default=math.inf)

    def __post_init__(self):
        if self.not_before is not None:
            object.__setattr__(self, "_valid_from", self.not_before.timestamp())
        if self.not_after is not None:
            object.__setattr__(self, "_valid_until", self.not_after.timestamp())

    def valid_at(self, now):
        """Whether the Unix time ``now`` is within the key's validity window, both ends included.

        The one statement of the window: the subject-token check and the API's key listing use it.
        """
        return self._valid_from <= now <= self._valid_until


class KeySourceError(Exception):
    """The key source could not be read; ``detail`` is safe to show to administrators."""

    def __init__(self, detail):
        super().__init__(detail)
        self.detail = detail


_JWK_LOADERS = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}


def parse_jwks(document):
    """Keys usable for verifying signatures, from a JWKS document (any JSON value).

    Skips, rather than fails on, members that are malformed, symmetric (``oct``),
    private, meant for encryption, weak, or whose ``kid`` is shared by another
    key (an ambiguous ``kid`` could select a key the issuer did not mean).
    Raises KeySourceError when the document is not a key set at all.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeySourceError("The response is not a JWKS document (no \"keys\" list).")
    members = document["keys"]
    if len(members) > exchange_settings.JWKS_MAX_KEYS:
        raise KeySourceError(f"The JWKS holds {len(members)} keys; at most {exchange_settings.JWKS_MAX_KEYS} are accepted.")
    keys = []
    kid_counts = {}
    for member in members:
        if isinstance(member, dict) and isinstance(member.get("kid"), str):
            kid_counts[member["kid"]] = kid_counts.get(member["kid"], 0) + 1
    for member in members:
        key = _parse_jwk(member, kid_counts)
        if key is not None:
            keys.append(key)
    return keys


def _parse_jwk(member, kid_counts):
    if not isinstance(member, dict):
        return None
    kid = member.get("kid")
    if kid is not None and (not isinstance(kid, str) or kid_counts.get(kid, 0) > 1):
        return None
    loader = _JWK_LOADERS.get(member.get("kty"))
    if loader is None:  # "oct" and unknown types: never a third party's verification key
        return None
    if member.get("use", "sig") != "sig":
        return None
    key_ops = member.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    if any(private in member for private in ("d", "p", "q", "dp", "dq", "qi")):
        return None
    try:
        key = loader.from_jwk(member)
        description = certificates.describe_key(key)
    except Exception:  # PyJWT and cryptography raise several types for bad members
        return None
    algorithms = certificates.algorithms_for_key(key)
    alg = member.get("alg")
    if alg is not None:
        if alg not in algorithms:
            return None
        algorithms = {alg}
    return VerificationKey(kid, key, frozenset(algorithms), "jwks", description)


class _Watchdog:
    """Shuts the fetch's sockets down when the total deadline passes.

    Socket timeouts apply per read, so a server trickling one byte per read
    (in the headers or the body) would otherwise hold the worker for ever.
    """

    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self._sockets = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock):
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shut(sock)

    def expire(self):
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock):
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self):
        self._timer.cancel()

    @property
    def passed(self):
        return self.expired or time.monotonic() > self.deadline


class _ForbiddenAddress(Exception):
    """The JWKS host resolved to an address the settings forbid (checked on the connected socket)."""


def forbidden_peer(url_host, peer):
    """True when JWKS_ALLOW_PRIVATE_ADDRESSES is off and ``peer`` is internal.

    Checked after DNS resolution, on the address actually connected to, so a
    public-looking name that resolves (or rebinds) to an internal address is
    refused. Loopback stays allowed only when the URL names it explicitly.
    """
    if exchange_settings.JWKS_ALLOW_PRIVATE_ADDRESSES:
        return False
    address = ipaddress.ip_address(peer.split("%", 1)[0])
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    if address.is_loopback:
        host = url_host.strip("[]").lower()
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host != "localhost"
    return address.is_private or address.is_link_local or address.is_reserved or address.is_multicast or address.is_unspecified


class _WatchedConnectionMixin:
    def __init__(self, *args, watchdog, **kwargs):
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog

    def connect(self):
        super().connect()
        self._watchdog.watch(self.sock)
        if forbidden_peer(self.host, self.sock.getpeername()[0]):
            self.sock.close()
            raise _ForbiddenAddress


class _HTTPConnection(_WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def fetch_jwks(url):
    """GET a JWKS document within the configured limits. Raises KeySourceError (see fetch_json)."""
    return fetch_json(url, "JWKS", "application/json, application/jwk-set+json")


def fetch_json(url, name, accept="application/json"):
    """GET a JSON document within the JWKS fetching limits; ``name`` names it in errors. Raises KeySourceError.

    Used for JWKS documents and for OpenID discovery documents (discovery.py) alike.

    Limits: connect and per-read timeouts, a total deadline (enforced by a
    watchdog that shuts the socket down), a size cap, identity encoding only,
    no redirects, no retries, no proxies, cookies or credentials, TLS verified.
    """
    s = exchange_settings
    parts = urllib3.util.parse_url(url)
    if parts.scheme not in ("http", "https") or not parts.host:
        raise KeySourceError(f"The {name} URL is not an http(s) URL.")
    watchdog = _Watchdog(s.JWKS_TOTAL_TIMEOUT_MS / 1000)
    options = {
        "timeout": urllib3.Timeout(connect=s.JWKS_CONNECT_TIMEOUT_MS / 1000, read=s.JWKS_READ_TIMEOUT_MS / 1000),
        "retries": False,
        "maxsize": 1,
        "watchdog": watchdog,
    }
    if parts.scheme == "https":
        pool = _HTTPSPool(parts.host, parts.port, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(), **options)
    else:
        pool = _HTTPPool(parts.host, parts.port, **options)
    body = bytearray()
    try:
        response = pool.urlopen(
            "GET", parts.request_uri,
            headers={"Accept": accept, "User-Agent": "identity-console"},
            redirect=False, retries=False, preload_content=False, decode_content=False,
        )
        try:
            if 300 <= response.status < 400:
                raise KeySourceError(f"The {name} endpoint redirected (HTTP {response.status}); redirects are not followed.")
            if response.status != 200:
                raise KeySourceError(f"The {name} endpoint answered HTTP {response.status}.")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > s.JWKS_MAX_BYTES:
                raise KeySourceError(f"The {name} response is larger than {s.JWKS_MAX_BYTES} bytes.")
            if response.headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
                raise KeySourceError(f"The {name} response is compressed; only identity encoding is accepted.")
            while True:
                chunk = response.read1(4096)
                if watchdog.passed:
                    raise KeySourceError(f"The {name} endpoint did not answer within the time limit.")
                if not chunk:
                    break
                body += chunk
                if len(body) > s.JWKS_MAX_BYTES:
                    raise KeySourceError(f"The {name} response is larger than {s.JWKS_MAX_BYTES} bytes.")
        finally:
            response.release_conn()
    except KeySourceError:
        raise
    except _ForbiddenAddress:
        raise KeySourceError(f"The {name} host resolves to a private or internal address, which the settings forbid.") from None
    except Exception as exc:  # urllib3 and ssl raise many types: timeouts, resets, protocol errors
        if isinstance(exc, urllib3.exceptions.NewConnectionError):  # (a ConnectTimeoutError subclass)
            raise KeySourceError(f"The {name} endpoint could not be reached.") from None
        if watchdog.passed or isinstance(exc, urllib3.exceptions.TimeoutError):
            raise KeySourceError(f"The {name} endpoint did not answer within the time limit.") from None
        raise KeySourceError(f"The {name} endpoint could not be read.") from None
    finally:
        watchdog.cancel()
        pool.close()
    try:
        return json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise KeySourceError(f"The {name} response is not valid JSON.") from None


# -- caching ---------------------------------------------------------------

_locks = {}
_locks_guard = threading.Lock()
_parsed = {}  # (issuer pk, fetched_at) -> [VerificationKey]
# shared-cache key -> (monotonic read time, state): spares a shared-cache read per request, trusted
# for REGISTRY_CHECK_MS only, so a key removed by another process's refetch stops working within that.
_recent = {}


def _issuer_lock(pk):
    with _locks_guard:
        return _locks.setdefault(pk, threading.Lock())


def _cache_key(issuer):
    digest = hashlib.sha256(issuer.jwks_uri.encode()).hexdigest()[:16]
    return f"jwks:{issuer.pk}:{digest}"


def _keys_from_state(issuer, state):
    marker = (issuer.pk, state["fetched_at"], state.get("uri"))
    keys = _parsed.get(marker)
    if keys is None:
        keys = parse_jwks(state["doc"])
        if len(_parsed) > 256:
            _parsed.clear()
        _parsed[marker] = keys
    return keys


def known_keys(previous, keys, now):
    """The keys of a successful fetch as stored for the console: kid, type, size, algorithms, source, and
    when each was first seen (kept from ``previous`` for a key fetched before) and last seen (``now``)."""
    seen = {(k.get("kid"), k.get("key")): k.get("first_seen") for k in previous or [] if isinstance(k, dict)}
    stamp = now.isoformat()
    return [
        {"kid": key.kid, "key": key.description, "type": key.description.split(" ")[0],
         "algorithms": sorted(key.algorithms), "source": key.source,
         "first_seen": seen.get((key.kid, key.description)) or stamp, "last_seen": stamp}
        for key in keys
    ]


def _record_fetch(issuer, error=None, keys=()):
    now = timezone.now()
    if error is None:
        fields = {"keys_fetched_at": now, "key_fetch_error": ""}
        try:
            previous = TrustedTokenIssuer.objects.filter(pk=issuer.pk).values_list("known_keys", flat=True).first()
        except DatabaseError:
            previous = None
        fields["known_keys"] = known_keys(previous, keys, now)
    else:
        fields = {"key_fetch_error": error[:200], "key_fetch_failed_at": now}
    try:
        TrustedTokenIssuer.objects.filter(pk=issuer.pk).update(**fields)
    except DatabaseError:  # key-source health is informative: never fail an exchange over it
        log.warning("Could not record the JWKS fetch result for trusted issuer %s", issuer.pk)
    for name, value in fields.items():
        setattr(issuer, name, value)


def refresh_jwks(issuer):
    """Fetch the issuer's JWKS now and store it; returns the keys. Raises KeySourceError."""
    started = time.monotonic()
    try:
        document = fetch_jwks(issuer.jwks_uri)
        parse_jwks(document)  # validate it: a document that is not a JWKS within limits is a failed fetch
    except KeySourceError as exc:
        metrics.jwks_fetched(issuer, False, time.monotonic() - started)
        log.warning("JWKS fetch failed for trusted issuer %s: %s", issuer.pk, exc.detail)
        _record_fetch(issuer, exc.detail)
        raise
    metrics.jwks_fetched(issuer, True, time.monotonic() - started)
    state = {"fetched_at": time.time(), "doc": document, "uri": issuer.jwks_uri}
    cache.set(_cache_key(issuer), state, exchange_settings.JWKS_STALE_IF_ERROR_SECONDS)
    _recent.pop(_cache_key(issuer), None)
    keys = _keys_from_state(issuer, state)
    _record_fetch(issuer, keys=keys)
    return keys


def jwks_keys(issuer, kid=None):
    """The issuer's JWKS keys, fetched when absent or stale, or refetched once for an unknown kid."""
    s = exchange_settings
    key = _cache_key(issuer)
    read_at, state = _recent.get(key, (None, None))
    if (state is not None and (time.monotonic() - read_at) * 1000 < s.REGISTRY_CHECK_MS
            and time.time() - state["fetched_at"] < s.JWKS_CACHE_SECONDS):
        keys = _keys_from_state(issuer, state)
        if kid is None or any(k.kid == kid for k in keys):
            metrics.jwks_cache_lookup(issuer, hit=True)
            return keys
    state = cache.get(key)
    if state is not None:
        if len(_recent) > 256:
            _recent.clear()
        _recent[key] = (time.monotonic(), state)
        keys = _keys_from_state(issuer, state)
        fresh = time.time() - state["fetched_at"] < s.JWKS_CACHE_SECONDS
        if fresh and (kid is None or any(k.kid == kid for k in keys)):
            metrics.jwks_cache_lookup(issuer, hit=True)
            return keys
    metrics.jwks_cache_lookup(issuer, hit=False)
    with _issuer_lock(issuer.pk):
        # Another thread may have fetched while this one waited.
        newer = cache.get(key)
        if newer is not None and (state is None or newer["fetched_at"] != state["fetched_at"]):
            return _keys_from_state(issuer, newer)
        if not cache.add(f"{key}:cooldown", 1, s.JWKS_REFETCH_COOLDOWN_SECONDS):
            # A fetch happened (or is happening) recently: serve what we have.
            if state is not None:
                return _keys_from_state(issuer, state)
            failure = cache.get(f"{key}:error")
            if failure is not None:  # the last fetch failed: fail fast until the cooldown ends
                raise KeySourceError(failure)
            newer = _wait_for_fetch(key)
            if newer is None:
                raise KeySourceError("The JWKS endpoint could not be read recently; retrying after a cooldown.")
            return _keys_from_state(issuer, newer)
        try:
            return refresh_jwks(issuer)
        except KeySourceError as exc:
            if state is not None:
                return _keys_from_state(issuer, state)  # stale-if-error
            cache.set(f"{key}:error", exc.detail, s.JWKS_REFETCH_COOLDOWN_SECONDS)
            raise


def _wait_for_fetch(key):
    """Another process holds the fetch: wait for its result up to the fetch deadline."""
    deadline = time.monotonic() + exchange_settings.JWKS_TOTAL_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        state = cache.get(key)
        if state is not None:
            return state
        if cache.get(f"{key}:error") is not None:
            return None
        time.sleep(0.05)
    return None


_pem_cache = {}


def pem_keys(issuer):
    """Keys from the issuer's registered certificates (parsed once per process).

    An issuer from the registry has its certificates prefetched and is replaced, never
    changed, when they change: its keys are then also kept on the instance.
    """
    prefetched = "certificates" in getattr(issuer, "_prefetched_objects_cache", ())
    if prefetched and "_pem_keys" in issuer.__dict__:
        return issuer.__dict__["_pem_keys"]
    pems = [cert.pem for cert in issuer.certificates.all()]
    marker = (issuer.pk, tuple(pems))
    keys = _pem_cache.get(marker)
    if keys is None:
        keys = []
        for pem in pems:
            try:
                info = certificates.inspect_pem(pem, check_validity=False)
            except certificates.CertificateError:
                continue
            keys.append(VerificationKey(
                None, info.public_key, frozenset(certificates.algorithms_for_key(info.public_key)),
                "pem", info.key_description, info.not_before, info.not_after,
            ))
        if len(_pem_cache) > 256:
            _pem_cache.clear()
        _pem_cache[marker] = keys
    if prefetched:
        issuer.__dict__["_pem_keys"] = keys
    return keys


def clear_caches():
    """Forget parsed keys in this process (tests; issuer edits)."""
    _parsed.clear()
    _recent.clear()
    _pem_cache.clear()
    cache.clear_local()
