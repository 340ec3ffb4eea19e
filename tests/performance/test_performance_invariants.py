"""What keeps the token endpoint fast, pinned: database round trips per exchange, and caches that never outlive a change.

Speed itself is measured by `make bench`, never here. These tests pin the properties the
benchmarks rely on, and prove that the in-process caches (exchange/registry.py) let no
disabled or deleted issuer, changed certificate, changed allow-list, regenerated secret
or deleted application keep working beyond the documented bound.
"""

from http import HTTPStatus

import jwt
import pytest

from exchange import flows, registry as registry_module, signing
from exchange.models import Application, IssuerCertificate, TrustedTokenIssuer
from exchange.registry import Registry, registry
from exchange.protocol import JWT_TYPE
from exchange.subject_token import CAUSES

from ..factories import certificate_pem, mint, private_key
from ..utils import assert_oauth_error, basic_auth, exchange_body, post_form

#: An exchange, once the issuer and the application are cached. Without Redis (as here) the state
#: every worker must share lives in the database: the failed-authentication counters are read
#: (one SELECT); then one transaction records the subject token's jti as used (one INSERT … ON
#: CONFLICT statement, which refuses a replay), reads the issuer's last revocation (one SELECT,
#: FOR SHARE on PostgreSQL: a revocation racing the exchange, storage._check_not_revoked) and
#: writes the access token and the audit event.
#: In tests the surrounding test transaction turns that transaction into a SAVEPOINT/RELEASE
#: pair, which Django counts as queries.
EXCHANGE_QUERIES = 7


def _statements(captured):
    return [q["sql"].split()[0].upper() for q in captured.captured_queries]


def test_exchange_round_trips_are_pinned(exchange, pem_issuer, rsa_key, django_assert_num_queries):
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK  # fills the caches
    with django_assert_num_queries(EXCHANGE_QUERIES) as captured:
        assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    statements = _statements(captured)
    assert statements.count("SELECT") == 2 and "exchange_sharedcacheentry" in captured.captured_queries[0]["sql"]
    assert "tokens_revoked_at" in captured.captured_queries[-4]["sql"]  # inside the transaction
    assert statements.count("INSERT") == 3
    # One transaction: everything written after the read sits inside its outermost savepoint.
    assert statements[1] == "SAVEPOINT" and statements[-1] == "RELEASE"


def test_cold_exchange_reads_application_issuer_and_certificates_once(
        exchange, pem_issuer, rsa_key, django_assert_num_queries):
    signing.active_key()  # the signing key is loaded once per process, not per request
    registry.clear()
    # The application, the issuer, its certificates, and the links of each (TrustedTokenIssuer.applications).
    with django_assert_num_queries(EXCHANGE_QUERIES + 5) as captured:
        assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    assert _statements(captured).count("SELECT") == 7


def test_scopes_and_claim_mapping_add_no_query_to_a_warm_exchange(
        make_application, client, pem_issuer, rsa_key, django_assert_num_queries):
    """The scope registry is cached with issuers and applications; the mapping is on the cached issuer row.
    Cold, the registry costs one SELECT, once per change."""
    flows.create_scope(name="orders:read")
    flows.update_trusted_token_issuer(pem_issuer, claim_mappings=[
        {"source": "email", "target": "email", "type": "string", "required": True}])
    app = make_application(name="Orders", scopes="orders:read")

    def scoped_exchange():
        body = exchange_body(mint(rsa_key, pem_issuer.issuer, email="a@example.com"), scope="orders:read")
        response = post_form(client, "/oauth2/token", body, HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
        assert response.status_code == HTTPStatus.OK, response.content
        return response

    scoped_exchange()  # fills the caches
    with django_assert_num_queries(EXCHANGE_QUERIES):
        scoped_exchange()
    signing.active_key()
    registry.clear()
    with django_assert_num_queries(EXCHANGE_QUERIES + 5 + 1) as captured:  # + the scope registry
        scoped_exchange()
    assert sum("exchange_scope" in q["sql"] for q in captured.captured_queries) == 1


def test_client_credentials_still_reads_back_nothing_it_does_not_need(client, make_application, django_assert_max_num_queries):
    app = make_application(name="Machine", grant_types=["client_credentials"])
    body = {"grant_type": "client_credentials"}
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, app.raw_secret)}
    assert post_form(client, "/oauth2/token", body, **auth).status_code == HTTPStatus.OK
    with django_assert_max_num_queries(EXCHANGE_QUERIES + 1):  # DOT's view reads the token back
        assert post_form(client, "/oauth2/token", body, **auth).status_code == HTTPStatus.OK


# -- invalidation in the process that made the change: immediate ---------------------------

def _disable(issuer):
    issuer.enabled = False
    issuer.save()


def _replace_certificate(issuer):
    new_key = private_key("rsa", "replacement")
    flows.add_certificate(issuer, certificate_pem(new_key))
    flows.remove_certificate(issuer.certificates.order_by("created").first())


def _narrow_algorithms(issuer):
    issuer.allowed_algorithms = ["ES256"]
    issuer.save()


def _delete(issuer):
    issuer.delete()


CHANGES = {
    "issuer_disabled": _disable,
    "bad_signature": _replace_certificate,
    "algorithm_not_allowed": _narrow_algorithms,
    "unknown_issuer": _delete,
}


@pytest.mark.parametrize("cause", sorted(CHANGES))
def test_issuer_change_takes_effect_at_once_here(cause, exchange, pem_issuer, rsa_key):
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    CHANGES[cause](TrustedTokenIssuer.objects.get(pk=pem_issuer.pk))
    body = assert_oauth_error(exchange(mint(rsa_key, pem_issuer.issuer)), 400, "invalid_request")
    assert body["error_description"] == CAUSES[cause]


def test_regenerated_secret_takes_effect_at_once_here(exchange, pem_issuer, rsa_key, application):
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    new_secret = flows.regenerate_secret(Application.objects.get(pk=application.pk))
    assert_oauth_error(exchange(mint(rsa_key, pem_issuer.issuer)), 401, "invalid_client")
    application.raw_secret = new_secret
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK


def test_deleted_application_stops_at_once_here(exchange, pem_issuer, rsa_key, application):
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    Application.objects.get(pk=application.pk).delete()
    assert_oauth_error(exchange(mint(rsa_key, pem_issuer.issuer)), 401, "invalid_client")


# -- invalidation in the other workers: within REGISTRY_CHECK_MS -----------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture(params=["file", "shared-cache"])
def carrier(request, settings, tmp_path):
    """The version travels through a file under VAR_DIR (process-local cache) or the shared cache."""
    if request.param == "shared-cache":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                       "LOCATION": str(tmp_path / "shared-cache")}}
    return request.param


def _other_worker():
    """The caches another gunicorn worker holds: a separate Registry with its own clock."""
    clock = Clock()
    return Registry(clock=clock), clock


@pytest.mark.parametrize("change", [
    lambda issuer: TrustedTokenIssuer.objects.get(pk=issuer.pk).save(update_fields=["enabled"]) if False else _disable(issuer),
    _replace_certificate,
    _narrow_algorithms,
    _delete,
])
def test_issuer_change_reaches_other_workers_within_the_check_interval(carrier, pem_issuer, change, settings):
    worker, clock = _other_worker()
    before = worker.issuer(pem_issuer.issuer)
    assert before is not None and before.enabled
    change(TrustedTokenIssuer.objects.get(pk=pem_issuer.pk))
    assert worker.issuer(pem_issuer.issuer) is before  # still within the check interval
    clock.now += settings.TOKEN_EXCHANGE.get("REGISTRY_CHECK_MS", 1000) / 1000
    after = worker.issuer(pem_issuer.issuer)
    current = TrustedTokenIssuer.objects.filter(pk=pem_issuer.pk).prefetch_related("certificates").first()
    if current is None:
        assert after is None
    else:
        assert after is not before
        assert (after.enabled, after.allowed_algorithms) == (current.enabled, current.allowed_algorithms)
        assert [c.pem for c in after.certificates.all()] == [c.pem for c in current.certificates.all()]


def test_secret_change_reaches_other_workers_within_the_check_interval(carrier, application):
    worker, clock = _other_worker()
    old_hash = worker.application(application.client_id).client_secret
    flows.regenerate_secret(Application.objects.get(pk=application.pk))
    clock.now += 1.0
    assert worker.application(application.client_id).client_secret != old_hash


def test_new_issuer_replaces_a_cached_unknown_one(carrier, db):
    worker, clock = _other_worker()
    assert worker.issuer("https://late.test") is None
    flows.create_trusted_token_issuer(name="Late", issuer="https://late.test",
                                      certificates=[certificate_pem(private_key("rsa", "late"))])
    clock.now += 1.0
    assert worker.issuer("https://late.test") is not None


def test_change_is_announced_again_after_commit(pem_issuer, django_capture_on_commit_callbacks, monkeypatch):
    bumps = []
    monkeypatch.setattr(registry_module, "bump_version", lambda: bumps.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        _disable(TrustedTokenIssuer.objects.get(pk=pem_issuer.pk))
        assert len(bumps) == 1
    assert len(bumps) == 2  # after the commit: no worker keeps pre-commit rows


def test_changes_bypassing_signals_expire_with_the_maximum_age(pem_issuer, settings):
    worker, clock = _other_worker()
    assert worker.issuer(pem_issuer.issuer).enabled
    TrustedTokenIssuer.objects.filter(pk=pem_issuer.pk).update(enabled=False)  # no signal
    clock.now += 1.0
    assert worker.issuer(pem_issuer.issuer).enabled  # unseen until the entries expire
    clock.now += 60
    assert not worker.issuer(pem_issuer.issuer).enabled


def test_unreadable_version_means_nothing_cached_is_trusted(pem_issuer, monkeypatch):
    worker, clock = _other_worker()
    first = worker.issuer(pem_issuer.issuer)
    monkeypatch.setattr(registry_module, "shared_version", lambda: object())
    clock.now += 1.0
    assert worker.issuer(pem_issuer.issuer) is not first


def test_certificate_rows_are_cached_with_their_issuer(pem_issuer, django_assert_num_queries):
    worker, _ = _other_worker()
    worker.issuer(pem_issuer.issuer)
    expected = list(IssuerCertificate.objects.filter(trusted_issuer=pem_issuer).values_list("pk", flat=True))
    with django_assert_num_queries(0):
        issuer = worker.issuer(pem_issuer.issuer)
        assert [c.pk for c in issuer.certificates.all()] == expected


# -- the lean signer produces what jwt.encode would -------------------------------------------

@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_issued_tokens_match_pyjwt(algorithm):
    key = signing.generate_private_key(algorithm)
    loaded = signing.LoadedKey("kid-1", algorithm, key)
    claims = {"iss": "https://x.test", "sub": "alice", "aud": "a", "iat": 1, "exp": 2, "jti": "j"}
    token = signing._compact_jws(loaded, claims)
    expected = jwt.encode(claims, key, algorithm=algorithm, headers={"typ": "at+jwt", "kid": "kid-1"})
    if algorithm != "ES256":  # ECDSA signatures are randomized
        assert token == expected
    assert token.rsplit(".", 1)[0] == expected.rsplit(".", 1)[0]
    assert jwt.decode(token, key.public_key(), algorithms=[algorithm], audience="a",
                      options={"verify_exp": False}) == claims


def test_saving_an_issuer_while_redis_is_down_still_saves(pem_issuer, settings, monkeypatch):
    """With a Redis cache that cannot be reached, an administrator's change is saved (no 500), and
    another worker, unable to read the version either, trusts nothing it cached."""
    from django.core.cache.backends.redis import RedisCache

    broken = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.2}})
    monkeypatch.setattr(registry_module, "default_cache_is_local", lambda: False)
    monkeypatch.setattr(registry_module, "caches", {"default": broken})
    worker, clock = _other_worker()
    cached = worker.issuer(pem_issuer.issuer)
    pem_issuer.enabled = False
    pem_issuer.save()  # bump_version cannot reach Redis: logged, not raised
    assert not TrustedTokenIssuer.objects.get(pk=pem_issuer.pk).enabled
    clock.now += 1.0
    assert worker.issuer(pem_issuer.issuer) is not cached and not worker.issuer(pem_issuer.issuer).enabled


# -- delegation (issue 17): what an actor token adds ------------------------------------------

#: A delegated exchange (an actor token from another issuer that rejects reused jtis), warm: the
#: actor token's jti is recorded as used in the same transaction (one INSERT … ON CONFLICT) and
#: its issuer's last revocation is read there too (one SELECT, FOR SHARE on PostgreSQL). Nothing
#: else: the actor's issuer and the application's actor issuers come from the registry.
DELEGATED_EXCHANGE_QUERIES = EXCHANGE_QUERIES + 2


def test_a_delegated_exchange_adds_two_round_trips(client, make_application, pem_issuer, rsa_key,
                                                    django_assert_num_queries):
    actor_key = private_key("rsa", "actor-issuer")
    actor_issuer = flows.create_trusted_token_issuer(name="Actor issuer", issuer="https://actor.issuer.test",
                                                     certificates=[certificate_pem(actor_key)])
    app = make_application(name="Delegating", allow_delegation=True, actor_issuers=[actor_issuer])

    def delegate():
        body = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": mint(rsa_key, pem_issuer.issuer), "subject_token_type": JWT_TYPE,
                "actor_token": mint(actor_key, actor_issuer.issuer, sub="svc"), "actor_token_type": JWT_TYPE}
        return post_form(client, "/oauth2/token", body, HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))

    assert delegate().status_code == HTTPStatus.OK  # fills the caches
    with django_assert_num_queries(DELEGATED_EXCHANGE_QUERIES) as captured:
        assert delegate().status_code == HTTPStatus.OK
    statements = _statements(captured)
    assert statements.count("INSERT") == 4 and statements.count("SELECT") == 3
    assert sum("tokens_revoked_at" in q["sql"] for q in captured.captured_queries) == 2


def test_only_an_application_that_allows_delegation_loads_its_actor_issuers(make_application, pem_issuer,
                                                                             django_assert_num_queries):
    """Why the cold pin above did not move: the application and its links, and the actor issuers only with delegation."""
    plain = make_application(name="Plain", actor_issuers=[pem_issuer])
    delegating = make_application(name="Delegating", allow_delegation=True, actor_issuers=[pem_issuer])
    registry.clear()
    with django_assert_num_queries(2):
        assert registry.application(plain.client_id).actor_issuer_ids == frozenset()
    with django_assert_num_queries(3):
        assert registry.application(delegating.client_id).actor_issuer_ids == {pem_issuer.pk}
