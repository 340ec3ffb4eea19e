"""The shared cache: replay refusals and throttle counters shared across processes (Redis), and an
outage of what holds the replay record (the database) that fails closed with a JSON answer instead of a 500.

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
from django.db import OperationalError
from django.test import override_settings

from exchange import key_sources, shared_cache, throttling

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
    """Every module's cache points at a Redis that is not there (a closed port), and the replay
    record's statements fail as they would with the database gone."""
    broken = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.5}})
    for module in (key_sources, throttling):
        monkeypatch.setattr(module, "cache", broken)

    def database_gone(*args, **kwargs):
        raise OperationalError("connection refused")

    for method in ("add", "get", "get_many"):
        monkeypatch.setattr(shared_cache.database_store, method, database_gone)
    return broken


def test_replay_record_down_fails_closed(broken_cache, exchange, pem_issuer, rsa_key):
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
def test_replay_is_caught_by_another_process_sharing_redis(exchange, pem_issuer, rsa_key):
    """The other process finds the jti in the database, whatever its Redis holds (here: nothing)."""
    prefixes = [f"hardening-test-{uuid.uuid4().hex}" for _ in range(2)]
    token = mint(rsa_key, pem_issuer.issuer, jti="shared-jti")
    try:
        with override_settings(CACHES=_redis_caches(prefixes[0])):
            assert exchange(token).status_code == HTTPStatus.OK
        with override_settings(CACHES=_redis_caches(prefixes[1])):  # another worker, with an empty Redis
            assert_subject_rejected(exchange(token), "replayed", issued_before=1)
    finally:
        client = RedisCache(REDIS_URL, {})._cache.get_client(write=True)
        for prefix in prefixes:
            keys = list(client.scan_iter(f"{prefix}:*"))
            if keys:
                client.delete(*keys)


def _redis_caches(prefix):
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                        "KEY_PREFIX": prefix}}


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
