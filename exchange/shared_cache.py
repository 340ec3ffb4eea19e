"""What every process of this server shares besides the database: Redis, or the database itself.

**Where shared state lives.** With ``REDIS_URL`` the default cache is Redis, shared by
every worker of every instance. Without it the default cache is this process's memory
(LocMemCache), which gunicorn's workers do not share; state that must be shared then
lives in the database, in ``SharedCacheEntry`` rows (``DatabaseStore``).

**The replay record is the database's, in every mode** (``replay_record``): one row per
consumed (issuer, ``jti``), written by the exchange's own transaction, with or without Redis,
and Redis is not asked at all. A Redis restarted empty, an eviction or a failover therefore
forgets nothing. (A copy in Redis, to refuse replays before the database, was measured: its
round trip cost the exchange more than the INSERT it would spare a replay, which is rare.)

**When Redis cannot be reached** each use has a stand-in (``FallbackCache``):

- ``jwks_cache``: this process's memory (JWKS documents and fetch cooldowns per worker);
- ``throttle_cache``: the database (failed-authentication counters stay shared).

After a failure Redis is skipped for ``SHARED_CACHE_RETRY_SECONDS`` (a worker does not wait on
a dead Redis for every lookup), then tried again. Each operation served by a stand-in is counted
(``idc_shared_cache_fallbacks_total``); the outage is logged once per ``OUTAGE_LOG_SECONDS`` per
process, and its end once.
"""

import itertools
import logging
import threading
import time

from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import setting_changed
from django.db import DatabaseError, connection, transaction
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
    on every token request (``add``) or without Redis (``get_many``), so they are plain SQL.
    Expired rows are ignored when read, deleted by ``prune`` (``prune_audit``) and every
    ``_PRUNE_EVERY`` writes of a process, after the writer's transaction.
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
            # After the caller's transaction (an exchange's), not in it: its locks stay short, and
            # two processes deleting the same rows cannot deadlock a token request.
            transaction.on_commit(lambda: self._delete_expired(now))

    def _delete_expired(self, now):
        try:
            SharedCacheEntry.objects.filter(expires__lte=now).delete()
        except DatabaseError:  # another process may be deleting them too; prune_audit catches up
            log.warning("Expired shared-state rows could not be deleted now", exc_info=True)

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

    def prune(self, *, now=None, dry_run=False, batch_size=5000):
        """Delete expired rows (used replay records, ended throttle windows); return how many (would) go."""
        cutoff = time.time() if now is None else now
        expired = SharedCacheEntry.objects.filter(expires__lte=cutoff)
        if dry_run:
            return expired.count()
        deleted = 0
        while True:
            # Batches keep each transaction (and its locks) short on a large table.
            batch = list(expired.values_list("key", flat=True)[:batch_size])
            if not batch:
                return deleted
            # expires is checked again: a key taken over meanwhile (add() on an expired row) stays.
            deleted += SharedCacheEntry.objects.filter(key__in=batch, expires__lte=cutoff).delete()[0]


database_store = DatabaseStore()


#: Minimum seconds between two log lines of one process about the same Redis outage.
OUTAGE_LOG_SECONDS = 60


class _Outage:
    """This process's view of a Redis outage, one for every use (they share one Redis): after a
    failure Redis is skipped for ``SHARED_CACHE_RETRY_SECONDS``, so a request waits for at most
    one connection timeout per interval. Logged when it starts, at most once a minute while it
    lasts (whatever the number of requests), and once when Redis answers again."""

    def __init__(self):
        self.since = None  # monotonic time of the first failure, None while Redis answers
        self.down_until = 0.0  # monotonic time before which Redis is not tried
        self._logged_at = 0.0
        self._lock = threading.Lock()

    @property
    def skipping(self):
        return time.monotonic() < self.down_until

    def failed(self, exc):
        retry = project_settings.SHARED_CACHE_RETRY_SECONDS
        now = time.monotonic()
        with self._lock:
            self.down_until = now + retry
            first = self.since is None
            if first:
                self.since = now
            if first or now - self._logged_at >= OUTAGE_LOG_SECONDS:
                self._logged_at = now
                log.warning(
                    "Redis (the shared cache) is unreachable (%s) for %d s: JWKS documents are cached per process "
                    "and throttle counters kept in the database (exchanges and replay checks go on); "
                    "retried every %s s", type(exc).__name__, now - self.since, retry,
                )

    def answered(self):
        if self.since is None:  # the common case: one attribute read, no lock
            return
        with self._lock:
            if self.since is not None:
                log.warning("Redis (the shared cache) answers again after %d s", time.monotonic() - self.since)
                self.since = None


outage = _Outage()

#: What stands in for Redis, per use, when it is unreachable (see the module docstring).
MEMORY, DATABASE = "memory", "database"


class FallbackCache:
    """The shared cache (Redis) for one use, and its stand-in while Redis is unreachable.

    ``stand_in`` is ``MEMORY`` (this process's memory) or ``DATABASE`` (``SharedCacheEntry``
    rows). Without ``REDIS_URL`` the database serves for good; for ``MEMORY``, Django's own
    process-local default cache does.
    """

    def __init__(self, use, *, stand_in=MEMORY):
        if stand_in not in (MEMORY, DATABASE):
            raise ValueError(f"stand_in must be {MEMORY} or {DATABASE}")
        self.use = use
        self.stand_in = stand_in
        self.local = LocMemCache(f"identity-console-fallback-{use}", {"OPTIONS": {"MAX_ENTRIES": 1000}})

    def _primary(self):
        """The cache to try first: Redis, Django's local default cache (``MEMORY`` without Redis), or None."""
        if default_cache_is_local():
            return _default() if self.stand_in == MEMORY else None
        return _default()

    def _standing_in(self):
        return database_store if self.stand_in == DATABASE else self.local

    def _call(self, method, *args):
        primary = self._primary()
        if primary is None:
            return getattr(self._standing_in(), method)(*args)
        if not outage.skipping:
            try:
                value = getattr(primary, method)(*args)
            except CACHE_ERRORS as exc:
                outage.failed(exc)
                metrics.shared_cache_error(self.use)
            else:
                outage.answered()
                return value
        metrics.shared_cache_fallback(self.use)
        return getattr(self._standing_in(), method)(*args)

    @property
    def degraded(self):
        """True while this process skips Redis after a failure."""
        return outage.skipping

    def get(self, key, default=None):
        return self._call("get", key, default)

    def set(self, key, value, timeout):
        self._call("set", key, value, timeout)

    def add(self, key, value, timeout):
        return self._call("add", key, value, timeout)

    def get_many(self, keys):
        return self._call("get_many", keys)

    def incr(self, key, delta=1):
        """Like the cache's ``incr`` (ValueError when the key is missing)."""
        return self._call("incr", key, delta)

    def delete(self, key):
        self._call("delete", key)
        self.local.delete(key)

    def clear_local(self):
        self.local.clear()
        outage.down_until = 0.0


jwks_cache = FallbackCache("jwks", stand_in=MEMORY)  # an optimisation: per process while Redis is away
throttle_cache = FallbackCache("throttle", stand_in=DATABASE)  # every worker counts together, Redis or not


def clear_local():
    """Forget this process's stand-ins and outage state (tests)."""
    for fallback in (jwks_cache, throttle_cache):
        fallback.clear_local()
    outage.since, outage.down_until = None, 0.0


class ReplayRecord:
    """Which subject tokens were already exchanged: a ``SharedCacheEntry`` row per (issuer, jti) key.

    The row is the record, in every mode, and the only one; it lives until the token could no
    longer be accepted (the caller's ``lifetime``), then ``prune_audit`` (or every
    ``_PRUNE_EVERY``-th write) deletes it.
    """

    @staticmethod
    def consume(key, lifetime):
        """Record ``key`` as consumed for ``lifetime`` seconds, atomically; False when it already was.

        One statement in the caller's transaction (the exchange's): the record commits with the
        issued token, or neither does. Raises the database's errors (the caller fails closed).
        """
        return database_store.add(key, 1, lifetime)

    @staticmethod
    def recorded(key):
        """True when ``key`` is recorded as consumed (and not expired)."""
        return database_store.get(key) is not None


replay_record = ReplayRecord()
