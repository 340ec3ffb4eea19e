"""/healthz and /readyz, and the documented degraded mode when the shared cache (Redis) is unreachable."""

from http import HTTPStatus

import pytest
import requests

from exchange import shared_cache
from exchange.models import SharedCacheEntry

from ..processes import Gunicorn, base_env, free_port
from ..factories import mint
from ..utils import assert_oauth_error, basic_auth, exchange_body, post_form


def test_healthz_answers_any_host(client):
    response = client.get("/healthz", HTTP_HOST="10.1.2.3")  # a load balancer probing by IP
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readyz_reports_each_check(client):
    response = client.get("/readyz", HTTP_HOST="10.1.2.3")
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "cache": True, "signing_key": True,
    }
    assert body["checks"]["signing_key"]["kid"]


@pytest.mark.django_db
def test_readyz_degraded_when_cache_unreachable(client, unreachable_redis, settings):
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"] == {"ok": False, "error": "ConnectionError", "ms": body["checks"]["cache"]["ms"]}
    assert "replay protection" in body["degraded"]
    settings.HEALTH_CACHE_REQUIRED = True
    assert client.get("/readyz").status_code == HTTPStatus.SERVICE_UNAVAILABLE


@pytest.mark.live
def test_readyz_503_when_database_unreachable(tmp_path):
    """A real gunicorn whose PostgreSQL does not answer: alive, not ready, no connection details leaked."""
    env = base_env(tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/unreachable")
    instance = Gunicorn("no-db", env, tmp_path, workers=1)
    try:
        instance.wait_ready()  # /healthz: the process is alive
        response = requests.get(instance.url + "/readyz", timeout=10)
        assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE, response.text
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"]["ok"] is False
        assert body["checks"]["signing_key"]["ok"] is False  # keys live in the database
        assert body["checks"]["cache"]["ok"] is True
        assert "127.0.0.1" not in response.text and "postgres" not in response.text.lower()
    finally:
        instance.stop()


# -- degraded mode: the shared cache is down ------------------------------------------------


@pytest.mark.django_db
def test_replay_protected_exchange_succeeds_without_shared_cache_and_replays_are_refused(
        exchange, pem_issuer, rsa_key, unreachable_redis):
    """Issue 15: the database holds the replay record, so Redis being down costs speed, not exchanges."""
    token = mint(rsa_key, pem_issuer.issuer)  # has a jti; the issuer rejects replays
    assert exchange(token).status_code == HTTPStatus.OK
    body = assert_oauth_error(exchange(token), HTTPStatus.BAD_REQUEST, "invalid_request")
    assert body["error_description"] == "The subject token has already been used."


@pytest.fixture
def no_replay_check(pem_issuer, jwks_issuer):
    """Both issuers without replay protection (saved before the outage: saves notify other processes)."""
    for issuer in (pem_issuer, jwks_issuer):
        issuer.reject_replayed_jti = False
        issuer.save()


@pytest.mark.django_db
def test_exchange_without_replay_check_still_works_without_shared_cache(
    exchange, pem_issuer, rsa_key, no_replay_check, unreachable_redis,
):
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_jwks_cached_per_process_without_shared_cache(
    exchange, jwks_issuer, ec_key, jwks_server, no_replay_check, unreachable_redis,
):
    for _ in range(3):
        assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == HTTPStatus.OK
    assert len(jwks_server.requests) == 1
    assert shared_cache.jwks_cache.degraded


def test_fallback_cache_keeps_working_in_process(unreachable_redis):
    fallback = shared_cache.FallbackCache("test")
    assert fallback.add("k", 0, 60) is True and fallback.add("k", 0, 60) is False
    assert fallback.incr("k") == 1 and fallback.incr("k", 2) == 3
    assert fallback.get_many(["k", "missing"]) == {"k": 3}
    with pytest.raises(ValueError):
        fallback.incr("missing")
    assert fallback.degraded


@pytest.mark.django_db
def test_failed_client_auth_still_throttled_in_the_database_without_shared_cache(client, application, settings, unreachable_redis):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 2}
    wrong = {"HTTP_AUTHORIZATION": basic_auth(application.client_id, "wrong-secret"), "REMOTE_ADDR": "198.51.100.7"}
    for _ in range(2):
        assert_oauth_error(post_form(client, "/oauth2/token", exchange_body("a.b.c"), **wrong),
                           HTTPStatus.UNAUTHORIZED, "invalid_client")
    throttled = post_form(client, "/oauth2/token", exchange_body("a.b.c"), **wrong)
    assert_oauth_error(throttled, HTTPStatus.TOO_MANY_REQUESTS, "temporarily_unavailable")
    # Counted where every worker sees them: the database stands in for Redis.
    assert SharedCacheEntry.objects.filter(key__startswith="authfail:addr:", value=2).exists()
