"""exchange/key_sources.py function by function: which JWKS members become keys, the exact messages
administrators read about a fetch, and what the caches serve (mutation testing found these unpinned:
docs/testing.md)."""

import datetime
import json
import time

import pytest

from exchange import flows, key_sources
from exchange.registry import registry
from exchange.key_sources import KeySourceError, fetch_jwks, forbidden_peer, parse_jwks

from ..factories import certificate_pem, private_key, public_jwk
from ..utils import JWKSServer


def _message(call, *args):
    with pytest.raises(KeySourceError) as caught:
        call(*args)
    return caught.value.detail


# -- parse_jwks ------------------------------------------------------------------------------------

def test_a_usable_member_becomes_a_key():
    ec_key, rsa_key = private_key("ec", "issuer-b"), private_key("rsa", "issuer-a")
    (ec, rsa) = parse_jwks({"keys": [public_jwk(ec_key, "e1"), public_jwk(rsa_key, "r1", alg="PS256", use="sig",
                                                                         key_ops=["verify"])]})
    assert (ec.kid, ec.algorithms, ec.source, ec.description) == ("e1", frozenset({"ES256"}), "jwks", "EC P-256")
    assert (rsa.kid, rsa.algorithms, rsa.description) == ("r1", frozenset({"PS256"}), "RSA 2048")
    assert ec.not_before is None and ec.not_after is None
    (no_kid,) = parse_jwks({"keys": [{k: v for k, v in public_jwk(ec_key, "x").items() if k != "kid"}]})
    assert no_kid.kid is None


@pytest.mark.parametrize("name, extra", [
    ("encryption key", {"use": "enc"}),
    ("key_ops without verify", {"key_ops": ["sign"]}),
    ("key_ops not a list", {"key_ops": "verify"}),
    ("kid not a string", {"kid": 7}),
    ("private part d", {"d": "AAAA"}),
    ("private part p", {"p": "AAAA"}),
    ("private part q", {"q": "AAAA"}),
    ("private part dp", {"dp": "AAAA"}),
    ("private part dq", {"dq": "AAAA"}),
    ("private part qi", {"qi": "AAAA"}),
    ("alg of another kind", {"alg": "RS256"}),
    ("symmetric", {"kty": "oct"}),
    ("unknown type", {"kty": "XYZ"}),
])
def test_members_that_are_skipped(name, extra):
    good = public_jwk(private_key("ec", "issuer-b"), "good")
    bad = dict(public_jwk(private_key("ec", "other"), "bad"), **extra)
    assert [k.kid for k in parse_jwks({"keys": [bad, good]})] == ["good"]


def test_a_kid_used_twice_is_skipped_but_not_its_neighbours():
    a, b, c = (private_key("ec", name) for name in ("issuer-b", "other", "third"))
    keys = parse_jwks({"keys": [public_jwk(a, "twice"), public_jwk(b, "twice"), public_jwk(c, "once"), "junk"]})
    assert [k.kid for k in keys] == ["once"]


def test_weak_keys_are_skipped():
    weak = public_jwk(private_key("rsa1024", "weak"), "weak")
    assert parse_jwks({"keys": [weak]}) == []


@pytest.mark.parametrize("document", [None, [], "keys", {"keys": {}}, {"keys": "x"}, {"other": []}])
def test_documents_that_are_not_key_sets(document):
    assert _message(parse_jwks, document) == 'The response is not a JWKS document (no "keys" list).'


def test_the_key_count_bound():
    member = public_jwk(private_key("ec", "issuer-b"), "k")
    assert len(parse_jwks({"keys": [dict(member, kid=str(i)) for i in range(100)]})) == 100
    assert _message(parse_jwks, {"keys": [member] * 101}) == "The JWKS holds 101 keys; at most 100 are accepted."


# -- forbidden_peer ------------------------------------------------------------------------------

@pytest.mark.parametrize("url_host, peer, forbidden", [
    ("idp.example", "93.184.216.34", False),
    ("idp.example", "10.0.0.1", True),
    ("idp.example", "169.254.169.254", True),
    ("idp.example", "240.0.0.1", True),
    ("idp.example", "224.0.0.1", True),
    ("idp.example", "0.0.0.0", True),
    ("idp.example", "127.0.0.1", True),  # a public name resolving to loopback
    ("idp.example", "::ffff:127.0.0.1", True),
    ("idp.example", "::ffff:93.184.216.34", False),
    ("idp.example", "fe80::1%eth0", True),
    ("127.0.0.1", "127.0.0.1", False),  # loopback named explicitly
    ("[::1]", "::1", False),
    ("LOCALHOST", "127.0.0.1", False),
    ("10.0.0.1", "127.0.0.1", True),
    ("XLOCALHOST", "127.0.0.1", True),  # only exactly localhost (brackets stripped, nothing else)
])
def test_forbidden_peers(url_host, peer, forbidden, settings):
    settings.TOKEN_EXCHANGE = {"JWKS_ALLOW_PRIVATE_ADDRESSES": False}
    assert forbidden_peer(url_host, peer) is forbidden


def test_private_addresses_allowed_by_setting(settings):
    settings.TOKEN_EXCHANGE = {"JWKS_ALLOW_PRIVATE_ADDRESSES": True}
    assert forbidden_peer("idp.example", "10.0.0.1") is False


# -- fetch_jwks: what administrators read --------------------------------------------------------

@pytest.fixture
def server():
    server = JWKSServer()
    yield server
    server.close()


@pytest.mark.parametrize("url", ["ftp://idp.example/jwks", "file:///etc/passwd", "http://", "jwks.json"])
def test_urls_that_are_not_http(url):
    assert _message(fetch_jwks, url) == "The JWKS URL is not an http(s) URL."


@pytest.mark.parametrize("status, headers, body, message", [
    (302, {"Location": "http://127.0.0.1:1/"}, b"", "The JWKS endpoint redirected (HTTP 302); redirects are not followed."),
    (300, {}, b"", "The JWKS endpoint redirected (HTTP 300); redirects are not followed."),
    (399, {}, b"", "The JWKS endpoint redirected (HTTP 399); redirects are not followed."),
    (204, {}, b"", "The JWKS endpoint answered HTTP 204."),
    (400, {}, b"{}", "The JWKS endpoint answered HTTP 400."),
    (200, {"Content-Encoding": "gzip"}, b"{}", "The JWKS response is compressed; only identity encoding is accepted."),
    (200, {}, b"{", "The JWKS response is not valid JSON."),
    (200, {}, b" " * 65537, "The JWKS response is larger than 65536 bytes."),
])
def test_fetch_refusals_have_their_messages(server, status, headers, body, message):
    server.status, server.headers, server.body = status, headers, body
    assert _message(fetch_jwks, server.url) == message


def test_a_body_of_exactly_the_cap_is_read(server):
    document = json.dumps({"keys": []}).encode()
    server.body = document + b" " * (65536 - len(document))
    assert fetch_jwks(server.url) == {"keys": []}


def test_an_identity_encoding_is_accepted(server):
    server.headers = {"Content-Encoding": "IDENTITY"}
    assert fetch_jwks(server.url) == {"keys": []}
    server.headers = {"Content-Encoding": ""}
    assert fetch_jwks(server.url) == {"keys": []}


def test_what_the_fetch_sends(server):
    fetch_jwks(server.url.replace("/jwks.json", "/jwks.json?tenant=a"))
    (request,) = server.requests
    assert request["path"] == "/jwks.json?tenant=a"
    assert request["headers"]["Accept"] == "application/json, application/jwk-set+json"
    assert request["headers"]["User-Agent"] == "identity-console"


def test_an_unreachable_endpoint(db):
    listener = JWKSServer()
    url = listener.url
    listener.close()
    assert _message(fetch_jwks, url) == "The JWKS endpoint could not be reached."


# -- the caches ----------------------------------------------------------------------------------

def test_the_cache_key_names_the_issuer_and_its_url(jwks_issuer):
    key = key_sources._cache_key(jwks_issuer)
    digest = key.split(":")[2]
    assert key == f"jwks:{jwks_issuer.pk}:{digest}" and len(digest) == 16
    jwks_issuer.jwks_uri += "?v=2"
    assert key_sources._cache_key(jwks_issuer) != key


def test_a_fetch_is_recorded_on_the_issuer(jwks_issuer, jwks_server):
    key_sources.refresh_jwks(jwks_issuer)
    jwks_issuer.refresh_from_db()
    assert jwks_issuer.keys_fetched_at is not None and jwks_issuer.key_fetch_error == ""
    jwks_server.status = 500
    with pytest.raises(KeySourceError):
        key_sources.refresh_jwks(jwks_issuer)
    jwks_issuer.refresh_from_db()
    assert jwks_issuer.key_fetch_error == "The JWKS endpoint answered HTTP 500."
    assert jwks_issuer.key_fetch_failed_at is not None


def test_a_fetch_error_is_cut_to_its_column(jwks_issuer):
    key_sources._record_fetch(jwks_issuer, "x" * 300)
    jwks_issuer.refresh_from_db()
    assert jwks_issuer.key_fetch_error == "x" * 200


def test_a_document_that_is_not_a_key_set_is_a_failed_fetch(jwks_issuer, jwks_server):
    jwks_server.body = b"[]"
    with pytest.raises(KeySourceError):
        key_sources.refresh_jwks(jwks_issuer)
    assert key_sources.cache.get(key_sources._cache_key(jwks_issuer)) is None


def test_parsed_keys_are_reused_until_the_document_changes(jwks_issuer, jwks_server):
    first = key_sources.jwks_keys(jwks_issuer)
    assert key_sources.jwks_keys(jwks_issuer) is first  # in-process memo
    key_sources._recent.clear()
    assert key_sources.jwks_keys(jwks_issuer) is first  # parsed once per fetched document
    assert len(jwks_server.requests) == 1


def test_a_known_kid_is_served_from_memory_and_an_unknown_one_waits_for_the_cooldown(jwks_issuer, jwks_server):
    key_sources.jwks_keys(jwks_issuer, "k1")
    key_sources.jwks_keys(jwks_issuer, "k1")
    assert len(jwks_server.requests) == 1
    assert [k.kid for k in key_sources.jwks_keys(jwks_issuer, "k2")] == ["k1"]  # within the cooldown: what there is
    assert len(jwks_server.requests) == 1


def test_pem_keys_are_parsed_once_and_skip_unusable_certificates(db):
    key = private_key("rsa", "issuer-a")
    issuer = flows.create_trusted_token_issuer(name="P", issuer="https://p.test", certificates=[certificate_pem(key)])
    issuer.certificates.create(pem="not a certificate", fingerprint="x")
    (first,) = key_sources.pem_keys(issuer)
    assert (first.kid, first.source, first.description) == (None, "pem", "RSA 2048")
    assert first.algorithms == frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
    assert first.not_before is not None and first.not_after is not None
    assert key_sources.pem_keys(issuer)[0] is first


def test_the_configured_milliseconds_are_the_fetch_limits(server, monkeypatch, settings):
    settings.TOKEN_EXCHANGE = {"JWKS_CONNECT_TIMEOUT_MS": 1500, "JWKS_READ_TIMEOUT_MS": 700, "JWKS_TOTAL_TIMEOUT_MS": 2500}
    seen = {}
    real_timeout, real_watchdog = key_sources.urllib3.Timeout, key_sources._Watchdog

    def timeout(**limits):
        seen.update(limits)
        return real_timeout(**limits)

    class Watchdog(real_watchdog):
        def __init__(self, seconds):
            seen["total"] = seconds
            super().__init__(seconds)

    monkeypatch.setattr(key_sources.urllib3, "Timeout", timeout)
    monkeypatch.setattr(key_sources, "_Watchdog", Watchdog)
    assert fetch_jwks(server.url) == {"keys": []}
    assert seen == {"connect": 1.5, "read": 0.7, "total": 2.5}


def test_the_deadline_alone_makes_the_watchdog_pass():
    """Between the deadline and the timer's firing (a busy worker), reads already count as too late."""
    watchdog = key_sources._Watchdog(30)
    try:
        assert not watchdog.passed
        watchdog.deadline = time.monotonic() - 0.001
        assert watchdog.passed and not watchdog.expired
    finally:
        watchdog.cancel()


def test_the_in_process_memo_spares_shared_cache_reads(jwks_issuer, monkeypatch):
    key_sources.jwks_keys(jwks_issuer, "k1")  # fetched
    key_sources.jwks_keys(jwks_issuer, "k1")  # read from the shared cache once, then remembered
    reads = []
    real_get = key_sources.cache.get
    monkeypatch.setattr(key_sources.cache, "get", lambda *args: reads.append(args) or real_get(*args))
    assert [k.kid for k in key_sources.jwks_keys(jwks_issuer, "k1")] == ["k1"]
    assert [k.kid for k in key_sources.jwks_keys(jwks_issuer)] == ["k1"]
    assert reads == []


def test_an_issuer_read_from_the_database_sees_its_certificates_change(db):
    issuer = flows.create_trusted_token_issuer(
        name="P", issuer="https://p.test", certificates=[certificate_pem(private_key("rsa", "issuer-a"))])
    assert len(key_sources.pem_keys(issuer)) == 1
    flows.add_certificate(issuer, certificate_pem(private_key("rsa", "next")))
    assert len(key_sources.pem_keys(issuer)) == 2


def test_a_registry_issuer_keeps_its_keys_on_the_instance(pem_issuer):
    issuer = registry.issuer(pem_issuer.issuer)
    keys = key_sources.pem_keys(issuer)
    key_sources._pem_cache.clear()
    assert key_sources.pem_keys(issuer) is keys


def test_an_expired_certificate_still_gives_its_key_with_its_window(db):
    """The window is checked per token (valid_at), so the refusal can say the certificate expired."""
    key = private_key("rsa", "issuer-a")
    issuer = flows.create_trusted_token_issuer(name="P", issuer="https://p.test", certificates=[certificate_pem(key)])
    issuer.certificates.all().delete()
    issuer.certificates.create(pem=certificate_pem(key, not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
                                                   days=30), fingerprint="expired")
    (expired,) = key_sources.pem_keys(issuer)
    assert expired.not_after == datetime.datetime(2020, 1, 31, tzinfo=datetime.timezone.utc)
    assert not expired.valid_at(time.time()) and expired.valid_at(expired.not_after.timestamp())


def test_a_certificate_not_yet_valid_gives_its_key_with_its_window(db):
    """Both ends of the window are kept: a certificate's key does not verify before its not-before either."""
    key = private_key("rsa", "issuer-a")
    issuer = flows.create_trusted_token_issuer(name="F", issuer="https://f.test", certificates=[certificate_pem(key)])
    issuer.certificates.all().delete()
    start = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
    issuer.certificates.create(pem=certificate_pem(key, not_before=start, days=30), fingerprint="future")
    (future,) = key_sources.pem_keys(issuer)
    assert future.not_before == start
    assert not future.valid_at(time.time()) and not future.valid_at(start.timestamp() - 1)
    assert future.valid_at(start.timestamp())


def test_a_failure_in_another_process_ends_the_wait_at_once(jwks_issuer, settings):
    settings.TOKEN_EXCHANGE = {"JWKS_TOTAL_TIMEOUT_MS": 5000}
    key = key_sources._cache_key(jwks_issuer)
    key_sources.cache.set(f"{key}:error", "The JWKS endpoint answered HTTP 500.", 60)
    started = time.monotonic()
    assert key_sources._wait_for_fetch(key) is None
    assert time.monotonic() - started < 2.5  # not the 5 s deadline


def test_known_keys_keep_when_each_key_was_first_seen():
    """The issuer page's key table: a key fetched again keeps its first sighting; a new key (or a new key under
    an old kid) starts its own."""
    earlier = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    later = earlier + datetime.timedelta(hours=1)

    def key(kid, description, source="jwks"):
        return key_sources.VerificationKey(kid, object(), frozenset({"RS256", "PS256"}), source, description)

    first = key_sources.known_keys(None, [key("a", "RSA 2048")], earlier)
    assert first == [{"kid": "a", "key": "RSA 2048", "type": "RSA", "algorithms": ["PS256", "RS256"], "source": "jwks",
                      "first_seen": earlier.isoformat(), "last_seen": earlier.isoformat()}]
    second = key_sources.known_keys(first + ["not a key"], [key("a", "RSA 2048"), key("a", "RSA 4096", "pem")], later)
    assert [(k["key"], k["source"], k["first_seen"], k["last_seen"]) for k in second] == [
        ("RSA 2048", "jwks", earlier.isoformat(), later.isoformat()),
        ("RSA 4096", "pem", later.isoformat(), later.isoformat()),
    ]


class _FetchedWhileWaiting:
    """The issuer's lock, taken after another thread fetched ``state`` (and holds the refetch cooldown)."""

    def __init__(self, key, state):
        self.key, self.state = key, state

    def __enter__(self):
        key_sources.cache.set(self.key, self.state, 60)
        key_sources.cache.add(f"{self.key}:cooldown", 1, 30)

    def __exit__(self, *exc):
        return False


def test_keys_another_thread_fetched_while_this_one_waited_are_served(jwks_issuer, jwks_server, monkeypatch):
    """A stale document in the cache, and a newer one fetched by another thread while this one waited for the
    lock: the newer one answers (it has the new kid), with no fetch of this thread's own."""
    key = key_sources._cache_key(jwks_issuer)
    stale_at = time.time() - key_sources.exchange_settings.JWKS_CACHE_SECONDS - 1
    old = {"fetched_at": stale_at, "doc": {"keys": [public_jwk(private_key("ec", "old"), "old")]},
           "uri": jwks_issuer.jwks_uri}
    newer = {"fetched_at": time.time(), "doc": {"keys": [public_jwk(private_key("ec", "new"), "new")]},
             "uri": jwks_issuer.jwks_uri}
    key_sources.cache.set(key, old, 60)
    monkeypatch.setattr(key_sources, "_issuer_lock", lambda pk: _FetchedWhileWaiting(key, newer))
    assert [k.kid for k in key_sources.jwks_keys(jwks_issuer, "new")] == ["new"]
    assert jwks_server.requests == []


def test_a_fetch_in_another_process_that_never_ends_is_a_key_source_error(jwks_issuer, jwks_server, settings):
    """Another process holds the cooldown and neither its keys nor its failure arrive within the fetch deadline."""
    settings.TOKEN_EXCHANGE = {"JWKS_TOTAL_TIMEOUT_MS": 300}
    key_sources.exchange_settings.reload()
    key_sources.cache.add(f"{key_sources._cache_key(jwks_issuer)}:cooldown", 1, 30)
    assert _message(key_sources.jwks_keys, jwks_issuer, "k1") == (
        "The JWKS endpoint could not be read recently; retrying after a cooldown.")
    assert jwks_server.requests == []
