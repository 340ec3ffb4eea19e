"""Two real gunicorn instances on one PostgreSQL database and one Redis: what is true on one is true on both.

Each instance runs two workers, so "the other instance" also means "the other processes". The
instances share a dedicated PostgreSQL database (idc_ops_<pid>, dropped afterwards) and a private
redis-server on an ephemeral port (never the machine's shared Redis), which the last test stops to
check the documented degraded mode, then restarts. Changes are made by ``manage.py`` processes
against the same database and Redis: the model-save path the console uses.

Run by .ci/run (``-m slow``); about half a minute.
"""

import concurrent.futures
import json
import os
import time
from http import HTTPStatus

import jwt
import pytest
import requests
from jwt import PyJWKSet
from prometheus_client.parser import text_string_to_metric_families

from ..factories import DROP, certificate_pem, mint, private_key
from ..processes import Deployment, manage, running, wait_until
from ..utils import basic_auth, exchange_body

pytestmark = [pytest.mark.slow, pytest.mark.live]

JWKS_ISSUER = "https://shared.issuer.test"
METRICS_TOKEN = "cluster-metrics-token"
ENFORCED_WITHIN = 5  # seconds: "a change through one is enforced by the other within seconds"
THROTTLE_WINDOW = 6  # seconds; small so the lockout the test causes ends quickly
THROTTLE_FAILURES_PER_ADDRESS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Instance A logs text, B JSON (gunicorn's access log too); a short client-authentication throttle window."""
    deployment = Deployment(tmp_path_factory.mktemp("cluster"), f"idc_ops_{os.getpid()}", JWKS_ISSUER, METRICS_TOKEN)
    with running(
        deployment,
        instances={"a": {"LOG_FORMAT": "text", "GUNICORN_ACCESSLOG": "-"},
                   "b": {"LOG_FORMAT": "json", "GUNICORN_ACCESSLOG": "-"}},
        TOKEN_EXCHANGE_SIGNING_KEY_RELOAD_SECONDS=1,
        TOKEN_EXCHANGE_CLIENT_AUTH_THROTTLE_WINDOW_SECONDS=THROTTLE_WINDOW,
        TOKEN_EXCHANGE_CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS=THROTTLE_FAILURES_PER_ADDRESS,
        TOKEN_EXCHANGE_CLIENT_AUTH_MAX_FAILURES_PER_CLIENT=1000,
    ) as started:
        yield started


def error_description(response):
    return response.json().get("error_description")


def consistently(check, instance_calls=4):
    """True when ``check()`` holds for several calls in a row (spreading over both workers)."""
    return all(check() for _ in range(instance_calls))


def test_jwks_cache_is_shared(cluster):
    before = len(cluster.jwks.requests)
    for instance in (cluster.a, cluster.b, cluster.a, cluster.b, cluster.b, cluster.a):
        response = cluster.exchange(instance, cluster.token())
        assert response.status_code == HTTPStatus.OK, response.text
    assert len(cluster.jwks.requests) - before == 1  # one fetch served four processes on two instances


def test_replay_store_is_shared(cluster):
    token = cluster.token()
    assert cluster.exchange(cluster.a, token).status_code == HTTPStatus.OK
    refused = cluster.exchange(cluster.b, token)
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert error_description(refused) == "The subject token has already been used."


def test_revocation_is_shared(cluster):
    access_token = cluster.exchange(cluster.a, cluster.token()).json()["access_token"]

    def introspect(instance):
        response = requests.post(instance.url + "/oauth2/introspect", data={"token": access_token},
                                 headers=cluster.auth(), timeout=10)
        assert response.status_code == HTTPStatus.OK, response.text
        return response.json()["active"]

    assert introspect(cluster.b) is True
    revoked = requests.post(cluster.a.url + "/oauth2/revoke", data={"token": access_token},
                            headers=cluster.auth(), timeout=10)
    assert revoked.status_code == HTTPStatus.OK
    assert introspect(cluster.b) is False
    assert introspect(cluster.a) is False


def test_issuer_and_application_changes_are_enforced_by_both_instances(cluster):
    def refused_everywhere(description):
        return lambda: all(
            consistently(lambda i=i: error_description(cluster.exchange(i, cluster.token())) == description)
            for i in (cluster.a, cluster.b)
        )

    def accepted_everywhere():
        return all(
            consistently(lambda i=i: cluster.exchange(i, cluster.token()).status_code == HTTPStatus.OK)
            for i in (cluster.a, cluster.b)
        )

    assert accepted_everywhere()  # every process has used (and may have cached) issuer and application

    set_enabled = ("from exchange.models import TrustedTokenIssuer as T; "
                   "i = T.objects.get(issuer=%r); i.enabled = %s; i.save()")
    manage(cluster.env, "shell", "-c", set_enabled % (JWKS_ISSUER, False))
    wait_until(refused_everywhere("The subject token's issuer is disabled."), ENFORCED_WITHIN,
               message="the disabled issuer to be refused by both instances")
    manage(cluster.env, "shell", "-c", set_enabled % (JWKS_ISSUER, True))
    wait_until(accepted_everywhere, ENFORCED_WITHIN, message="the re-enabled issuer to be accepted")

    manage(cluster.env, "set_grant_types", cluster.client_id, "refresh_token")
    wait_until(refused_everywhere("The client is not allowed to use token exchange."), ENFORCED_WITHIN,
               message="the application's grant change to be enforced by both instances")
    manage(cluster.env, "set_grant_types", cluster.client_id, "token_exchange")
    wait_until(accepted_everywhere, ENFORCED_WITHIN, message="token exchange to be allowed again")

    # A new issuer, after both instances have refused its tokens as unknown.
    late_key = private_key("rsa", "cluster-late")
    late = "https://late.issuer.test"
    for instance in (cluster.a, cluster.b):
        response = cluster.exchange(instance, mint(late_key, late))
        assert error_description(response) == "The subject token's issuer is not a trusted token issuer."
    certificate = cluster.tmp_path / "late.pem"
    certificate.write_text(certificate_pem(late_key))
    manage(cluster.env, "create_trusted_token_issuer", "--name", "Late issuer", "--issuer", late,
           "--certificate", str(certificate))
    wait_until(
        lambda: all(consistently(lambda i=i: cluster.exchange(i, mint(late_key, late)).status_code == HTTPStatus.OK)
                    for i in (cluster.a, cluster.b)),
        ENFORCED_WITHIN, message="the new issuer to be trusted by both instances",
    )


def test_throttling_counters_are_shared(cluster):
    """Failed client authentications counted on A and B together reach the per-address limit."""
    window, limit = THROTTLE_WINDOW, THROTTLE_FAILURES_PER_ADDRESS
    # Fixed windows aligned on the epoch: start right after a boundary so all attempts share one window.
    wait_until(lambda: time.time() % window < 0.5, window + 1, interval=0.02, message="a fresh throttling window")
    bad = {"Authorization": basic_auth(cluster.client_id, "wrong-secret")}

    def attempt(instance):
        return requests.post(instance.url + "/oauth2/token", data=exchange_body(cluster.token()),
                             headers=bad, timeout=10)

    statuses = [attempt((cluster.a, cluster.b)[n % 2]).status_code for n in range(limit)]
    assert statuses == [HTTPStatus.UNAUTHORIZED] * limit  # half counted on each instance
    for instance in (cluster.a, cluster.b):
        throttled = attempt(instance)
        assert throttled.status_code == HTTPStatus.TOO_MANY_REQUESTS, throttled.text
        assert int(throttled.headers["Retry-After"]) >= 1
    # The lockout ends with the window; the next tests need this address again.
    wait_until(lambda: cluster.exchange(cluster.a, cluster.token()).status_code == HTTPStatus.OK,
               window + 2, interval=0.2, message="the throttling window to end")


def scrape(instance):
    response = requests.get(instance.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    assert response.status_code == HTTPStatus.OK, response.text
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "idc_token_exchanges_total" and sample.labels["outcome"] == "issued":
                total += sample.value
    return total


def test_metrics_aggregate_across_workers(cluster):
    before = scrape(cluster.a)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # concurrent: both workers must serve
        statuses = list(pool.map(lambda _: cluster.exchange(cluster.a, cluster.token()).status_code, range(12)))
    assert statuses == [HTTPStatus.OK] * 12
    for _ in range(4):  # whichever worker answers the scrape reports every worker's exchanges
        assert scrape(cluster.a) - before == 12
    worker_files = {name.rsplit("_", 1)[-1] for name in os.listdir(cluster.tmp_path / "metrics-a")
                    if name.startswith("counter_")}
    assert len(worker_files) >= 2, worker_files
    assert requests.get(cluster.b.url + "/metrics", timeout=10).status_code == HTTPStatus.FORBIDDEN


def test_key_rotation_reaches_every_worker_without_a_gap(cluster):
    before = cluster.exchange(cluster.a, cluster.token()).json()["access_token"]
    old_kid = jwt.get_unverified_header(before)["kid"]
    rotated = json.loads(manage(cluster.env, "rotate_signing_key", "--publish-ahead", "3", "--json"))
    for instance in (cluster.a, cluster.b):  # published at once, everywhere
        kids = {k["kid"] for k in requests.get(instance.url + "/oauth2/jwks", timeout=10).json()["keys"]}
        assert {old_kid, rotated["kid"]} <= kids
    jwks_before_activation = PyJWKSet.from_dict(requests.get(cluster.b.url + "/oauth2/jwks", timeout=10).json())

    def new_kid_everywhere():
        tokens = [cluster.exchange(i, cluster.token()).json()["access_token"]
                  for i in (cluster.a, cluster.b) for _ in range(4)]
        return all(jwt.get_unverified_header(t)["kid"] == rotated["kid"] for t in tokens) and tokens

    tokens = wait_until(new_kid_everywhere, 3 + 1 + ENFORCED_WITHIN, interval=0.2,
                        message="every worker of both instances to sign with the new key")
    keys = {k.key_id: k for k in jwks_before_activation.keys}
    for token in [before, *tokens]:  # a resource server holding the JWKS fetched before activation
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, keys[header["kid"]], algorithms=[header["alg"]], options={"verify_aud": False})
        assert claims["sub"] == "alice"


def test_degraded_mode_with_redis_stopped(cluster):
    """Last: stops the private redis-server, checks the documented behaviour, restarts it."""
    cluster.redis.stop()
    try:
        for instance in (cluster.a, cluster.b):
            ready = requests.get(instance.url + "/readyz", timeout=10)
            assert ready.status_code == HTTPStatus.OK, ready.text
            body = ready.json()
            assert body["status"] == "degraded" and body["checks"]["cache"]["ok"] is False
            assert body["checks"]["database"]["ok"] and body["checks"]["signing_key"]["ok"]

        # Issue 15: the database holds the replay record, so exchanges go on and replays stay refused.
        for instance, other in ((cluster.a, cluster.b), (cluster.b, cluster.a)):
            token = cluster.token()
            response = cluster.exchange(instance, token)
            assert response.status_code == HTTPStatus.OK, response.text
            assert error_description(cluster.exchange(other, token)) == "The subject token has already been used."

        # JWKS falls back to per-process caching: no jti, no replay check; at most one fetch per worker.
        fetches = len(cluster.jwks.requests)
        for instance in (cluster.a, cluster.b) * 5:
            response = cluster.exchange(instance, cluster.token(jti=DROP))
            assert response.status_code == HTTPStatus.OK, response.text
        assert len(cluster.jwks.requests) - fetches <= 4  # none when a worker still holds the keys in memory
    finally:
        cluster.redis.start()

    def recovered():
        return all(requests.get(i.url + "/readyz", timeout=10).json()["status"] == "ok" for i in (cluster.a, cluster.b))

    wait_until(recovered, 10, interval=0.2, message="both instances to report the cache back")
    token = cluster.token()
    assert cluster.exchange(cluster.b, token).status_code == HTTPStatus.OK
    assert error_description(cluster.exchange(cluster.a, token)) == "The subject token has already been used."


def test_logs_of_both_instances_carry_no_secret(cluster):
    """Instance B logs JSON (LOG_FORMAT=json), gunicorn's access log included; neither logs a token or secret."""
    response = cluster.exchange(cluster.b, cluster.token())
    request_id = response.headers["X-Request-ID"]
    records = [json.loads(line) for line in cluster.b.logs().splitlines() if line.strip()]
    audit = [r for r in records if r.get("event") == "token_exchange" and r.get("request_id") == request_id]
    assert len(audit) == 1 and audit[0]["outcome"] == "issued"
    assert any(r["logger"] == "gunicorn.access" for r in records)
    logs = cluster.a.logs() + cluster.b.logs()
    assert len(cluster.secrets) > 50
    leaked = [secret[:12] for secret in cluster.secrets if secret in logs]
    assert not leaked
