"""The shared cache: replay store and throttle counters shared across processes (Redis), and a cache
outage that fails closed with a JSON answer instead of a 500.

Redis tests use the dedicated database 7 on 127.0.0.1 and delete exactly the keys they wrote; they are
skipped when no Redis server is listening there.
"""

import os
import subprocess
import sys
import uuid
from http import HTTPStatus
from pathlib import Path

import pytest
from django.core.cache.backends.redis import RedisCache

from exchange import key_sources, subject_token, throttling

from ..factories import mint
from ..utils import assert_oauth_error, assert_subject_rejected, basic_auth, exchange_body, post_form

REDIS_URL = "redis://127.0.0.1:6379/7"
ROOT = Path(__file__).resolve().parents[2]


def _redis_available():
    try:
        RedisCache(REDIS_URL, {"OPTIONS": {"socket_connect_timeout": 0.5}}).get("probe")
        return True
    except Exception:
        return False


needs_redis = pytest.mark.skipif(not _redis_available(), reason="no Redis on 127.0.0.1:6379")


@pytest.fixture
def broken_cache(monkeypatch):
    """Every module's cache, and the replay store, point at a Redis that is not there (a closed port)."""
    broken = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.5}})
    for module in (key_sources, throttling):
        monkeypatch.setattr(module, "cache", broken)
    monkeypatch.setattr(subject_token, "shared_store", lambda: broken)
    return broken


def test_replay_store_down_fails_closed(broken_cache, exchange, pem_issuer, rsa_key):
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer)), "replay_check_unavailable")


def test_key_cache_down_fails_closed(broken_cache, exchange, jwks_issuer, ec_key):
    assert_subject_rejected(exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")), "key_source_unavailable")


def test_throttle_cache_down_still_authenticates(broken_cache, client, application, pem_issuer, rsa_key):
    wrong = post_form(client, "/oauth2/token", exchange_body("a.b.c"), HTTP_AUTHORIZATION=basic_auth(application.client_id, "x"))
    assert_oauth_error(wrong, HTTPStatus.UNAUTHORIZED, "invalid_client")
    pem_issuer.reject_replayed_jti = False
    pem_issuer.save()
    right = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer)),
                      HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))
    assert right.status_code == HTTPStatus.OK


@needs_redis
def test_replay_is_caught_by_another_process_sharing_redis(monkeypatch, exchange, pem_issuer, rsa_key):
    prefix = f"hardening-test-{uuid.uuid4().hex}"
    first, second = RedisCache(REDIS_URL, {"KEY_PREFIX": prefix}), RedisCache(REDIS_URL, {"KEY_PREFIX": prefix})
    token = mint(rsa_key, pem_issuer.issuer, jti="shared-jti")
    try:
        monkeypatch.setattr(subject_token, "shared_store", lambda: first)
        assert exchange(token).status_code == HTTPStatus.OK
        monkeypatch.setattr(subject_token, "shared_store", lambda: second)  # another worker or instance
        assert_subject_rejected(exchange(token), "replayed", issued_before=1)
    finally:
        client = first._cache.get_client(write=True)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)


@needs_redis
def test_throttle_counters_are_shared_with_another_process(monkeypatch, settings, tmp_path):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 2}
    shared = RedisCache(REDIS_URL, {"KEY_PREFIX": "idc"})  # the prefix settings.py gives the Redis cache
    monkeypatch.setattr(throttling, "cache", shared)
    client_id, address = f"client-{uuid.uuid4().hex}", "203.0.113.9"
    import time

    start, _ = throttling._window(time.time())
    keys = [key for key, _ in throttling._counters(client_id, address, start)]
    try:
        throttling.record_failure(client_id, address)
        throttling.record_failure(client_id, address)
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="identity_console.settings", REDIS_URL=REDIS_URL,
                   VAR_DIR=str(tmp_path), TOKEN_EXCHANGE_CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS="2")
        code = ("import django; django.setup(); from exchange import throttling; "
                f"print(throttling.retry_after({client_id!r}, {address!r}))")
        output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=60, check=True).stdout
        assert int(output.strip()) > 0
    finally:
        shared.delete_many(keys)
