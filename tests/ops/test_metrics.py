"""/metrics: access control, and counters that move with real exchanges."""

from http import HTTPStatus

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..factories import mint


def scrape(client, **headers):
    response = client.get("/metrics", **headers)
    assert response.status_code == HTTPStatus.OK, response.content
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def parse(text):
    """{(sample name, frozenset(labels)): value} from Prometheus text."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metrics_open(settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.mark.parametrize(
    "token, networks, headers, status",
    [
        ("", [], {}, HTTPStatus.FORBIDDEN),  # nothing configured: closed
        ("s3cret-metrics-token", [], {}, HTTPStatus.FORBIDDEN),
        ("s3cret-metrics-token", [], {"HTTP_AUTHORIZATION": "Bearer wrong"}, HTTPStatus.FORBIDDEN),
        ("s3cret-metrics-token", [], {"HTTP_AUTHORIZATION": "Bearer s3cret-metrics-token"}, HTTPStatus.OK),
        ("", [], {"HTTP_AUTHORIZATION": "Bearer "}, HTTPStatus.FORBIDDEN),  # no token set: none accepted
        ("", ["127.0.0.0/8"], {}, HTTPStatus.OK),  # the test client's REMOTE_ADDR is 127.0.0.1
        ("", ["10.0.0.0/8", "::1/128"], {}, HTTPStatus.FORBIDDEN),
        ("", ["10.0.0.0/8"], {"REMOTE_ADDR": "10.2.3.4"}, HTTPStatus.OK),
    ],
)
def test_metrics_access(client, settings, token, networks, headers, status):
    settings.METRICS_TOKEN = token
    settings.METRICS_ALLOWED_NETWORKS = networks
    assert client.get("/metrics", **headers).status_code == status


@pytest.mark.parametrize("networks", [["10.0.0.0/33"], ["not-a-network"], ["127.0.0.0/8", "::1/129"]])
def test_a_bad_allowed_network_set_after_start_up_fails_closed(client, settings, caplog, networks):
    """Settings refuse it at start-up (below); one set later (tests, a custom settings module) answers 403, not 500."""
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = networks
    assert client.get("/metrics").status_code == HTTPStatus.FORBIDDEN
    assert "METRICS_ALLOWED_NETWORKS" in caplog.text


def test_a_bad_allowed_network_stops_start_up(tmp_path):
    import subprocess
    import sys

    from ..processes import ROOT, base_env

    def run(value):
        return subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, timeout=60,
                              env=base_env(tmp_path, METRICS_ALLOWED_NETWORKS=value), capture_output=True, text=True)

    assert run("10.0.0.0/8, ::1").returncode == 0
    bad = run("10.0.0.0/8, 10.0.0.300")
    assert bad.returncode != 0 and "10.0.0.300" in bad.stderr


def test_exchange_counters_and_latency_move(client, exchange, pem_issuer, rsa_key, metrics_open):
    before = scrape(client)
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == HTTPStatus.OK
    assert exchange(token).status_code == HTTPStatus.BAD_REQUEST  # replayed
    assert exchange(mint(rsa_key, "https://unknown.test")).status_code == HTTPStatus.BAD_REQUEST
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    exchanges = "idc_token_exchanges_total"
    assert delta(exchanges, outcome="issued", cause="none", issuer="PEM issuer") == 1
    assert delta(exchanges, outcome="rejected", cause="replayed", issuer="PEM issuer") == 1
    assert delta(exchanges, outcome="rejected", cause="unknown_issuer", issuer="none") == 1
    latency = "idc_token_endpoint_duration_seconds_count"
    assert delta(latency, grant_type="token_exchange", status="200") == 1
    assert delta(latency, grant_type="token_exchange", status="400") == 2
    assert delta("idc_token_endpoint_duration_seconds_bucket", grant_type="token_exchange", status="200", le="+Inf") == 1


def test_jwks_fetch_and_cache_counters_move(client, exchange, jwks_issuer, ec_key, jwks_server, metrics_open):
    before = scrape(client)
    for _ in range(3):
        assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == HTTPStatus.OK
    jwks_server.status = HTTPStatus.INTERNAL_SERVER_ERROR
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="unknown-kid")).status_code == HTTPStatus.BAD_REQUEST
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    issuer = "JWKS issuer"
    assert delta("idc_jwks_fetches_total", issuer=issuer, outcome="ok") == 1
    assert delta("idc_jwks_fetches_total", issuer=issuer, outcome="error") == 0  # within the refetch cooldown
    assert delta("idc_jwks_fetch_duration_seconds_count", issuer=issuer) == 1
    assert delta("idc_jwks_cache_lookups_total", issuer=issuer, result="hit") == 2
    assert delta("idc_jwks_cache_lookups_total", issuer=issuer, result="miss") == 2  # first use, unknown kid
    assert delta("idc_token_exchanges_total", outcome="rejected", cause="unknown_key", issuer=issuer) == 1


def test_failed_jwks_fetch_is_counted(client, exchange, jwks_issuer, ec_key, jwks_server, metrics_open):
    jwks_server.status = HTTPStatus.SERVICE_UNAVAILABLE
    before = scrape(client)
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == HTTPStatus.BAD_REQUEST
    after = scrape(client)
    key = ("idc_jwks_fetches_total", frozenset({"issuer": "JWKS issuer", "outcome": "error"}.items()))
    assert after.get(key, 0) - before.get(key, 0) == 1
