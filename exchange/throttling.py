"""Brute-force protection for client authentication (RFC 6749 §2.3.1, §10.10).

Failed client authentications at the token, introspection and revocation
endpoints are counted per presented ``client_id`` and per remote address, in
fixed time windows kept in the Django cache (Redis in production, so every
worker and instance shares the counters). Once a counter reaches its limit,
every request for that client or from that address is answered 429 with
``Retry-After`` until the window ends, whether or not its credentials are
right — otherwise the answers would keep confirming guesses.

Policy (``TOKEN_EXCHANGE`` settings): at most
``CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS`` failures per address and
``CLIENT_AUTH_MAX_FAILURES_PER_CLIENT`` per client id in each
``CLIENT_AUTH_THROTTLE_WINDOW_SECONDS`` window. Lockouts end with the window;
nothing is permanent. While the shared cache cannot be reached each process
counts on its own (exchange/shared_cache.py); should that fail too the throttle
fails open (and logs): client credentials are still checked. One address alone cannot lock a client out for others,
because its own limit stops it first (the per-client limit is higher).
"""

import hashlib
import logging
import math
import time

from . import client_auth
from .conf import exchange_settings
from .shared_cache import throttle_cache as cache  # per-process counters while Redis is down

log = logging.getLogger(__name__)


def presented_client_id(request):
    """The client id a Django request presents (Basic header or body), or None; never raises."""
    try:
        body = request.POST
        credentials = client_auth.extract(
            request.META.get("HTTP_AUTHORIZATION"), body.get("client_id"), body.get("client_secret")
        )
    except (client_auth.MalformedCredentials, client_auth.MultipleMethods):
        return None
    except Exception:  # an unreadable body (too big, bad multipart): the view answers it
        return None
    return credentials.client_id[: client_auth.MAX_CLIENT_ID_LENGTH]


def _window(now):
    length = exchange_settings.CLIENT_AUTH_THROTTLE_WINDOW_SECONDS
    start = int(now // length) * length
    return start, start + length


def _counters(client_id, address, start):
    s = exchange_settings
    digest = lambda value: hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]  # noqa: E731
    counters = []
    if address:
        counters.append((f"authfail:addr:{digest(address)}:{start}", s.CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS))
    if client_id:
        counters.append((f"authfail:client:{digest(client_id)}:{start}", s.CLIENT_AUTH_MAX_FAILURES_PER_CLIENT))
    return counters


def retry_after(client_id, address, *, now=None):
    """Seconds until this client and address may try again, or 0 when they are not throttled."""
    now = time.time() if now is None else now
    start, end = _window(now)
    counters = _counters(client_id, address, start)
    try:
        values = cache.get_many([key for key, _ in counters])
    except Exception:  # the shared cache is down: fail open (credentials are still checked)
        log.warning("Client-authentication throttle counters could not be read", exc_info=True)
        return 0
    if any(values.get(key, 0) >= limit for key, limit in counters):
        return max(1, math.ceil(end - now))
    return 0


def record_failure(client_id, address, *, now=None):
    """Count one failed client authentication for this client id and address."""
    now = time.time() if now is None else now
    start, end = _window(now)
    lifetime = math.ceil(end - now) + 1
    try:
        for key, _ in _counters(client_id, address, start):
            cache.add(key, 0, lifetime)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, lifetime)
    except Exception:
        log.warning("A failed client authentication could not be counted", exc_info=True)
