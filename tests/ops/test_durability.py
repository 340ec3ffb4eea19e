"""Issue 15: nothing is lost when Redis is. The database holds the replay record in every mode
(Redis is not asked), and a Redis outage changes speed, not answers.

A file-based cache stands in for Redis here (any cache that is not process-local counts as
shared); its ``clear()`` is FLUSHALL. Real redis-server processes: tests/ops/test_durability_redis.py.
"""

import io
import json
import logging
import time
import uuid
from http import HTTPStatus

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings
from prometheus_client import REGISTRY

from exchange import shared_cache
from exchange.conf import DEFAULTS
from exchange.models import SharedCacheEntry
from exchange.shared_cache import database_store, replay_record
from exchange.subject_token import explain_subject_token

from ..factories import mint, private_key
from ..processes import free_port
from ..utils import assert_subject_rejected

#: A warm exchange with a shared cache (Redis in production): the throttle counters are read from
#: it, not from the database, so no SELECT; then one transaction records the jti (one INSERT … ON
#: CONFLICT into exchange_sharedcacheentry: the durable replay record, issue 15), writes the access
#: token and the audit event. In tests the transaction is a SAVEPOINT/RELEASE pair. (Before issue 15
#: the jti went to Redis only: 4.) Without Redis: tests/performance/test_performance_invariants.py.
EXCHANGE_QUERIES_WITH_SHARED_CACHE = 5


@pytest.fixture
def shared(tmp_path):
    """A shared default cache (as with REDIS_URL): a file-based one under the test's folder."""
    caches_setting = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                  "LOCATION": str(tmp_path / "shared-cache")}}
    with override_settings(CACHES=caches_setting):
        yield caches["default"]


def replay_rows():
    return list(SharedCacheEntry.objects.filter(key__startswith="jti:"))


# -- the record is the database's, in every mode ------------------------------------------------

@pytest.mark.parametrize("mode", ["without Redis", "with Redis"])
def test_every_exchange_writes_one_durable_replay_row(mode, request, exchange, pem_issuer, rsa_key):
    if mode == "with Redis":
        request.getfixturevalue("shared")
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == HTTPStatus.OK
    assert len(replay_rows()) == 1
    assert_subject_rejected(exchange(token), "replayed", issued_before=1)
    assert len(replay_rows()) == 1  # the replay wrote nothing


def test_flushed_shared_cache_forgets_nothing(shared, exchange, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == HTTPStatus.OK
    shared.clear()  # FLUSHALL, a restart without persistence, an eviction, a failover to an empty replica
    assert_subject_rejected(exchange(token), "replayed", issued_before=1)


def test_redis_is_not_asked_about_replays(shared, exchange, pem_issuer, rsa_key, monkeypatch):
    """Neither to accept (a miss there would mean nothing) nor to refuse (a round trip costs the
    exchange more than the INSERT it would spare the rare replay)."""
    keys = []
    make_key = shared.make_and_validate_key
    monkeypatch.setattr(shared, "make_and_validate_key", lambda key, version=None: keys.append(key) or make_key(key, version))
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == HTTPStatus.OK
    assert_subject_rejected(exchange(token), "replayed", issued_before=1)
    assert keys  # the shared cache was used (throttle counters, the registry's version) ...
    assert not [key for key in keys if key.startswith("jti:")]  # ... never for the replay record


def test_explanations_read_the_database(shared, exchange, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer)
    assert explain_subject_token(token).ok
    assert exchange(token).status_code == HTTPStatus.OK
    shared.clear()
    report = explain_subject_token(token)
    assert report.cause == "replayed"


@pytest.mark.parametrize("claims, kept", [
    ({"exp": 300}, 300),  # exp, plus the clock skew
    ({"exp": 7200}, 3600),  # bounded by the issuer's maximum age (iat + 3600)
    ({"iat": -1800, "exp": 7200}, 1800),  # issued half an hour ago: half the maximum age left
])
def test_the_record_is_kept_while_the_token_could_be_accepted(claims, kept, exchange, pem_issuer, rsa_key,
                                                              time_machine):
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    times = {name: now + offset for name, offset in claims.items()}
    times.setdefault("iat", now)
    token = mint(rsa_key, pem_issuer.issuer, **times)
    assert exchange(token).status_code == HTTPStatus.OK
    skew = pem_issuer.clock_skew
    (row,) = replay_rows()
    assert row.expires == now + kept + skew
    time_machine.shift(kept + skew - 1)  # the last second it could be accepted: still refused as a replay
    assert_subject_rejected(exchange(token), "replayed", issued_before=1)
    time_machine.shift(2)  # afterwards it is refused for its age or expiry, and the row may go
    assert exchange(token).status_code == HTTPStatus.BAD_REQUEST
    assert replay_record.recorded(row.key) is False


def test_prune_audit_deletes_expired_replay_records_only(exchange, pem_issuer, rsa_key, time_machine):
    now = int(time.time())
    time_machine.move_to(now, tick=False)
    short = mint(rsa_key, pem_issuer.issuer, exp=now + 30)
    long = mint(rsa_key, pem_issuer.issuer, exp=now + 600)
    assert exchange(short).status_code == exchange(long).status_code == HTTPStatus.OK
    time_machine.shift(30 + pem_issuer.clock_skew + 1)

    out = io.StringIO()
    call_command("prune_audit", "--dry-run", "--json", stdout=out)
    assert json.loads(out.getvalue())["expired_records_matched"] == 1
    assert len(replay_rows()) == 2
    out = io.StringIO()
    call_command("prune_audit", "--json", stdout=out)
    assert json.loads(out.getvalue())["expired_records_deleted"] == 1
    assert len(replay_rows()) == 1
    assert_subject_rejected(exchange(long), "replayed", issued_before=2)  # the live record stays


# -- Redis unreachable: speed changes, answers do not ---------------------------------------------

def fallbacks(use):
    return REGISTRY.get_sample_value("idc_shared_cache_fallbacks_total", {"use": use}) or 0.0


def test_redis_down_exchanges_succeed_and_replays_are_refused(unreachable_redis, exchange, pem_issuer, rsa_key):
    before = fallbacks("throttle")
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == HTTPStatus.OK
    assert_subject_rejected(exchange(token), "replayed", issued_before=1)
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    assert len(replay_rows()) == 2
    assert fallbacks("throttle") >= before + 3  # counted: each request read the counters from the database


def test_redis_down_is_logged_once_not_per_request(unreachable_redis, exchange, pem_issuer, rsa_key, settings, caplog):
    settings.SHARED_CACHE_RETRY_SECONDS = 0  # every request tries Redis again, and fails again
    with caplog.at_level(logging.WARNING, logger="exchange.shared_cache"):
        for _ in range(5):
            assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    lines = [r.getMessage() for r in caplog.records if r.name == "exchange.shared_cache"]
    assert len(lines) == 1 and "unreachable" in lines[0] and "replay checks go on" in lines[0]


def test_the_end_of_an_outage_is_logged_once(caplog, settings):
    settings.SHARED_CACHE_RETRY_SECONDS = 0
    fallback = shared_cache.FallbackCache(f"test-{uuid.uuid4().hex}")  # LocMemCaches of one name share entries
    with caplog.at_level(logging.WARNING, logger="exchange.shared_cache"):
        with override_settings(CACHES={"default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{free_port()}/0", "OPTIONS": {"socket_connect_timeout": 0.5}}}):
            for _ in range(3):
                assert fallback.add("k", 1, 60) in (True, False)
        with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                                   "LOCATION": str(settings.VAR_DIR / "back")}}):
            for _ in range(3):
                fallback.get("k")
    lines = [r.getMessage() for r in caplog.records if r.name == "exchange.shared_cache"]
    assert len(lines) == 2 and "answers again" in lines[1]


def test_redis_down_throttle_counters_move_to_the_database(unreachable_redis, db):
    from exchange import throttling

    before = fallbacks("throttle")
    throttling.record_failure("some-client", "192.0.2.1")
    counters = SharedCacheEntry.objects.filter(key__startswith="authfail:")
    assert sorted(c.value for c in counters) == [1, 1]
    assert fallbacks("throttle") > before


def test_readyz_degraded_says_what_still_works(client, unreachable_redis, db):
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["status"] == "degraded"
    assert "still succeed" in body["degraded"] and "replay protection enforced by the database" in body["degraded"]


def test_database_down_still_fails_closed(exchange, pem_issuer, rsa_key, monkeypatch):
    from django.db import OperationalError

    def gone(*args):
        raise OperationalError("connection refused")

    monkeypatch.setattr(database_store, "add", gone)
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer)), "replay_check_unavailable")


def test_query_count_with_a_shared_cache_is_pinned(shared, exchange, pem_issuer, rsa_key, django_assert_num_queries):
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK  # fills the caches
    with django_assert_num_queries(EXCHANGE_QUERIES_WITH_SHARED_CACHE) as captured:
        assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    assert statements == ["SAVEPOINT", "INSERT", "INSERT", "INSERT", "RELEASE"]
    assert "exchange_sharedcacheentry" in captured.captured_queries[1]["sql"]


# -- JWKS refetch cooldown: 10 s ------------------------------------------------------------------

def test_the_refetch_cooldown_defaults_to_ten_seconds():
    assert DEFAULTS["JWKS_REFETCH_COOLDOWN_SECONDS"] == 10


def test_a_key_published_after_the_cooldown_began_is_accepted_within_11_seconds(
        exchange, jwks_issuer, jwks_server, ec_key, time_machine):
    """The issuer signs with a new kid before its JWKS shows it: the miss starts the cooldown and
    finds nothing; the key is published a second later; the first request after the cooldown
    fetches it. Two fetches in all, however many requests came in between."""
    start = time.time()
    time_machine.move_to(start, tick=False)
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == HTTPStatus.OK
    fetches = len(jwks_server.requests)
    new_key = private_key("ec", "rotated-in")
    time_machine.shift(60)  # within the cache lifetime, long after the first fetch's cooldown

    began = time.time()
    response = exchange(mint(new_key, jwks_issuer.issuer, kid="k2"))  # a miss: refetch, k2 not there yet
    assert response.status_code == HTTPStatus.BAD_REQUEST
    time_machine.shift(1)
    jwks_server.serve_keys((ec_key, "k1"), (new_key, "k2"))  # published after the cooldown began
    accepted_at = None
    while time.time() - began <= 11:
        if exchange(mint(new_key, jwks_issuer.issuer, kid="k2")).status_code == HTTPStatus.OK:
            accepted_at = time.time() - began
            break
        time_machine.shift(0.5)
    assert accepted_at is not None and accepted_at <= 11
    assert len(jwks_server.requests) - fetches <= 2
