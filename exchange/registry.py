"""In-process caches of what every token request reads: trusted issuers (with their certificates), applications
and the scope registry.

Reading them from the database on every request cost more than the rest of an exchange
(see bench/). Invalidation, so that an administrator's change takes effect everywhere:

- ``post_save``/``post_delete`` of TrustedTokenIssuer, IssuerCertificate, Application and Scope
  (and ``m2m_changed`` of the issuer–application links and of the applications' actor issuers) empty this process's caches at once and bump a shared *version*, again after the
  transaction commits (so no process refills its cache from pre-commit rows);
- every process compares that version with the one its caches were filled under at most
  every ``REGISTRY_CHECK_MS`` (default 1000 ms) and empties them when it changed. So a change
  made through the models (console, API, commands, flows) reaches every worker of every
  instance within ``REGISTRY_CHECK_MS`` of its commit;
- whatever bypasses model signals (``QuerySet.update()``, raw SQL) is picked up when the
  caches expire anyway, ``REGISTRY_MAX_AGE_SECONDS`` (default 60 s) after they were filled.

The version lives in the shared cache (Redis in production). When that cache is
process-local (LocMemCache: one machine, several gunicorn workers), it lives in a file
under ``VAR_DIR`` instead, which every worker on the machine sees. A version that cannot be
read counts as changed: the caches are then emptied at every check, never kept.
"""

import logging
import os
import threading
import time
import uuid
from pathlib import Path

from django.core.cache import caches
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from oauth2_provider.models import get_application_model

from . import conditions
from .conf import exchange_settings, project_settings
from .models import IssuerCertificate, Scope, TrustedTokenIssuer
from .shared_cache import CACHE_ERRORS, default_cache_is_local

log = logging.getLogger(__name__)

VERSION_KEY = "exchange:registry:version"
VERSION_FILE = "registry.version"
_MAX_ENTRIES = 1024  # unknown iss/client_id values are cached too; bound what requests can add


def shared_version():
    """The current version (any comparable value); a fresh object when it cannot be read."""
    try:
        if default_cache_is_local():
            st = os.stat(Path(project_settings.VAR_DIR) / VERSION_FILE)
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        return caches["default"].get(VERSION_KEY)
    except FileNotFoundError:
        return None
    except Exception:
        return object()  # unreadable: never equal, so nothing cached is trusted


def bump_version():
    """Tell every process that issuers or applications changed."""
    if default_cache_is_local():
        folder = Path(project_settings.VAR_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{VERSION_FILE}.{os.getpid()}.{threading.get_ident()}"
        temporary.write_text(uuid.uuid4().hex)
        os.replace(temporary, folder / VERSION_FILE)  # a new inode: readers see the change
    else:
        try:
            caches["default"].set(VERSION_KEY, uuid.uuid4().hex, None)
        except CACHE_ERRORS:
            # Redis is down: the change is saved all the same. Every other process fails to read the
            # version too, counts it as changed and empties its caches at each check, so none keeps
            # serving the old rows; once Redis is back, the next change (or REGISTRY_MAX_AGE_SECONDS)
            # settles them.
            log.warning("Shared cache unreachable: the registry version could not be bumped", exc_info=True)


def _load_issuer(iss):
    # Exact, byte-for-byte: some databases compare strings case-insensitively.
    for candidate in TrustedTokenIssuer.objects.filter(issuer=iss).prefetch_related("certificates"):
        if candidate.issuer == iss:
            candidate.linked_application_ids = frozenset(candidate.applications.values_list("pk", flat=True))
            # Compiled once per change: the cached issuer is dropped whenever any issuer changes.
            candidate.admission_program = conditions.compile_stored(candidate.condition)
            if candidate.admission_program is conditions.BROKEN:
                log.error("The admission condition of trusted issuer %s does not compile: its tokens are refused", candidate.pk)
            return candidate
    return None


def _load_application(client_id):
    Application = get_application_model()
    try:
        application = Application.objects.get(client_id=client_id)
    except (Application.DoesNotExist, ValueError):  # ValueError: a NUL byte on PostgreSQL
        return None
    application.linked_issuer_ids = frozenset(application.trusted_issuers.values_list("pk", flat=True))
    # Read only for an application that allows delegation: the others never look at it (no query).
    application.actor_issuer_ids = (
        frozenset(application.actor_issuers.values_list("pk", flat=True)) if application.allow_delegation else frozenset()
    )
    return application


def _load_scopes(_key):
    return dict(Scope.objects.values_list("name", "description"))


class Registry:
    """The caches of one process. Entries are shared by requests: treat them as read-only."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._issuers = {}
        self._applications = {}
        self._scopes = {}
        self._version = object()
        self._generation = 0
        self._checked = None  # monotonic time of the last version check
        self._filled = 0.0  # monotonic time the caches were last emptied

    def clear(self):
        with self._lock:
            self._issuers, self._applications, self._scopes = {}, {}, {}
            self._generation += 1
            self._checked = None
            self._filled = self._clock()

    def _check(self):
        now = self._clock()
        if self._checked is not None and (now - self._checked) * 1000 < exchange_settings.REGISTRY_CHECK_MS:
            return
        version = shared_version()
        with self._lock:
            self._checked = now
            if version != self._version or now - self._filled >= exchange_settings.REGISTRY_MAX_AGE_SECONDS:
                self._issuers, self._applications, self._scopes = {}, {}, {}
                self._generation += 1
                self._version = version
                self._filled = now

    def _get(self, table_name, key, loader):
        self._check()
        table = getattr(self, table_name)
        try:
            return table[key]
        except KeyError:
            pass
        generation = self._generation
        value = loader(key)
        with self._lock:
            # Keep it only if nothing was invalidated while it was being read.
            if generation == self._generation:
                table = getattr(self, table_name)
                if len(table) >= _MAX_ENTRIES:
                    table.clear()
                table[key] = value
        return value

    def issuer(self, iss):
        """The TrustedTokenIssuer whose issuer value is exactly ``iss`` (certificates prefetched), or None."""
        return self._get("_issuers", iss, _load_issuer)

    def application(self, client_id):
        """The Application with this client_id, or None."""
        return self._get("_applications", client_id, _load_application)


    def scopes(self):
        """The scope registry: every registered scope's name → description (one query per change)."""
        return self._get("_scopes", None, _load_scopes)


registry = Registry()


def invalidate(**kwargs):
    """Signal receiver: forget cached issuers and applications here, now and everywhere, soon."""
    registry.clear()
    bump_version()

    def after_commit():
        registry.clear()
        bump_version()

    transaction.on_commit(after_commit, using=kwargs.get("using"))


def invalidate_links(action, **kwargs):
    """Signal receiver: issuer–application links changed (``TrustedTokenIssuer.applications``)."""
    if action in ("post_add", "post_remove", "post_clear"):
        invalidate(**kwargs)


def connect_signals():
    for model in (TrustedTokenIssuer, IssuerCertificate, get_application_model(), Scope):
        post_save.connect(invalidate, sender=model, dispatch_uid=f"registry-save-{model._meta.label}")
        post_delete.connect(invalidate, sender=model, dispatch_uid=f"registry-delete-{model._meta.label}")
    links = TrustedTokenIssuer.applications.through
    m2m_changed.connect(invalidate_links, sender=links, dispatch_uid="registry-links")
    actors = get_application_model().actor_issuers.through
    m2m_changed.connect(invalidate_links, sender=actors, dispatch_uid="registry-actor-issuers")


def _settings_changed(**kwargs):
    registry.clear()


setting_changed.connect(_settings_changed)
