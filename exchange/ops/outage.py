"""A database that cannot be reached is a 503 with ``Retry-After``, never a 500 page.

**What counts as "unavailable"** (``database_unavailable``), judged on the driver's exception
that Django's ``OperationalError`` wraps (its ``__cause__``), so that a bug in a query still
fails loudly as a 500:

- PostgreSQL (psycopg 3): an ``OperationalError`` raised by the client library itself (no
  SQLSTATE: connection refused or timed out, "the connection is lost", "the connection is
  closed", "server closed the connection unexpectedly"), or a server error of class 08
  (connection exception), class 53 (insufficient resources: too many connections, out of
  memory, disk full), 57P01–57P03 (administrator or crash shutdown, "the database system is
  starting up / shutting down") or 25006 (a write to a read-only server: a standby during a
  failover; this app never opens read-only transactions itself). psycopg's
  ``InterfaceError`` is not: it means the code misused a cursor or connection.
- SQLite: ``SQLITE_BUSY``/``SQLITE_LOCKED`` (the write lock not obtained in time),
  ``SQLITE_IOERR``, ``SQLITE_FULL``, ``SQLITE_CANTOPEN``, ``SQLITE_PROTOCOL``. "no such
  table" or a syntax error (``SQLITE_ERROR``) is not.
- Anything else — ``ProgrammingError``, ``IntegrityError``, ``DataError``, a Django
  ``DatabaseError`` without a driver cause — is not, and stays a 500.

**Where it is answered**: ``DatabaseOutageMiddleware.process_exception`` for what a view (or
the rendering of its template) raises, on every surface, DEBUG or not; ``server_error``
(``handler500``) for what the middleware around the views raises (e.g. the session saved
after the view). The answer is the surface's own error format (``unavailable_response``):
RFC 6749 JSON (``temporarily_unavailable``, ``Cache-Control: no-store``) for the OAuth
endpoints, discovery and JWKS; RFC 9457 problem details for the management API; a console
page for the console. Code that catches exceptions on the request path lets these through
(grant.py, subject_token.py, throttling.py), so an outage is never reported as a refused token.

**Logged** once per ``LOG_INTERVAL_SECONDS`` per process, as one warning line with the request
id of the request that reported it and how many 503s were answered since the last line; no
traceback (Django's own "Service Unavailable" line per request is suppressed too).

**Dead connections.** The connection a request found unusable is closed before the 503 goes
out, so the next request connects afresh. Without ``CONN_HEALTH_CHECKS``, a persistent
PostgreSQL connection the server closed while it sat idle (a restart, a failover,
``pg_terminate_backend``) is noticed at the start of the next request without a round trip:
the server's goodbye (an error message, then end of file) is waiting on an idle socket that
should have nothing to read (``drop_dead_connections``). Only then is it pinged, and closed if
the ping fails. ``CONN_HEALTH_CHECKS`` pings every connection once per request instead
(docs/deployment.md compares the two).
"""

import json
import logging
import select
import sqlite3
import sys
import threading
import time

import psycopg
from django.core.signals import request_started
from django.db import connections
from django.http import Http404, HttpResponse
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve
from django.views import defaults

from ..api.errors import PROBLEM_JSON, problem_document
from .logging import current_request_id, redact

log = logging.getLogger(__name__)

#: Seconds a client is told to wait (Retry-After) before trying again.
RETRY_AFTER_SECONDS = 5
#: At most one log line per this many seconds per process, however many requests fail.
LOG_INTERVAL_SECONDS = 10

DESCRIPTION = "The service is temporarily unavailable; retry after the number of seconds in Retry-After."
CONSOLE_TEMPLATE = "admin/console/unavailable.html"

_POSTGRES_CLASSES = ("08", "53")
_POSTGRES_STATES = ("57P01", "57P02", "57P03", "25006")
_SQLITE_CODES = {
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
}


def _driver_error(exc):
    """The driver's exception behind ``exc`` (Django's wrappers raise theirs ``from`` it), or None."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (psycopg.Error, sqlite3.Error)):
            return exc
        exc, seen = exc.__cause__, seen + 1
    return None


def database_unavailable(exc):
    """True when ``exc`` says the database cannot be reached or dropped the connection (not a bug in a query)."""
    error = _driver_error(exc)
    if isinstance(error, psycopg.Error):
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate is None:  # raised by the client library: no answer from a server
            return isinstance(error, psycopg.OperationalError)
        return sqlstate[:2] in _POSTGRES_CLASSES or sqlstate in _POSTGRES_STATES
    if isinstance(error, sqlite3.OperationalError):
        return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_CODES
    return False


def _describe(exc):
    """What the log line says about the failure: the driver's class, SQLSTATE and first line of its message."""
    error = _driver_error(exc) or exc
    sqlstate = getattr(error, "sqlstate", None)
    message = (str(error).strip().splitlines() or [""])[0][:160]
    return "%s%s: %s" % (type(error).__name__, f" {sqlstate}" if sqlstate else "", redact(message))


class _OutageLog:
    """One warning per LOG_INTERVAL_SECONDS per process, counting the 503s in between."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        self._unreported = 0

    def report(self, exc, surface):
        now = self.clock()
        with self._lock:
            self._unreported += 1
            if now < self._next:
                return
            count, self._unreported = self._unreported, 0
            self._next = now + LOG_INTERVAL_SECONDS
        log.warning(
            "Database unavailable (%s): answering 503 with Retry-After: %d (%s); %d such answer(s) in this "
            "process since the last report, next report in %d s at the earliest",
            _describe(exc), RETRY_AFTER_SECONDS, surface, count, LOG_INTERVAL_SECONDS,
            extra={"request_id": current_request_id()},
        )

    def reset(self):
        with self._lock:
            self._next, self._unreported = 0.0, 0


outage_log = _OutageLog()


def _surface(request):
    """"console", "api" or "oauth" (token, introspection, revocation, JWKS, discovery, anything else)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except (Resolver404, Http404):
            return "oauth"
    if "admin" in match.app_names:
        return "console"
    if "api" in match.app_names:
        return "api"
    return "oauth"


def _oauth_response():
    body = {"error": "temporarily_unavailable", "error_description": DESCRIPTION}
    response = HttpResponse(json.dumps(body), status=503, content_type="application/json")
    response["Pragma"] = "no-cache"
    return response


def _api_response():
    body = problem_document(503, DESCRIPTION, code="database_unavailable")
    return HttpResponse(json.dumps(body), status=503, content_type=PROBLEM_JSON)


def _console_response():
    # No request, hence no context processors: the page must not read the user (a database query).
    page = render_to_string(CONSOLE_TEMPLATE, {
        "title": "Temporarily unavailable", "retry_after": RETRY_AFTER_SECONDS,
    })
    return HttpResponse(page, status=503, content_type="text/html; charset=utf-8")


_RESPONSES = {"oauth": _oauth_response, "api": _api_response, "console": _console_response}


def _close_connections():
    """Close this thread's connections outside a transaction: the next request connects afresh."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.in_atomic_block:
            connection.close()


def unavailable_response(request, exc):
    """The 503 for ``request`` in its surface's format, logged (at most once per interval) and with Retry-After."""
    surface = _surface(request)
    _close_connections()
    outage_log.report(exc, surface)
    response = _RESPONSES[surface]()
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    response._has_been_logged = True  # our line above, not Django's "Service Unavailable" per request
    return response


class DatabaseOutageMiddleware:
    """Turns a database outage raised by a view into the surface's 503 (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if database_unavailable(exception):
            return unavailable_response(request, exception)
        return None


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    """``handler500``: a database outage raised outside a view is a 503 too; anything else Django's 500."""
    exc = sys.exc_info()[1]
    if exc is not None and database_unavailable(exc):
        return unavailable_response(request, exc)
    return defaults.server_error(request, template_name)


def _has_pending_input(raw_connection):
    """True when an idle PostgreSQL connection's socket has something to read (the server said goodbye)."""
    try:
        poller = select.poll()
        poller.register(raw_connection.fileno(), select.POLLIN)
    except Exception:  # no socket any more: certainly dead
        return True
    return bool(poller.poll(0))


def drop_dead_connections(**kwargs):
    """``request_started``: close this thread's idle PostgreSQL connections that the server has closed."""
    for connection in connections.all(initialized_only=True):
        if (connection.connection is None or connection.vendor != "postgresql" or connection.health_check_enabled
                or connection.in_atomic_block):
            continue
        if _has_pending_input(connection.connection) and not connection.is_usable():
            connection.close()


# After Django's own close_old_connections (connected when django.db was imported).
request_started.connect(drop_dead_connections, dispatch_uid="exchange.ops.outage.drop_dead_connections")
