"""JWKS endpoints that misbehave: every fault fails closed, quickly, with a clear cause on the issuer.

All servers are real HTTP (or raw TCP) listeners on 127.0.0.1.
"""

import json
import threading
import time
import uuid
from http import HTTPStatus

import pytest
from django.core.exceptions import ValidationError

from exchange import flows, key_sources
from exchange.models import AccessToken, TrustedTokenIssuer, validate_jwks_uri
from exchange.subject_token import SubjectTokenRejected, validate_subject_token

from ..factories import mint, private_key, public_jwk
from ..utils import JWKSServer, RawServer, assert_subject_rejected


def _jwks_issuer(url, name="Faulty"):
    return flows.create_trusted_token_issuer(name=name, issuer=f"https://{name.lower()}.test", jwks_uri=url)


@pytest.fixture
def raw_server():
    servers = []

    def make(handle):
        server = RawServer(handle)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def _trickle_body(conn, closed):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n")
    while not closed.wait(0.3):
        conn.sendall(b" ")


def _trickle_headers(conn, closed):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not closed.wait(0.3):
        conn.sendall(b"X-Slow: 1\r\n")


def _hang(conn, closed):
    closed.wait(30)


def _endless_chunks(conn, closed):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"1000\r\n" + b" " * 4096 + b"\r\n"
    while not closed.is_set():
        conn.sendall(chunk)


def _huge_declared(conn, closed):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n{")
    closed.wait(30)


def _garbage_status(conn, closed):
    conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")


SLOW_SERVERS = {
    "trickled body": _trickle_body,
    "trickled headers": _trickle_headers,
    "accepts and never answers": _hang,
}


@pytest.mark.parametrize("behaviour", sorted(SLOW_SERVERS))
def test_slow_jwks_endpoint_rejected_within_deadline(behaviour, raw_server, exchange, db, ec_key):
    """A 1 s read timeout and a 2 s total deadline: the exchange fails closed in well under 3 s."""
    server = raw_server(SLOW_SERVERS[behaviour])
    trusted = _jwks_issuer(server.url)
    started = time.monotonic()
    response = exchange(mint(ec_key, trusted.issuer, kid="k1"))
    elapsed = time.monotonic() - started
    assert_subject_rejected(response, "key_source_unavailable")
    assert elapsed < 3.0, elapsed
    trusted.refresh_from_db()
    assert trusted.key_fetch_error == "The JWKS endpoint did not answer within the time limit."
    assert trusted.key_fetch_failed_at is not None


@pytest.mark.parametrize("handle, message", [
    (_endless_chunks, "larger than 65536 bytes"),
    (_huge_declared, "larger than 65536 bytes"),
    (_garbage_status, "could not be read"),
])
def test_oversized_or_broken_responses(handle, message, raw_server, exchange, db, ec_key):
    server = raw_server(handle)
    trusted = _jwks_issuer(server.url)
    started = time.monotonic()
    assert_subject_rejected(exchange(mint(ec_key, trusted.issuer, kid="k1")), "key_source_unavailable")
    assert time.monotonic() - started < 3.0
    trusted.refresh_from_db()
    assert message in trusted.key_fetch_error


def test_connection_refused(exchange, db, ec_key):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    trusted = _jwks_issuer(f"http://127.0.0.1:{port}/jwks.json")
    assert_subject_rejected(exchange(mint(ec_key, trusted.issuer, kid="k1")), "key_source_unavailable")
    trusted.refresh_from_db()
    assert trusted.key_fetch_error == "The JWKS endpoint could not be reached."


# (status, body, extra headers) → the fetch error recorded on the issuer
BAD_RESPONSES = {
    "404": (404, b"{}", {}, "answered HTTP 404"),
    "500": (500, b"oops", {}, "answered HTTP 500"),
    "503": (503, b"", {}, "answered HTTP 503"),
    "html": (200, b"<html><body>Sign in</body></html>", {}, "not valid JSON"),
    "invalid json": (200, b'{"keys": [', {}, "not valid JSON"),
    "latin-1": (200, b'{"keys": [], "x": "\xe9"}', {}, "not valid JSON"),
    "json array": (200, b"[]", {}, "not a JWKS document"),
    "keys not a list": (200, b'{"keys": {}}', {}, "not a JWKS document"),
    "deep nesting": (200, b"[" * 30000 + b"]" * 30000, {}, "not valid JSON"),  # RecursionError, under the size cap
    "over the size cap": (200, b" " * 70000 + b"{}", {}, "larger than 65536 bytes"),
    "gzip": (200, b"\x1f\x8b\x08\x00", {"Content-Encoding": "gzip"}, "compressed"),
    "too many keys": (200, json.dumps({"keys": [{"kty": "EC"}] * 101}).encode(), {}, "at most 100 are accepted"),
}


@pytest.mark.parametrize("case", sorted(BAD_RESPONSES))
def test_bad_jwks_responses(case, exchange, jwks_issuer, jwks_server, ec_key):
    status, body, headers, message = BAD_RESPONSES[case]
    jwks_server.status, jwks_server.body, jwks_server.headers = status, body, headers
    assert_subject_rejected(exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")), "key_source_unavailable")
    jwks_issuer.refresh_from_db()
    assert message in jwks_issuer.key_fetch_error, jwks_issuer.key_fetch_error


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(status, exchange, jwks_issuer, jwks_server, ec_key):
    target = JWKSServer()
    try:
        target.serve_keys((ec_key, "k1"))
        jwks_server.status = status
        jwks_server.headers = {"Location": target.url}
        assert_subject_rejected(exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")), "key_source_unavailable")
        assert target.requests == []
    finally:
        target.close()
    jwks_issuer.refresh_from_db()
    assert f"redirected (HTTP {status})" in jwks_issuer.key_fetch_error


def test_fetch_carries_no_ambient_credentials(exchange, jwks_issuer, jwks_server, ec_key):
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1"), auth=None).status_code == HTTPStatus.OK
    headers = {name.lower() for name in jwks_server.requests[0]["headers"]}
    assert not headers & {"authorization", "cookie", "proxy-authorization"}


@pytest.mark.parametrize("member_extra, cause", [
    ({"use": "enc"}, "unknown_key"),
    ({"key_ops": ["encrypt"]}, "unknown_key"),
    ({"key_ops": ["wrapKey"]}, "unknown_key"),
    ({"alg": "ES384"}, "unknown_key"),  # the JWK binds the key to another algorithm
])
def test_keys_not_meant_for_this_signature_are_ignored(member_extra, cause, exchange, jwks_issuer, jwks_server, ec_key):
    jwks_server.serve_keys((ec_key, "k1"), **member_extra)
    assert_subject_rejected(exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")), cause)


def test_duplicate_kid_is_ambiguous_and_ignored(exchange, jwks_issuer, jwks_server, ec_key):
    other = private_key("ec", "duplicate-kid")
    jwks_server.serve_keys((ec_key, "k1"), (other, "k1"))
    assert_subject_rejected(exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")), "unknown_key")


def test_malformed_members_skipped_good_key_still_verifies(exchange, jwks_issuer, jwks_server, ec_key):
    good = public_jwk(ec_key, "k1")
    rsa_public = public_jwk(private_key("rsa", "malformed"), "bad-rsa")
    jwks_server.document = {"keys": [
        {k: v for k, v in rsa_public.items() if k != "n"},
        dict(rsa_public, kid="bad-e", e=123),
        dict(good, kid="off-curve", y=good["x"]),
        {"kty": "XYZ", "kid": "unknown-type"},
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        "not an object", 1, None,
        good,
    ]}
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == HTTPStatus.OK


def test_cached_keys_keep_serving_when_refetch_fails(exchange, jwks_issuer, jwks_server, ec_key, time_machine, settings):
    time_machine.move_to(time.time(), tick=False)
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == HTTPStatus.OK
    jwks_server.status = HTTPStatus.INTERNAL_SERVER_ERROR
    time_machine.shift(400)  # past JWKS_CACHE_SECONDS (300): a refetch is due, and fails
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == HTTPStatus.OK
    assert len(jwks_server.requests) == 2
    jwks_issuer.refresh_from_db()
    assert "HTTP 500" in jwks_issuer.key_fetch_error
    time_machine.shift(3600)  # past JWKS_STALE_IF_ERROR_SECONDS: stale keys are no longer trusted
    assert_subject_rejected(exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")), "key_source_unavailable", issued_before=2)


def test_cold_failure_fails_fast_during_cooldown(db, jwks_issuer, jwks_server, ec_key):
    jwks_server.status = HTTPStatus.INTERNAL_SERVER_ERROR
    token = mint(ec_key, jwks_issuer.issuer, kid="k1")
    for _ in range(20):
        started = time.monotonic()
        with pytest.raises(SubjectTokenRejected) as rejected:
            validate_subject_token(token)
        assert rejected.value.cause == "key_source_unavailable"
        assert time.monotonic() - started < 0.5
    assert len(jwks_server.requests) == 1


def test_unknown_kid_storm_is_bounded(exchange, jwks_issuer, jwks_server, ec_key, time_machine):
    """60 exchanges with random kids signed by an attacker: at most one refetch per 30 s cooldown."""
    time_machine.move_to(time.time(), tick=False)
    attacker = private_key("ec", "storm")
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == HTTPStatus.OK
    for i in range(60):
        if i == 30:
            time_machine.shift(31)  # one cooldown window later
        response = exchange(mint(attacker, jwks_issuer.issuer, kid=uuid.uuid4().hex))
        assert response.status_code == HTTPStatus.BAD_REQUEST
    assert len(jwks_server.requests) == 2  # the first fetch, then one refetch in the second window
    assert AccessToken.objects.count() == 1


def test_rotation_picked_up_without_restart(exchange, jwks_issuer, jwks_server, ec_key, time_machine):
    time_machine.move_to(time.time(), tick=False)
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == HTTPStatus.OK
    new_key = private_key("ec", "rotated")
    jwks_server.serve_keys((new_key, "k2"))
    time_machine.shift(31)  # past the refetch cooldown, within the cache lifetime
    assert exchange(mint(new_key, jwks_issuer.issuer, kid="k2")).status_code == HTTPStatus.OK
    assert len(jwks_server.requests) == 2
    # k1 was removed from the published set: it is gone as soon as the new document is cached.
    response = exchange(mint(ec_key, jwks_issuer.issuer, kid="k1"))
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_a_fetch_in_another_process_is_awaited_not_repeated(db, jwks_issuer, jwks_server, ec_key):
    """Another worker holds the cooldown (it is fetching): this one waits for its result instead of fetching."""
    from django.core.cache import cache

    key = key_sources._cache_key(jwks_issuer)
    cache.add(f"{key}:cooldown", 1, 30)
    document = {"keys": [public_jwk(ec_key, "k1")]}
    threading.Timer(0.2, lambda: cache.set(key, {"fetched_at": time.time(), "doc": document, "uri": jwks_issuer.jwks_uri}, 60)).start()
    keys = key_sources.jwks_keys(jwks_issuer, "k1")
    assert [k.kid for k in keys] == ["k1"]
    assert jwks_server.requests == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_misses_share_one_fetch(ec_key):
    server = JWKSServer()
    try:
        server.serve_keys((ec_key, "k1"))
        server.delay = 0.3
        trusted = _jwks_issuer(server.url, name="Concurrent")
        results, errors = [], []

        def worker():
            from django.db import connection

            try:
                results.append(key_sources.jwks_keys(TrustedTokenIssuer.objects.get(pk=trusted.pk), "k1"))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connection.close()  # each thread's own connection: left open, it blocks dropping the test database

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert errors == []
        assert len(results) == 20 and all(keys and keys[0].kid == "k1" for keys in results)
        assert len(server.requests) == 1
    finally:
        server.close()


@pytest.mark.parametrize("url, allowed", [
    ("https://idp.example/jwks.json", True),
    ("http://127.0.0.1:8080/jwks.json", True),
    ("http://localhost/jwks.json", True),
    ("http://[::1]/jwks.json", True),
    ("http://idp.example/jwks.json", False),
    ("http://10.0.0.5/jwks.json", False),
    ("file:///etc/passwd", False),
    ("ftp://idp.example/jwks.json", False),
    ("data:application/json,{}", False),
    ("gopher://idp.example/", False),
    ("https://user:pass@idp.example/jwks.json", False),
    ("https://a@127.0.0.1/jwks.json", False),
    ("https://idp.example/jwks.json#frag", False),
    ("https:///jwks.json", False),
])
def test_jwks_uri_registration(url, allowed):
    if allowed:
        validate_jwks_uri(url)
    else:
        with pytest.raises(ValidationError):
            validate_jwks_uri(url)


@pytest.mark.parametrize("url", ["https://10.1.2.3/jwks", "https://192.168.0.1/jwks", "https://169.254.169.254/latest",
                                 "https://[fd00::1]/jwks"])
def test_private_addresses_refused_by_setting(url, settings):
    validate_jwks_uri(url)  # allowed by default
    settings.TOKEN_EXCHANGE = {"JWKS_ALLOW_PRIVATE_ADDRESSES": False}
    with pytest.raises(ValidationError) as refused:
        validate_jwks_uri(url)
    assert refused.value.code == "jwks_private"


def test_plain_http_allowed_by_setting(settings):
    settings.TOKEN_EXCHANGE = {"JWKS_ALLOW_HTTP": True}
    validate_jwks_uri("http://idp.example/jwks.json")


@pytest.mark.parametrize("url_host, peer, forbidden", [
    ("idp.example", "10.0.0.7", True),
    ("idp.example", "169.254.169.254", True),
    ("idp.example", "127.0.0.1", True),
    ("idp.example", "::ffff:127.0.0.1", True),
    ("idp.example", "fd00::1", True),
    ("idp.example", "0.0.0.0", True),
    ("idp.example", "93.184.215.14", False),
    ("127.0.0.1", "127.0.0.1", False),
    ("localhost", "127.0.0.1", False),
    ("[::1]", "::1", False),
])
def test_forbidden_peer_after_dns_resolution(url_host, peer, forbidden, settings):
    assert key_sources.forbidden_peer(url_host, peer) is False  # the default allows private addresses
    settings.TOKEN_EXCHANGE = {"JWKS_ALLOW_PRIVATE_ADDRESSES": False}
    assert key_sources.forbidden_peer(url_host, peer) is forbidden


def test_name_resolving_to_loopback_is_not_fetched_when_private_addresses_are_forbidden(db, ec_key, settings):
    import socket

    hostname = socket.gethostname()
    try:
        if not ipaddressof(hostname).is_loopback or hostname == "localhost":
            pytest.skip("this machine's hostname does not resolve to a loopback address")
    except OSError:
        pytest.skip("this machine's hostname does not resolve")
    server = JWKSServer()
    try:
        server.serve_keys((ec_key, "k1"))
        url = server.url.replace("127.0.0.1", hostname)
        settings.TOKEN_EXCHANGE = {"JWKS_ALLOW_PRIVATE_ADDRESSES": False}
        # Registered directly: a real deployment's name would be public and pass validation, then resolve inward.
        trusted = TrustedTokenIssuer.objects.create(name="Rebind", issuer="https://rebind.test", jwks_uri=url)
        with pytest.raises(SubjectTokenRejected) as rejected:
            validate_subject_token(mint(ec_key, trusted.issuer, kid="k1"))
        assert rejected.value.cause == "key_source_unavailable"
        assert server.requests == []
        trusted.refresh_from_db()
        assert "private or internal address" in trusted.key_fetch_error
        settings.TOKEN_EXCHANGE = {}
        key_sources.clear_caches()
        from django.core.cache import cache

        cache.clear()
        assert validate_subject_token(mint(ec_key, trusted.issuer, kid="k1")).ok  # allowed by default
    finally:
        server.close()


def ipaddressof(hostname):
    import ipaddress
    import socket

    return ipaddress.ip_address(socket.gethostbyname(hostname))


def test_listener_that_never_accepts(exchange, db, ec_key):
    """A full accept backlog: the connection is never accepted; the connect/read limits end the wait."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(server.getsockname())
            except BlockingIOError:
                pass
            fillers.append(filler)
        trusted = _jwks_issuer(f"http://127.0.0.1:{server.getsockname()[1]}/jwks.json")
        started = time.monotonic()
        assert_subject_rejected(exchange(mint(ec_key, trusted.issuer, kid="k1")), "key_source_unavailable")
        assert time.monotonic() - started < 3.0
        trusted.refresh_from_db()
        assert trusted.key_fetch_error == "The JWKS endpoint did not answer within the time limit."
    finally:
        for filler in fillers:
            filler.close()
        server.close()
