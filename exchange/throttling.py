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
nothing is permanent. While the shared cache cannot be reached the counters live
in the database (exchange/shared_cache.py), still shared by every process; should
that fail too the throttle fails open (and logs): client credentials are still
checked. One address alone cannot lock a client out for others,
because its own limit stops it first (the per-client limit is higher).

The console's sign-in form is guarded the same way (``CONSOLE_LOGIN`` policy, per
username and per address, identity_console/console.py): a password guesser gets 429
once ``CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS`` or ``…_PER_USERNAME`` is reached. The
applications' sign-in page (exchange/signin.py) uses the same policy and the same counters
through ``throttled_sign_in``: guesses on either page count together.
"""

import hashlib
import logging
import math
import time
from typing import NamedTuple

from django.contrib.auth.forms import UsernameField

from . import client_auth
from .conf import exchange_settings
from .ops import outage
from .shared_cache import throttle_cache as cache  # in the database while Redis is down

log = logging.getLogger(__name__)

#: The sign-in forms' own cleaning of the username (strip, then NFKC when short enough to name a user).
_USERNAME = UsernameField(max_length=150)


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


class Policy(NamedTuple):
    """What is counted: the cache key prefixes and the settings naming each limit."""

    prefix: str  # cache keys: f"{prefix}:addr:…" and f"{prefix}:{name}:…"
    name: str  # what the second counter counts per: a client id, a username
    address_limit: str
    name_limit: str


CLIENT_AUTH = Policy("authfail", "client", "CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS", "CLIENT_AUTH_MAX_FAILURES_PER_CLIENT")
CONSOLE_LOGIN = Policy("loginfail", "user", "CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS",
                       "CONSOLE_LOGIN_MAX_FAILURES_PER_USERNAME")


def _window(now):
    length = exchange_settings.CLIENT_AUTH_THROTTLE_WINDOW_SECONDS
    start = int(now // length) * length
    return start, start + length


def _counters(name, address, start, policy=CLIENT_AUTH):
    s = exchange_settings
    digest = lambda value: hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]  # noqa: E731
    counters = []
    if address:
        counters.append((f"{policy.prefix}:addr:{digest(address)}:{start}", getattr(s, policy.address_limit)))
    if name:
        counters.append((f"{policy.prefix}:{policy.name}:{digest(name)}:{start}", getattr(s, policy.name_limit)))
    return counters


def retry_after(name, address, *, now=None, policy=CLIENT_AUTH):
    """Seconds until this client id (or username) and address may try again, or 0 when they are not throttled."""
    now = time.time() if now is None else now
    start, end = _window(now)
    counters = _counters(name, address, start, policy)
    try:
        values = cache.get_many([key for key, _ in counters])
    except Exception as exc:  # the shared cache is down: fail open (credentials are still checked)
        if outage.database_unavailable(exc):
            raise  # counters kept in the database, and it is down: a 503 (exchange/ops/outage.py), no traceback
        log.warning("Client-authentication throttle counters could not be read", exc_info=True)
        return 0
    if any(values.get(key, 0) >= limit for key, limit in counters):
        return max(1, math.ceil(end - now))
    return 0


def record_failure(name, address, *, now=None, policy=CLIENT_AUTH):
    """Count one failed client authentication (or sign-in) for this client id (or username) and address."""
    now = time.time() if now is None else now
    start, end = _window(now)
    lifetime = math.ceil(end - now) + 1
    try:
        for key, _ in _counters(name, address, start, policy):
            cache.add(key, 0, lifetime)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, lifetime)
    except Exception as exc:
        if outage.database_unavailable(exc):
            raise
        log.warning("A failed client authentication could not be counted", exc_info=True)


def withdraw_failure(name, address, *, now, policy=CLIENT_AUTH):
    """Take back one failure counted by ``record_failure(..., now=now)`` before a check that then passed."""
    start, _ = _window(now)
    try:
        for key, _ in _counters(name, address, start, policy):
            try:
                cache.incr(key, -1)
            except ValueError:  # the counter expired meanwhile: nothing to take back
                pass
    except Exception as exc:
        if outage.database_unavailable(exc):
            raise
        log.warning("A counted sign-in attempt could not be taken back", exc_info=True)


def sign_in_name(raw):
    """The username a sign-in POST is counted for, as the form reads it (stripped, NFKC): " root" and
    "ｒｏｏｔ" are root's guesses too. Never raises."""
    try:
        return _USERNAME.to_python(raw if isinstance(raw, str) else "") or ""
    except Exception:  # e.g. a lone surrogate: counted under the raw text
        return raw if isinstance(raw, str) else ""


def throttled_sign_in(username, address, attempt, signed_in, *, policy=CONSOLE_LOGIN):
    """Run a sign-in ``attempt()`` unless this username or address is throttled: (seconds to wait, None)
    when it is, else (0, what ``attempt`` returned).

    The attempt is counted as a failure before the (slow) password check and taken back when
    ``signed_in(result)``: guesses sent in parallel see each other's counts instead of all slipping
    past the limit together. The console's sign-in and the applications' sign-in both come here.
    """
    now = time.time()
    wait = retry_after(username, address, now=now, policy=policy)
    if wait:
        return wait, None
    record_failure(username, address, now=now, policy=policy)
    result = attempt()
    if signed_in(result):
        withdraw_failure(username, address, now=now, policy=policy)
    return 0, result
