"""`make run`'s shape — SQLite, no Redis — with more than one process: the replay store and the
failed-authentication counters are still shared, because they live in the database.

Without ``REDIS_URL`` Django's default cache is per process, so each gunicorn worker would keep
its own replay store (a subject token exchangeable once per worker) and its own throttle
counters. Here two real gunicorn processes serve the same SQLite database (two instances of one
worker each: which process answers is then certain, unlike two workers behind one socket).
"""

import concurrent.futures
import json
from http import HTTPStatus

import pytest
import requests
from django.conf import settings

from ..processes import Gunicorn, base_env, manage
from ..factories import mint, private_key
from ..utils import JWKSServer, basic_auth, exchange_body

pytestmark = [pytest.mark.live]

ISSUER = "https://no-redis.issuer.test"
FAILURES_PER_ADDRESS = 3


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("no-redis")
    jwks = JWKSServer()
    key = private_key("ec", "no-redis")
    jwks.serve_keys((key, "k1"))
    env = base_env(
        tmp_path, CONSOLE_ISSUER=settings.CONSOLE_ISSUER, GUNICORN_LOGLEVEL="warning",
        TOKEN_EXCHANGE_CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS=FAILURES_PER_ADDRESS,
        TOKEN_EXCHANGE_CLIENT_AUTH_MAX_FAILURES_PER_CLIENT=1000,
    )
    instances = []
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "create_trusted_token_issuer", "--name", "No Redis", "--issuer", ISSUER, "--jwks-uri", jwks.url)
        app = json.loads(manage(env, "create_application", "--name", "No Redis app",
                                "--grant-type", "token_exchange", "--json"))
        for name in ("a", "b"):
            instances.append(Gunicorn(name, dict(env, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"metrics-{name}")),
                                      tmp_path, workers=1))
        for instance in instances:
            instance.wait_ready()
        yield {"instances": instances, "key": key, "auth": basic_auth(app["client_id"], app["client_secret"]),
               "client_id": app["client_id"]}
    finally:
        for instance in instances:
            instance.stop()
        jwks.close()


def _exchange(pair, instance, token, auth=None):
    return requests.post(instance.url + "/oauth2/token", data=exchange_body(token),
                         headers={"Authorization": auth or pair["auth"]}, timeout=15)


def test_a_token_exchanged_by_one_process_is_a_replay_for_the_other(pair):
    a, b = pair["instances"]
    token = mint(pair["key"], ISSUER, kid="k1")
    assert _exchange(pair, a, token).status_code == HTTPStatus.OK
    replay = _exchange(pair, b, token)
    assert replay.status_code == HTTPStatus.BAD_REQUEST
    assert replay.json() == {"error": "invalid_request", "error_description": "The subject token has already been used."}


def test_concurrent_attempts_across_processes_issue_one_token(pair):
    token = mint(pair["key"], ISSUER, kid="k1")
    instances = pair["instances"] * 6
    with concurrent.futures.ThreadPoolExecutor(len(instances)) as pool:
        statuses = sorted(pool.map(lambda instance: _exchange(pair, instance, token).status_code, instances))
    assert statuses == [HTTPStatus.OK] + [HTTPStatus.BAD_REQUEST] * (len(instances) - 1)


def test_failed_client_authentications_count_across_processes(pair):
    a, b = pair["instances"]
    wrong = basic_auth(pair["client_id"], "not-the-secret")
    token = mint(pair["key"], ISSUER, kid="k1")
    for instance in (a, b, a)[:FAILURES_PER_ADDRESS]:
        assert _exchange(pair, instance, token, auth=wrong).status_code == HTTPStatus.UNAUTHORIZED
    # Each process saw fewer than the limit itself; together they reached it.
    for instance in (a, b):
        refused = _exchange(pair, instance, token)
        assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert int(refused.headers["Retry-After"]) > 0
