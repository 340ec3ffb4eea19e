"""What every process of this server shares besides the database: Redis, or the database itself.

**Where shared state lives.** With ``REDIS_URL`` the default cache is Redis, shared by
every worker of every instance. Without it the default cache is this process's memory
(LocMemCache), which gunicorn's workers do not share; state that must be shared (the
replay store, the failed-authentication counters) then lives in the database instead,
in ``SharedCacheEntry`` rows (``DatabaseStore``). ``shared_store()`` names the one in use.

**When it cannot be reached.** Two policies, chosen per use:

- **fall back per process** (``jwks_cache``, ``throttle_cache``): JWKS documents
  and fetch cooldowns are an optimisation, and failed-authentication counters
  still slow a guesser down when each worker keeps its own; while Redis is
  unreachable they live in this process's memory instead.
- **fail closed** (``CACHE_ERRORS`` caught by the caller): the replay store must
  be shared to mean anything, so an exchange that needs it is refused while it
  is unreachable (subject_token.py uses ``shared_store()`` directly).

After a failure the shared cache is skipped for ``SHARED_CACHE_RETRY_SECONDS``
(a worker does not wait on a dead Redis for every lookup); then it is tried again.
"""

import itertools
import logging
import threading
import time

from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import setting_changed
from django.db import DatabaseError, connection
from django.db.models import F
from django.dispatch import receiver
from redis.exceptions import RedisError

from .conf import project_settings
from .models import SharedCacheEntry
from .ops import metrics

log = logging.getLogger(__name__)

#: Exceptions the shared store raises when its server is unreachable or misbehaving.
CACHE_ERRORS = (RedisError, OSError, DatabaseError)

_PRUNE_EVERY = 1000  # writes per process between deletions of expired DatabaseStore rows


_default_is_local = None  # default_cache_is_local(), once per process (and per CACHES setting in tests)


def default_cache_is_local():
    """True when Django's default cache lives in this process only (no ``REDIS_URL``)."""
    global _default_is_local
    if _default_is_local is None:  # asked twice per token request: look the backend up once
        _default_is_local = isinstance(_default(), (LocMemCache, DummyCache))
    return _default_is_local


@receiver(setting_changed)
def _caches_changed(setting, **kwargs):
    global _default_is_local
    if setting == "CACHES":
        _default_is_local = None


def _default():
    return caches["default"]


class DatabaseStore:
    """The few cache operations shared state needs, on ``SharedCacheEntry`` rows.

    ``add`` is one statement, atomic across processes and instances: an INSERT whose
    conflict on the primary key takes the row over only when it has expired
    (``ON CONFLICT … DO UPDATE … WHERE``, SQLite ≥ 3.35 and PostgreSQL), and which
    returns the key only when it stored the value. Being one statement, it needs no
    savepoint inside a caller's transaction (the grant records a subject token's ``jti``
    in the transaction that writes the issued token). ``get_many`` is one SELECT: both run
    on every token request without Redis, so they are plain SQL. Expired rows are ignored
    when read and deleted every ``_PRUNE_EVERY`` writes of a process.
    """

    def __init__(self):
        self._writes = itertools.count(1)
        self._sql = None

    def _statements(self):
        if self._sql is None:
            quote, model = connection.ops.quote_name, SharedCacheEntry
            table, key, value, expires = (quote(name) for name in (model._meta.db_table, "key", "value", "expires"))
            self._sql = {
                "add": f"INSERT INTO {table} ({key}, {value}, {expires}) VALUES (%(key)s, %(value)s, %(expires)s) "
                       f"ON CONFLICT ({key}) DO UPDATE SET {value} = excluded.{value}, {expires} = excluded.{expires} "
                       f"WHERE {table}.{expires} <= %(now)s RETURNING {key}",
                "get_many": f"SELECT {key}, {value} FROM {table} WHERE {expires} > %(now)s AND {key} IN ",
            }
        return self._sql

    @staticmethod
    def _rows(sql, params):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _wrote(self, now):
        if next(self._writes) % _PRUNE_EVERY == 0:
            SharedCacheEntry.objects.filter(expires__lte=now).delete()

    def get(self, key, default=None):
        return self.get_many([key]).get(key, default)

    def get_many(self, keys):
        params = {f"k{i}": key for i, key in enumerate(keys)}
        if not params:
            return {}
        params["now"] = time.time()
        sql = self._statements()["get_many"] + "(%s)" % ", ".join(f"%({name})s" for name in params if name != "now")
        return dict(self._rows(sql, params))

    def add(self, key, value, timeout):
        """Store ``value`` under ``key`` unless a live entry exists; True when stored."""
        now = time.time()
        self._wrote(now)
        params = {"key": key, "value": value, "expires": now + timeout, "now": now}
        return bool(self._rows(self._statements()["add"], params))

    def set(self, key, value, timeout):
        now = time.time()
        self._wrote(now)
        SharedCacheEntry.objects.update_or_create(key=key, defaults={"value": value, "expires": now + timeout})

    def incr(self, key, delta=1):
        """Add ``delta`` to a live entry and return the new value; ValueError when there is none."""
        live = SharedCacheEntry.objects.filter(key=key, expires__gt=time.time())
        if not live.update(value=F("value") + delta):
            raise ValueError(f"Key {key!r} not found")
        value = live.values_list("value", flat=True).first()
        if value is None:
            raise ValueError(f"Key {key!r} not found")
        return value

    def delete(self, key):
        SharedCacheEntry.objects.filter(key=key).delete()

    def clear(self):
        SharedCacheEntry.objects.all().delete()


database_store = DatabaseStore()


def shared_store():
    """Where state every process must see lives: the default cache when it is shared (Redis), else the database."""
    return database_store if default_cache_is_local() else _default()


class FallbackCache:
    """The shared cache (or with ``shared=True`` the shared store), or this process's memory while it is unreachable."""

    def __init__(self, use, *, shared=False):
        self.use = use
        self.backend = shared_store if shared else _default
        self.local = LocMemCache(f"identity-console-fallback-{use}", {"OPTIONS": {"MAX_ENTRIES": 1000}})
        self._down_until = 0.0
        self._lock = threading.Lock()

    def _shared(self, method, *args):
        if time.monotonic() < self._down_until:
            return None, False
        try:
            return getattr(self.backend(), method)(*args), True
        except CACHE_ERRORS as exc:
            retry = project_settings.SHARED_CACHE_RETRY_SECONDS
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


jwks_cache = FallbackCache("jwks")  # an optimisation: per process without Redis
throttle_cache = FallbackCache("throttle", shared=True)  # every worker counts together, Redis or not
