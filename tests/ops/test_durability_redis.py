"""Issue 15 against real processes: Redis flushed, stopped and restarted empty changes speed, never answers.

Two gunicorn instances (two workers each) share a dedicated PostgreSQL database
(idc_durability_<pid>, dropped afterwards) and a private redis-server on an ephemeral port
(``--save "" --appendonly no``: a restart is empty; never the machine's shared Redis). The tests
run in order, as an operator would meet the events: a flush, a race, an outage, a restart.

Run by .ci/run (``make test-slow``); about half a minute.
"""

import concurrent.futures
import os
from http import HTTPStatus

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from ..processes import Deployment, running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.live]

ISSUER = "https://durable.issuer.test"
METRICS_TOKEN = "durability-metrics-token"
REPLAYED = "The subject token has already been used."
OUTAGE_LINE = "Redis (the shared cache) is unreachable"
RACE = 16


class Durability(Deployment):
    """The deployment (tests/processes.py) with the checks an operator makes after each event."""

    def issued(self, instance, token):
        response = self.exchange(instance, token)
        assert response.status_code == HTTPStatus.OK, response.text
        return response

    def refused_as_replay(self, instance, token):
        response = self.exchange(instance, token)
        assert response.status_code == HTTPStatus.BAD_REQUEST, response.text
        assert response.json()["error_description"] == REPLAYED
        return response

    def every_consumed_token_is_refused(self):
        for token in list(self.consumed):
            for instance in self.instances:
                self.refused_as_replay(instance, token)

    def race(self, token):
        """RACE simultaneous exchanges of one token, spread over both instances: the status codes."""
        targets = self.instances * (RACE // 2)
        with concurrent.futures.ThreadPoolExecutor(RACE) as pool:
            responses = list(pool.map(lambda instance: self.exchange(instance, token), targets))
        return sorted(r.status_code for r in responses), responses

    def readiness(self, instance):
        response = requests.get(instance.url + "/readyz", timeout=10)
        return response.status_code, response.json()

    def fallbacks(self, instance, use):
        response = requests.get(instance.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                                timeout=10)
        assert response.status_code == HTTPStatus.OK
        return sum(sample.value for family in text_string_to_metric_families(response.text)
                   for sample in family.samples
                   if sample.name == "idc_shared_cache_fallbacks_total" and sample.labels.get("use") == use)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    durability = Durability(tmp_path_factory.mktemp("durability"), f"idc_durability_{os.getpid()}", ISSUER,
                            METRICS_TOKEN)
    with running(durability, instances={"a": {}, "b": {}}) as started:
        yield started


def test_flushall_forgets_no_exchanged_token(deployment):
    a, b = deployment.instances
    token = deployment.token()
    deployment.issued(a, token)
    deployment.refused_as_replay(b, token)
    redis.Redis(host="127.0.0.1", port=deployment.redis.port).flushall()
    assert deployment.redis.keys() == []
    deployment.refused_as_replay(b, token)
    deployment.refused_as_replay(a, token)
    deployment.issued(b, deployment.token())  # nothing that should pass is refused


def test_a_race_across_instances_issues_one_token(deployment):
    statuses, responses = deployment.race(deployment.token())
    assert statuses == [HTTPStatus.OK] + [HTTPStatus.BAD_REQUEST] * (RACE - 1)
    assert all(r.json()["error_description"] == REPLAYED for r in responses if r.status_code != HTTPStatus.OK)


def test_redis_stopped_exchanges_go_on_and_replays_stay_refused(deployment):
    a, b = deployment.instances
    before = {instance.name: deployment.fallbacks(instance, "throttle") for instance in deployment.instances}
    deployment.redis.stop()
    for instance in deployment.instances:
        status, body = deployment.readiness(instance)
        assert status == HTTPStatus.OK and body["status"] == "degraded", body
        assert body["checks"]["cache"]["ok"] is False and body["checks"]["database"]["ok"] is True

    deployment.every_consumed_token_is_refused()  # exchanged while Redis was up
    for instance, other in ((a, b), (b, a)) * 3:
        token = deployment.token()
        deployment.issued(instance, token)
        deployment.refused_as_replay(other, token)
        deployment.refused_as_replay(instance, token)
    statuses, _ = deployment.race(deployment.token())
    assert statuses == [HTTPStatus.OK] + [HTTPStatus.BAD_REQUEST] * (RACE - 1)

    for instance in deployment.instances:
        assert deployment.fallbacks(instance, "throttle") > before[instance.name]  # counted (the database's counters)
        # Said once per process (two workers), not once per request (dozens here).
        assert 1 <= instance.logs().count(OUTAGE_LINE) <= 2, instance.logs()


def test_redis_restarted_empty_refuses_nothing_new_and_everything_used(deployment):
    a, b = deployment.instances
    deployment.redis.start()  # no persistence: empty
    assert deployment.redis.keys("*jti*") == []
    wait_until(lambda: all(deployment.readiness(i)[1]["status"] == "ok" for i in deployment.instances),
               30, interval=0.2, message="both instances to report Redis back")  # generous: a loaded CI host

    deployment.every_consumed_token_is_refused()  # before the outage, during it: all still used
    for instance, other in ((a, b), (b, a)) * 3:  # nothing that should pass is refused
        token = deployment.token()
        deployment.issued(instance, token)
        deployment.refused_as_replay(other, token)
    statuses, _ = deployment.race(deployment.token())
    assert statuses == [HTTPStatus.OK] + [HTTPStatus.BAD_REQUEST] * (RACE - 1)
    # A worker notices Redis is back on its next use of the shared cache after its retry interval (every token
    # request reads the throttle counters): keep sending each instance an exchange until it has said so.
    def answers_again(instance):
        if "answers again" in instance.logs():
            return True
        deployment.issued(instance, deployment.token())
        return False

    wait_until(lambda: all([answers_again(i) for i in deployment.instances]), 60, interval=1,
               message="both instances to log that Redis answers again")
