"""Liveness and readiness: ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process can serve a request at all.
``/readyz`` checks what serving token requests needs — the database, the
shared cache and a loaded signing key — and answers 503 when the database or
the signing key is missing. A shared cache (Redis) that cannot be reached makes
the instance *degraded* (200, ``"status": "degraded"``), not unready: exchanges
still succeed with replays refused by the database, only slower, and every
instance shares the same Redis, so a 503 would take them all out of the load
balancer at once for nothing. Set ``HEALTH_CACHE_REQUIRED`` to make an
unreachable cache answer 503 instead.

Both are answered by ``HealthCheckMiddleware`` before host validation, so a load
balancer may probe an instance by its IP address. Details name the failing
check and the exception class only, never connection strings.
"""

import time
import uuid

from django.core.cache import cache
from django.db import connections
from django.http import JsonResponse

from .. import signing
from ..conf import project_settings
from .outage import RETRY_AFTER_SECONDS

HEALTH_PATHS = ("/healthz", "/readyz")


def _timed(check):
    started = time.monotonic()
    try:
        detail = check() or {}
        result = {"ok": True, **detail}
    except Exception as exc:  # any failure of a dependency is "not ok", reported by class name
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def check_database():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connections["default"].vendor}


def check_cache():
    """A write and a read through the shared cache (Redis in production)."""
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, 1, 10)
    if cache.get(key) != 1:
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)
    return {"backend": cache.__class__.__name__}


def check_signing_key():
    key = signing.active_key()
    return {"kid": key.kid, "algorithm": key.algorithm}


DEGRADED_NOTE = (
    "The shared cache is unreachable: token exchanges still succeed, with replay protection enforced "
    "by the database alone; JWKS documents are cached per process and throttle counters kept in the "
    "database until it is back."
)


def readiness():
    """(ready, report) — the report is the JSON body of /readyz."""
    checks = {
        "database": _timed(check_database),
        "cache": _timed(check_cache),
        "signing_key": _timed(check_signing_key),
    }
    cache_required = project_settings.HEALTH_CACHE_REQUIRED
    ready = checks["database"]["ok"] and checks["signing_key"]["ok"] and (checks["cache"]["ok"] or not cache_required)
    if not ready:
        status = "unavailable"
    elif not checks["cache"]["ok"]:
        status = "degraded"
    else:
        status = "ok"
    report = {"status": status, "checks": checks}
    if not checks["cache"]["ok"]:
        report["degraded"] = DEGRADED_NOTE
    return ready, report


def _no_store(response):
    response["Cache-Control"] = "no-store"
    return response


def healthz(request):
    return _no_store(JsonResponse({"status": "ok"}))


def readyz(request):
    ready, report = readiness()
    response = _no_store(JsonResponse(report, status=200 if ready else 503))
    if not ready:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)  # as every other surface answers a database outage
    return response


class HealthCheckMiddleware:
    """Answers the health paths first: no host validation, sessions or database middleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return healthz(request)
        if request.path == "/readyz":
            return readyz(request)
        return self.get_response(request)
