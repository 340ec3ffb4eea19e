"""Client authentication at the token endpoint: RFC 6749 §2.3.1 decoding, malformed headers, two methods,
uniform and timing-safe checks, and brute-force throttling."""

import base64
import time
from http import HTTPStatus
from unittest import mock
from urllib.parse import quote_from_bytes, urlencode

import pytest
from django.test import Client

from exchange import client_auth, flows
from exchange.models import AccessToken, ExchangeEvent

from ..utils import assert_oauth_error, basic_auth, exchange_body, post_form


def _b64(raw):
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _app_with(make_application, client_id, secret):
    app = make_application(name=f"App {client_id[:20]}", client_id=client_id)
    app.client_secret = secret
    app.save()
    app.raw_secret = secret
    return app


@pytest.mark.parametrize("client_id, secret, header", [
    # RFC 6749 §2.3.1's own example.
    ("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw", "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"),
    # Both parts form-urlencoded before base64 (Appendix B): ':' in the id, '@:+%/é' in the secret.
    ("client:one", "p@ss:w+rd%/é", "Basic Y2xpZW50JTNBb25lOnAlNDBzcyUzQXclMkJyZCUyNSUyRiVDMyVBOQ=="),
    # '+' is a space in form encoding.
    ("client one", "sec ret", "Basic Y2xpZW50K29uZTpzZWMrcmV0"),
    # The scheme name is case-insensitive.
    ("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw", "basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"),
    ("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw", "BASIC czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"),
])
def test_basic_credentials_decoded_per_rfc6749(client_id, secret, header, client, make_application, new_subject_token):
    _app_with(make_application, client_id, secret)
    response = post_form(client, "/oauth2/token", exchange_body(new_subject_token()), HTTP_AUTHORIZATION=header)
    assert response.status_code == HTTPStatus.OK, response.content


MALFORMED_HEADERS = {
    "not base64": "Basic !!!not-base64",
    "no colon": _b64(b"justaclientid"),
    "non-utf-8": _b64(b"\xff\xfe:\xff"),
    "empty id": _b64(b":secret"),
    "no credentials": "Basic",
    "blank credentials": "Basic    ",
    "bearer": "Bearer abc.def.ghi",
    "digest": 'Digest username="x"',
    "two credentials": "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3, Basic Zm9vOmJhcg==",
    "padding junk": "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3===",
    "nul in id": _b64(b"s6Bh%00dRkqt3:7Fjfp0ZBr1KtDRbnfVdmIw"),
    "scheme only with colon": "Basic:",
}


@pytest.mark.parametrize("case", sorted(MALFORMED_HEADERS))
def test_malformed_authorization_header(case, client, make_application, new_subject_token):
    _app_with(make_application, "s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw")
    response = post_form(client, "/oauth2/token", exchange_body(new_subject_token()), HTTP_AUTHORIZATION=MALFORMED_HEADERS[case])
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic")
    assert not AccessToken.objects.exists()


def test_two_methods_refused(client, application, make_application, new_subject_token):
    other = make_application(name="Other")
    cases = [
        (basic_auth(application.client_id, application.raw_secret), {"client_secret": application.raw_secret}),
        (basic_auth(application.client_id, application.raw_secret),
         {"client_id": other.client_id, "client_secret": other.raw_secret}),
        (basic_auth(application.client_id, application.raw_secret), {"client_id": other.client_id}),
    ]
    for header, body in cases:
        response = post_form(client, "/oauth2/token", exchange_body(new_subject_token(), **body), HTTP_AUTHORIZATION=header)
        body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
        assert "more than one authentication method" in body["error_description"]
    assert not AccessToken.objects.exists()
    assert not ExchangeEvent.objects.filter(outcome="issued").exists()


def test_same_client_id_in_header_and_body_is_one_method(client, application, new_subject_token):
    body = exchange_body(new_subject_token(), client_id=application.client_id)
    response = post_form(client, "/oauth2/token", body,
                         HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))
    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize("query", ["client_id=x&client_secret=y", "subject_token=abc", "grant_type=client_credentials"])
def test_parameters_in_the_url_refused(query, client, application, new_subject_token):
    response = client.post(f"/oauth2/token?{query}", "&".join(f"{k}={v}" for k, v in exchange_body(new_subject_token()).items()),
                           content_type="application/x-www-form-urlencoded",
                           HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert not AccessToken.objects.exists()


HOSTILE_CLIENT_IDS = ["\x00", "a\x00b", "x" * 10240, "\u202eadmin", "' OR 1=1--", "%00", "\ud800", "..", " "]


@pytest.mark.parametrize("client_id", HOSTILE_CLIENT_IDS, ids=range(len(HOSTILE_CLIENT_IDS)))
@pytest.mark.parametrize("method", ["basic", "post"])
def test_hostile_client_ids(client_id, method, client, application, new_subject_token):
    if method == "basic":
        raw = f"{client_id}:secret".encode("utf-8", "surrogatepass")
        response = post_form(client, "/oauth2/token", exchange_body(new_subject_token()), HTTP_AUTHORIZATION=_b64(raw))
    else:
        body = urlencode(exchange_body(new_subject_token(), client_secret="s")) + "&client_id=" + quote_from_bytes(
            client_id.encode("utf-8", "surrogatepass"))
        response = client.post("/oauth2/token", body, content_type="application/x-www-form-urlencoded")
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")
    assert not AccessToken.objects.exists()


def test_rotated_secret_stops_working(client, application, new_subject_token):
    old = application.raw_secret
    new = flows.regenerate_secret(application)
    response = post_form(client, "/oauth2/token", exchange_body(new_subject_token()), HTTP_AUTHORIZATION=basic_auth(application.client_id, old))
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")
    response = post_form(client, "/oauth2/token", exchange_body(new_subject_token()), HTTP_AUTHORIZATION=basic_auth(application.client_id, new))
    assert response.status_code == HTTPStatus.OK


def test_unknown_client_and_wrong_secret_look_identical(client, application, new_subject_token):
    wrong = post_form(client, "/oauth2/token", exchange_body(new_subject_token()),
                      HTTP_AUTHORIZATION=basic_auth(application.client_id, "wrong"))
    unknown = post_form(client, "/oauth2/token", exchange_body(new_subject_token()),
                        HTTP_AUTHORIZATION=basic_auth("no-such-client", "wrong"))
    assert (wrong.status_code, wrong.content, wrong["WWW-Authenticate"]) == (
        unknown.status_code, unknown.content, unknown["WWW-Authenticate"])


@pytest.mark.parametrize("auth, body", [
    (lambda app: basic_auth(app.client_id, "wrong"), {}),
    (lambda app: basic_auth("no-such-client", "wrong"), {}),
    (lambda app: basic_auth("x" * 500, "wrong"), {}),
    (lambda app: "Basic !!!", {}),
    (lambda app: None, {"client_id": "no-such-client", "client_secret": "wrong"}),
    (lambda app: None, {"client_id": "no-such-client"}),
    (lambda app: None, {"client_id": "known", "client_secret": "x" * 600}),
])
def test_the_secret_hasher_runs_once_for_every_failure(auth, body, client, application, new_subject_token):
    """Structural timing check: the same keyed-hash comparison runs whether or not the client exists."""
    if body.get("client_id") == "known":
        body = dict(body, client_id=application.client_id)
    headers = {"HTTP_AUTHORIZATION": auth(application)} if auth(application) else {}
    with mock.patch.object(client_auth, "check_password", wraps=client_auth.check_password) as spy:
        response = post_form(client, "/oauth2/token", exchange_body(new_subject_token(), **body), **headers)
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")
    assert spy.call_count == 1
    encoded = spy.call_args.args[1]
    assert encoded.startswith("hmac_sha256$")  # the same fast keyed hash as real secrets


def test_the_hasher_compares_in_constant_time(client, application, new_subject_token):
    from exchange import hashers

    with mock.patch.object(hashers, "constant_time_compare", wraps=hashers.constant_time_compare) as spy:
        post_form(client, "/oauth2/token", exchange_body(new_subject_token()), HTTP_AUTHORIZATION=basic_auth(application.client_id, "wrong"))
        post_form(client, "/oauth2/token", exchange_body(new_subject_token()), HTTP_AUTHORIZATION=basic_auth("unknown", "wrong"))
    assert spy.call_count == 2


def test_public_client_cannot_exchange(client, make_application, new_subject_token):
    spa = make_application(name="SPA", application_type="spa", grant_types=["authorization_code"])
    response = post_form(client, "/oauth2/token", exchange_body(new_subject_token(), client_id=spa.client_id))
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")
    assert not AccessToken.objects.exists()


# -- brute force --------------------------------------------------------------------------


def _window_start():
    """The start of the next 300 s throttling window (windows are aligned to the epoch)."""
    return (int(time.time()) // 300 + 1) * 300


def _attempt(client, app, secret, address="127.0.0.1", body=None):
    return post_form(client, "/oauth2/token", body or exchange_body("x.y.z"),
                     HTTP_AUTHORIZATION=basic_auth(app.client_id, secret), REMOTE_ADDR=address)


def _assert_throttled(response):
    body = assert_oauth_error(response, HTTPStatus.TOO_MANY_REQUESTS, "temporarily_unavailable")
    assert 1 <= int(response["Retry-After"]) <= 300
    return body


def test_brute_force_from_one_address_is_throttled(client, application, new_subject_token, time_machine):
    time_machine.move_to(_window_start(), tick=False)
    for _ in range(20):
        assert _attempt(client, application, "wrong").status_code == HTTPStatus.UNAUTHORIZED
    _assert_throttled(_attempt(client, application, "wrong"))
    # The right secret from the throttled address is refused too: the limit must not answer guesses.
    _assert_throttled(_attempt(client, application, application.raw_secret, body=exchange_body(new_subject_token())))
    # Another address is not locked out.
    ok = _attempt(client, application, application.raw_secret, address="10.0.0.9", body=exchange_body(new_subject_token()))
    assert ok.status_code == HTTPStatus.OK
    # Nor is the first address once the window has passed.
    time_machine.shift(301)
    assert _attempt(client, application, application.raw_secret, body=exchange_body(new_subject_token())).status_code == HTTPStatus.OK


def test_retry_after_counts_down_to_the_end_of_the_window(client, application, time_machine, settings):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 2}
    time_machine.move_to(_window_start(), tick=False)
    _attempt(client, application, "wrong")
    _attempt(client, application, "wrong")
    time_machine.shift(100)
    response = _attempt(client, application, "wrong")
    _assert_throttled(response)
    assert response["Retry-After"] == "200"


def test_one_client_attacked_from_many_addresses_is_throttled(client, application, time_machine, settings):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_CLIENT": 5}
    time_machine.move_to(_window_start(), tick=False)
    for i in range(5):
        assert _attempt(client, application, "wrong", address=f"10.0.0.{i}").status_code == HTTPStatus.UNAUTHORIZED
    _assert_throttled(_attempt(client, application, "wrong", address="10.0.1.1"))
    _assert_throttled(post_form(client, "/oauth2/token", exchange_body("x.y.z", client_id=application.client_id,
                                client_secret="wrong"), REMOTE_ADDR="10.0.1.2"))


def test_unknown_clients_count_against_the_address(client, time_machine, settings, db):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 3}
    time_machine.move_to(_window_start(), tick=False)
    for i in range(3):
        response = post_form(client, "/oauth2/token", exchange_body("x.y.z"),
                             HTTP_AUTHORIZATION=basic_auth(f"guess-{i}", "x"))
        assert response.status_code == HTTPStatus.UNAUTHORIZED
    _assert_throttled(post_form(client, "/oauth2/token", exchange_body("x.y.z"), HTTP_AUTHORIZATION="Basic !!!"))


def test_successful_and_subject_token_failures_are_not_counted(client, application, new_subject_token, settings):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 2, "CLIENT_AUTH_MAX_FAILURES_PER_CLIENT": 2}
    for _ in range(5):
        assert _attempt(client, application, application.raw_secret).status_code == HTTPStatus.BAD_REQUEST
    assert _attempt(client, application, application.raw_secret, body=exchange_body(new_subject_token())).status_code == HTTPStatus.OK


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_introspection_and_revocation_share_the_throttle(path, client, application, settings):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 3}
    auth = {"HTTP_AUTHORIZATION": basic_auth(application.client_id, "wrong")}
    for _ in range(3):
        assert post_form(client, path, {"token": "abc"}, **auth).status_code in (401, 403)
    _assert_throttled(post_form(client, path, {"token": "abc"}, **auth))
    _assert_throttled(_attempt(client, application, application.raw_secret))


def test_throttle_counters_live_in_the_shared_cache(client, application, settings):
    """The counters live in the shared store (Redis, or without it the database), which every process sees."""
    from exchange.models import SharedCacheEntry

    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 2}
    _attempt(client, application, "wrong")
    _attempt(client, application, "wrong")
    # Another process sees the same store: simulate it with a fresh test client (no shared Python state).
    _assert_throttled(_attempt(Client(HTTP_HOST="localhost"), application, "wrong"))
    assert SharedCacheEntry.objects.filter(key__startswith="authfail:").count() == 2  # address and client
    SharedCacheEntry.objects.all().delete()
    assert _attempt(client, application, "wrong").status_code == HTTPStatus.UNAUTHORIZED
