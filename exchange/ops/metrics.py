"""Prometheus metrics at ``/metrics``: exchanges, token-endpoint latency, JWKS fetches and cache use.

Aggregation across gunicorn workers uses prometheus_client's multiprocess mode:
each worker writes its samples to memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` (gunicorn.conf.py creates one per instance) and a
scrape of any worker sums every worker's files. Nothing touches the network on
the request path, metrics survive a Redis outage, and each instance is one
scrape target (sum across instances in PromQL) — unlike counters kept in the
shared cache, which would add a round trip per observation and double-count
when every instance reports the cluster-wide total. Without the variable
(``runserver``, tests) the process's own registry is served.

Label values come from this server's own vocabulary — trusted issuer names,
stable cause codes, known grant types — never from request text.

Access: a bearer token (``METRICS_TOKEN``) or a client address in
``METRICS_ALLOWED_NETWORKS``; with neither configured the endpoint answers 403.
"""

import functools
import hmac
import logging
import os
import time

from django.db.models.signals import post_save
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess

from ..conf import project_settings
from ..models import ExchangeEvent
from ..protocol import TOKEN_EXCHANGE
from .proxies import in_networks, parse_networks

log = logging.getLogger(__name__)


EXCHANGES = Counter(
    "idc_token_exchanges_total",
    "Token-exchange attempts by outcome, rejection cause and trusted issuer.",
    ["outcome", "cause", "issuer"],
)
TOKEN_ENDPOINT_LATENCY = Histogram(
    "idc_token_endpoint_duration_seconds",
    "Time to answer POST /oauth2/token, by grant type and HTTP status.",
    ["grant_type", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
JWKS_FETCHES = Counter(
    "idc_jwks_fetches_total",
    "JWKS endpoint fetches by trusted issuer and outcome (ok or error).",
    ["issuer", "outcome"],
)
JWKS_FETCH_LATENCY = Histogram(
    "idc_jwks_fetch_duration_seconds",
    "Time spent fetching a trusted issuer's JWKS endpoint.",
    ["issuer"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
JWKS_CACHE_LOOKUPS = Counter(
    "idc_jwks_cache_lookups_total",
    "JWKS key lookups by trusted issuer: hit (served from cache) or miss (fetch needed). "
    "Hit ratio: rate(hit) / rate(hit + miss).",
    ["issuer", "result"],
)
SHARED_CACHE_ERRORS = Counter(
    "idc_shared_cache_errors_total",
    "Operations on the shared cache (Redis) that failed; non-zero means degraded mode.",
    ["use"],
)
SHARED_CACHE_FALLBACKS = Counter(
    "idc_shared_cache_fallbacks_total",
    "Operations served without the shared cache (Redis) while it was unreachable: jwks from the "
    "process's memory, throttle from the database.",
    ["use"],
)

_GRANT_LABELS = {
    TOKEN_EXCHANGE: "token_exchange",
    "refresh_token": "refresh_token",
    "client_credentials": "client_credentials",
    "authorization_code": "authorization_code",
}


def issuer_label(issuer):
    return issuer.name if issuer is not None else "none"


def exchange_recorded(outcome, cause, issuer):
    EXCHANGES.labels(outcome, cause or "none", issuer_label(issuer)).inc()


def jwks_fetched(issuer, ok, seconds):
    label = issuer_label(issuer)
    JWKS_FETCHES.labels(label, "ok" if ok else "error").inc()
    JWKS_FETCH_LATENCY.labels(label).observe(seconds)


def jwks_cache_lookup(issuer, hit):
    JWKS_CACHE_LOOKUPS.labels(issuer_label(issuer), "hit" if hit else "miss").inc()


def shared_cache_error(use):
    SHARED_CACHE_ERRORS.labels(use).inc()


def shared_cache_fallback(use):
    SHARED_CACHE_FALLBACKS.labels(use).inc()


def _on_exchange_event(sender, instance, created, **kwargs):
    if created:
        exchange_recorded(instance.outcome, instance.cause, instance.trusted_issuer)


def connect_signals():
    """Count every ExchangeEvent row saved through the ORM (storage.py counts the rows it writes itself)."""
    post_save.connect(_on_exchange_event, sender=ExchangeEvent, dispatch_uid="exchange.ops.metrics")


class MetricsMiddleware:
    """Times the token endpoint (the latency histogram)."""

    TOKEN_PATHS = ("/oauth2/token", "/oauth2/token/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path not in self.TOKEN_PATHS:
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        TOKEN_ENDPOINT_LATENCY.labels(self._grant_label(request), str(response.status_code)).observe(elapsed)
        return response

    @staticmethod
    def _grant_label(request):
        if request.method != "POST":
            return "none"
        try:
            grant = request.POST.get("grant_type")
        except Exception:  # an unreadable body was already answered by the view
            return "none"
        return _GRANT_LABELS.get(grant, "other" if grant else "none")


def registry():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def client_allowed(request):
    """True when the request carries METRICS_TOKEN or comes from METRICS_ALLOWED_NETWORKS."""
    token = project_settings.METRICS_TOKEN
    if token:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return True
    networks = project_settings.METRICS_ALLOWED_NETWORKS
    if not networks:
        return False
    try:
        allowed = _parsed_networks(tuple(networks))
    except ValueError:  # settings refuse a bad entry at start-up; one set later fails closed, never 500
        log.error("METRICS_ALLOWED_NETWORKS holds an entry that is not a network; /metrics answers 403")
        return False
    return in_networks(request.META.get("REMOTE_ADDR", ""), allowed)


@functools.lru_cache(maxsize=4)
def _parsed_networks(networks):
    return parse_networks(networks)


def metrics_view(request):
    if not client_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    response = HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
