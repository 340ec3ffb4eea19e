"""How this server uses the shared cache (Redis in production) when it cannot be reached.

Two policies, chosen per use:

- **fall back per process** (``jwks_cache``, ``throttle_cache``): JWKS documents
  and fetch cooldowns are an optimisation, and failed-authentication counters
  still slow a guesser down when each worker keeps its own; while Redis is
  unreachable they live in this process's memory instead.
- **fail closed** (``CACHE_ERRORS`` caught by the caller): the replay store must
  be shared to mean anything, so an exchange that needs it is refused while it
  is unreachable (subject_token.py).

After a failure the shared cache is skipped for ``SHARED_CACHE_RETRY_SECONDS``
(a worker does not wait on a dead Redis for every lookup); then it is tried again.
"""

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache

from . import metrics

log = logging.getLogger(__name__)

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis is a dependency
    RedisError = OSError

#: Exceptions the shared cache raises when its server is unreachable or misbehaving.
CACHE_ERRORS = (RedisError, OSError)


class FallbackCache:
    """The shared cache, or this process's memory while the shared cache is unreachable."""

    def __init__(self, use):
        self.use = use
        self.local = LocMemCache(f"identity-console-fallback-{use}", {"OPTIONS": {"MAX_ENTRIES": 1000}})
        self._down_until = 0.0
        self._lock = threading.Lock()

    def _shared(self, method, *args):
        if time.monotonic() < self._down_until:
            return None, False
        try:
            return getattr(cache, method)(*args), True
        except CACHE_ERRORS as exc:
            retry = getattr(settings, "SHARED_CACHE_RETRY_SECONDS", 5)
            with self._lock:
                if time.monotonic() >= self._down_until:
                    log.warning(
                        "Shared cache unreachable (%s); %s cached per process for %s s",
                        type(exc).__name__, self.use, retry,
                    )
                self._down_until = time.monotonic() + retry
            metrics.shared_cache_error(self.use)
            return None, False

    @property
    def degraded(self):
        return time.monotonic() < self._down_until

    def get(self, key, default=None):
        value, ok = self._shared("get", key, default)
        return value if ok else self.local.get(key, default)

    def set(self, key, value, timeout):
        _, ok = self._shared("set", key, value, timeout)
        if not ok:
            self.local.set(key, value, timeout)

    def add(self, key, value, timeout):
        added, ok = self._shared("add", key, value, timeout)
        return added if ok else self.local.add(key, value, timeout)

    def get_many(self, keys):
        values, ok = self._shared("get_many", keys)
        return values if ok else self.local.get_many(keys)

    def incr(self, key, delta=1):
        """Like the cache's ``incr`` (ValueError when the key is missing)."""
        value, ok = self._shared("incr", key, delta)
        return value if ok else self.local.incr(key, delta)

    def delete(self, key):
        self._shared("delete", key)
        self.local.delete(key)

    def clear_local(self):
        self.local.clear()
        self._down_until = 0.0


jwks_cache = FallbackCache("jwks")
throttle_cache = FallbackCache("throttle")
