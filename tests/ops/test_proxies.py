"""The client's address behind trusted reverse proxies (TRUSTED_PROXIES): what throttling, logs and audit see."""

from http import HTTPStatus

import pytest
from django.test import Client

from exchange.ops.proxies import client_address, parse_networks

from ..utils import basic_auth, exchange_body, post_form

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize("peer, forwarded, expected", [
    # no proxy configured for this peer: whatever it claims is ignored
    ("203.0.113.5", "198.51.100.1", "203.0.113.5"),
    ("203.0.113.5", "10.0.0.1", "203.0.113.5"),
    # a trusted proxy: the right-most address that is not a trusted proxy
    ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
    ("10.0.0.2", "198.51.100.1, 10.0.0.7", "198.51.100.1"),
    ("10.0.0.2", "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # the client wrote 1.2.3.4 itself: not believed
    ("10.0.0.2", "  198.51.100.1  ", "198.51.100.1"),
    ("10.0.0.2", "2001:db8::1", "2001:db8::1"),
    ("fd00::2", "198.51.100.1", "198.51.100.1"),
    # nothing usable: the nearest trusted hop
    ("10.0.0.2", "", "10.0.0.2"),
    ("10.0.0.2", "10.0.0.9", "10.0.0.9"),
    ("10.0.0.2", "not-an-address", "10.0.0.2"),
    ("10.0.0.2", "198.51.100.1, unknown, 10.0.0.9", "10.0.0.9"),
    ("10.0.0.2", "198.51.100.1,", "10.0.0.2"),
    ("10.0.0.2", "198.51.100.1:4711", "10.0.0.2"),
    ("10.0.0.2", "\x00", "10.0.0.2"),
    ("10.0.0.2", "1" * 5000, "10.0.0.2"),
    ("", "198.51.100.1", ""),
    ("garbage", "198.51.100.1", "garbage"),
])
def test_client_address(peer, forwarded, expected):
    assert client_address(peer, forwarded, PROXIES) == expected


def test_bad_networks_are_refused():
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.0/33"])


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.0/8"]
    settings.MIDDLEWARE = ["exchange.ops.proxies.TrustedProxyMiddleware", *settings.MIDDLEWARE]
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 2, "CLIENT_AUTH_MAX_FAILURES_PER_CLIENT": 1000}


def _failed_attempt(application, forwarded_for):
    client = Client(HTTP_HOST="localhost")  # REMOTE_ADDR 127.0.0.1: the trusted proxy
    return post_form(client, "/oauth2/token", exchange_body("a.b.c"),
                     HTTP_AUTHORIZATION=basic_auth(application.client_id, "wrong"),
                     HTTP_X_FORWARDED_FOR=forwarded_for)


def test_throttling_counts_each_client_behind_the_proxy(behind_proxy, application):
    assert _failed_attempt(application, "198.51.100.1").status_code == HTTPStatus.UNAUTHORIZED
    assert _failed_attempt(application, "198.51.100.1").status_code == HTTPStatus.UNAUTHORIZED
    assert _failed_attempt(application, "198.51.100.1").status_code == HTTPStatus.TOO_MANY_REQUESTS
    # Another client behind the same proxy is not locked out by the first one's failures ...
    assert _failed_attempt(application, "198.51.100.2").status_code == HTTPStatus.UNAUTHORIZED
    # ... and the locked-out client cannot escape by prepending an address of its choosing.
    assert _failed_attempt(application, "192.0.2.77, 198.51.100.1").status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_without_trusted_proxies_forwarded_for_is_ignored(settings, application):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 2, "CLIENT_AUTH_MAX_FAILURES_PER_CLIENT": 1000}
    for forwarded in ("198.51.100.1", "198.51.100.2"):
        assert _failed_attempt(application, forwarded).status_code == HTTPStatus.UNAUTHORIZED
    assert _failed_attempt(application, "198.51.100.3").status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_middleware_is_installed_only_when_configured(tmp_path):
    import subprocess
    import sys

    from ..processes import ROOT, base_env

    code = ("import django; django.setup(); from django.conf import settings; "
            "print('exchange.ops.proxies.TrustedProxyMiddleware' in settings.MIDDLEWARE)")

    def run(value):
        return subprocess.run([sys.executable, "-c", code], env=base_env(tmp_path, TRUSTED_PROXIES=value),
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert run("").stdout.strip() == "False"
    assert run("10.0.0.0/8, 192.0.2.1").stdout.strip() == "True"
    bad = run("10.0.0.0/33")
    assert bad.returncode != 0 and "10.0.0.0/33" in bad.stderr
