"""/healthz and /readyz, and the documented degraded mode when the shared cache (Redis) is unreachable."""

from http import HTTPStatus

import pytest
import requests
from django.test import override_settings

from exchange import shared_cache

from ..processes import Gunicorn, base_env, free_port
from ..factories import mint
from ..utils import assert_oauth_error, basic_auth, exchange_body, post_form


@pytest.fixture
def unreachable_redis():
    """The shared cache pointed at a loopback port where nothing listens (restored before other teardown)."""
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    shared_cache.jwks_cache.clear_local()
    shared_cache.throttle_cache.clear_local()
    with override_settings(CACHES=caches):
        yield
    shared_cache.jwks_cache.clear_local()
    shared_cache.throttle_cache.clear_local()


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
def test_replay_protected_exchange_fails_closed_without_shared_cache(exchange, pem_issuer, rsa_key, unreachable_redis):
    response = exchange(mint(rsa_key, pem_issuer.issuer))  # has a jti; the issuer rejects replays
    body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert body["error_description"] == "The subject token's reuse could not be checked; try again later."


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
def test_failed_client_auth_still_throttled_per_process_without_shared_cache(client, application, settings, unreachable_redis):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 2}
    wrong = {"HTTP_AUTHORIZATION": basic_auth(application.client_id, "wrong-secret"), "REMOTE_ADDR": "198.51.100.7"}
    for _ in range(2):
        assert_oauth_error(post_form(client, "/oauth2/token", exchange_body("a.b.c"), **wrong),
                           HTTPStatus.UNAUTHORIZED, "invalid_client")
    throttled = post_form(client, "/oauth2/token", exchange_body("a.b.c"), **wrong)
    assert_oauth_error(throttled, HTTPStatus.TOO_MANY_REQUESTS, "temporarily_unavailable")
