"""Who may exchange which issuer's tokens (T63), explicit typing (T50), the issuer binding in issued
tokens (T77), and the database-backed shared store used without Redis."""

import time
from http import HTTPStatus

import pytest

from exchange import flows
from exchange.models import AccessToken, ExchangeEvent, SharedCacheEntry
from exchange.shared_cache import DatabaseStore
from exchange.subject_token import SubjectTokenRejected, validate_subject_token

from ..factories import certificate_pem, claims_for, mint, private_key
from ..utils import assert_subject_rejected, basic_auth, post_form, verify_issued

# -- T63: issuer–application links ------------------------------------------------------------------


@pytest.fixture
def other_issuer(db):
    key = private_key("rsa", "other-issuer")
    issuer = flows.create_trusted_token_issuer(name="Other", issuer="https://other.issuer.test",
                                               certificates=[certificate_pem(key)])
    issuer.key = key
    return issuer


@pytest.mark.parametrize("links, allowed", [
    ((), True),                                  # neither side linked: open, as WSO2 behaves
    (("issuer-app",), True),                     # linked to each other
    (("issuer-other",), False),                  # the issuer serves only another application
    (("app-other",), False),                     # the application accepts only another issuer
    (("issuer-other", "app-other"), False),
    (("issuer-app", "issuer-other"), True),      # an issuer may serve several applications
], ids=["open", "linked", "issuer-restricted-elsewhere", "app-restricted-elsewhere", "both-elsewhere", "shared"])
def test_links_decide_who_may_exchange(exchange, application, make_application, pem_issuer, other_issuer,
                                       rsa_key, links, allowed):
    someone_else = make_application(name="Someone else")
    for link in links:
        if link == "issuer-app":
            pem_issuer.applications.add(application)
        elif link == "issuer-other":
            pem_issuer.applications.add(someone_else)
        elif link == "app-other":
            other_issuer.applications.add(application)
    response = exchange(mint(rsa_key, pem_issuer.issuer))
    if allowed:
        assert response.status_code == HTTPStatus.OK, response.content
    else:
        assert_subject_rejected(response, "issuer_not_allowed")


def test_linking_takes_effect_at_once_through_the_caches(exchange, application, make_application, pem_issuer, rsa_key):
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK  # fills the caches
    pem_issuer.applications.add(make_application(name="Only this one"))
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer)), "issuer_not_allowed", issued_before=1)
    pem_issuer.applications.add(application)
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    pem_issuer.applications.clear()
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK


def test_a_refused_issuer_does_not_consume_the_jti(exchange, application, make_application, pem_issuer, rsa_key):
    pem_issuer.applications.add(make_application(name="Elsewhere"))
    token = mint(rsa_key, pem_issuer.issuer)
    assert_subject_rejected(exchange(token), "issuer_not_allowed")
    pem_issuer.applications.add(application)
    assert exchange(token).status_code == HTTPStatus.OK


def test_validation_without_a_client_ignores_links(pem_issuer, make_application, rsa_key):
    """The console's token test and the API's token-validations check the token itself, for no application."""
    pem_issuer.applications.add(make_application(name="Elsewhere"))
    report = validate_subject_token(mint(rsa_key, pem_issuer.issuer), replay="check")
    assert report.ok


def test_explain_token_names_the_missing_link(pem_issuer, application, make_application, rsa_key, capsys):
    from django.core.management import CommandError, call_command

    pem_issuer.applications.add(make_application(name="Elsewhere"))
    with pytest.raises(CommandError):
        call_command("explain_token", "--token", mint(rsa_key, pem_issuer.issuer), "--client-id", application.client_id)
    output = capsys.readouterr().out
    assert "FAIL  Trusted issuer" in output and "are not linked" in output
    assert "Rejected (issuer_not_allowed)" in output


# -- T50: explicit typing ---------------------------------------------------------------------------

@pytest.mark.parametrize("typ", ["dpop+jwt", "secevent+jwt", "logout+jwt", "DPoP+JWT", "application/logout+jwt",
                                 "token-introspection+jwt"])
def test_other_kinds_of_jwt_are_refused_for_every_issuer(exchange, pem_issuer, rsa_key, typ):
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer, headers={"typ": typ})), "wrong_type")


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+jwt", "application/jwt"])
def test_without_a_required_type_ordinary_types_pass(exchange, pem_issuer, rsa_key, typ):
    token = mint(rsa_key, pem_issuer.issuer, headers={"typ": typ}) if typ else _without_typ(rsa_key, pem_issuer)
    assert exchange(token).status_code == HTTPStatus.OK


@pytest.mark.parametrize("typ, accepted", [
    ("at+jwt", True), ("AT+JWT", True), ("application/at+jwt", True), ("Application/AT+JWT", True),
    ("JWT", False), ("jwt", False), ("dpop+jwt", False), ("at+jwt ", False), ("application/", False),
    ("at", False), (None, False),
])
def test_a_required_type_is_matched_as_a_media_type(exchange, pem_issuer, rsa_key, typ, accepted):
    pem_issuer.required_type = "at+jwt"
    pem_issuer.save()
    token = mint(rsa_key, pem_issuer.issuer, headers={"typ": typ}) if typ else _without_typ(rsa_key, pem_issuer)
    response = exchange(token)
    if accepted:
        assert response.status_code == HTTPStatus.OK, response.content
    else:
        assert_subject_rejected(response, "wrong_type")


@pytest.mark.parametrize("typ", [1, ["at+jwt"], {"a": 1}, True])
def test_a_typ_that_is_not_a_string_is_malformed(exchange, pem_issuer, rsa_key, typ):
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer, headers={"typ": typ})), "malformed")


@pytest.mark.parametrize("value", [" at+jwt", "at+jwt ", "at +jwt", "application/"])
def test_a_required_type_must_be_one_media_type(pem_issuer, value):
    from django.core.exceptions import ValidationError

    pem_issuer.required_type = value
    with pytest.raises(ValidationError):
        pem_issuer.full_clean()


def _without_typ(key, issuer):
    import jwt

    token = jwt.encode(claims_for(issuer.issuer), key, algorithm="RS256", headers={"typ": None})
    assert "typ" not in jwt.get_unverified_header(token)
    return token


# -- T77: the issuer binding in what we issue -------------------------------------------------------

def test_same_sub_from_two_issuers_gives_different_subject_identifiers(exchange, client, pem_issuer, other_issuer, rsa_key):
    first = exchange(mint(rsa_key, pem_issuer.issuer, sub="admin")).json()["access_token"]
    second = exchange(mint(other_issuer.key, other_issuer.issuer, sub="admin")).json()["access_token"]
    _, a = verify_issued(client, first)
    _, b = verify_issued(client, second)
    assert a["sub"] == b["sub"] == "admin"
    assert a["sub_id"] == {"format": "iss_sub", "iss": pem_issuer.issuer, "sub": "admin"}
    assert b["sub_id"] == {"format": "iss_sub", "iss": other_issuer.issuer, "sub": "admin"}


def test_refresh_and_introspection_keep_the_issuer_binding(client, make_application, pem_issuer, rsa_key, exchange):
    app = make_application(name="Refreshing", grant_types=["token_exchange", "refresh_token"])
    issued = exchange(mint(rsa_key, pem_issuer.issuer, sub="bob"), app=app).json()
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, app.raw_secret)}
    refreshed = post_form(client, "/oauth2/token", {"grant_type": "refresh_token",
                                                     "refresh_token": issued["refresh_token"]}, **auth)
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content
    _, claims = verify_issued(client, refreshed.json()["access_token"])
    assert claims["sub_id"] == {"format": "iss_sub", "iss": pem_issuer.issuer, "sub": "bob"}
    introspected = post_form(client, "/oauth2/introspect", {"token": refreshed.json()["access_token"]}, **auth).json()
    assert introspected["sub_id"] == {"format": "iss_sub", "iss": pem_issuer.issuer, "sub": "bob"}


def test_client_credentials_tokens_carry_no_subject_identifier(client, make_application):
    app = make_application(name="Machine", grant_types=["client_credentials"])
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials"},
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    _, claims = verify_issued(client, response.json()["access_token"])
    assert "sub_id" not in claims


# -- the database store (replay store and throttle counters without Redis) -------------------------

def test_store_add_is_first_writer_wins_until_expiry(db, time_machine):
    store, now = DatabaseStore(), time.time()
    time_machine.move_to(now, tick=False)
    assert store.add("k", 1, 10) is True
    assert store.add("k", 2, 10) is False
    assert store.get("k") == 1
    time_machine.shift(10)
    assert store.get("k") is None  # expired entries are never read
    assert store.add("k", 3, 10) is True  # ... and an expired entry is taken over
    assert store.get("k") == 3


def test_store_incr_counts_live_entries_only(db, time_machine):
    store, now = DatabaseStore(), time.time()
    time_machine.move_to(now, tick=False)
    with pytest.raises(ValueError):
        store.incr("n")
    store.add("n", 0, 5)
    assert store.incr("n") == 1 and store.incr("n", 2) == 3
    assert store.get_many(["n", "missing"]) == {"n": 3}
    time_machine.shift(5)
    with pytest.raises(ValueError):
        store.incr("n")


def test_store_prunes_expired_rows_as_it_writes(db, monkeypatch, time_machine, django_capture_on_commit_callbacks):
    from exchange import shared_cache

    monkeypatch.setattr(shared_cache, "_PRUNE_EVERY", 3)
    store, now = DatabaseStore(), time.time()
    time_machine.move_to(now, tick=False)
    store.add("old-1", 1, 1)
    store.add("old-2", 1, 1)
    time_machine.shift(2)
    with django_capture_on_commit_callbacks(execute=True):  # (once the writer's transaction commits)
        store.add("new", 1, 60)  # the third write deletes what has expired
    assert sorted(SharedCacheEntry.objects.values_list("key", flat=True)) == ["new"]


def test_replay_entries_without_redis_are_database_rows(exchange, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == HTTPStatus.OK
    assert SharedCacheEntry.objects.filter(key__startswith=f"jti:{pem_issuer.pk}:").count() == 1
    assert_subject_rejected(exchange(token), "replayed", issued_before=1)
    assert AccessToken.objects.count() == 1 and ExchangeEvent.objects.filter(cause="replayed").count() == 1


def test_the_replay_store_down_fails_closed_without_redis(exchange, pem_issuer, rsa_key, monkeypatch):
    from django.db import OperationalError

    def unavailable(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(DatabaseStore, "add", unavailable)
    assert_subject_rejected(exchange(mint(rsa_key, pem_issuer.issuer)), "replay_check_unavailable")


def test_direct_validation_reports_the_link_cause(pem_issuer, make_application, rsa_key):
    app = make_application(name="Unlinked")
    pem_issuer.applications.add(make_application(name="Linked"))
    app.refresh_from_db()
    with pytest.raises(SubjectTokenRejected) as caught:
        validate_subject_token(mint(rsa_key, pem_issuer.issuer), client=app, replay="check")
    assert caught.value.cause == "issuer_not_allowed"


def test_a_replay_that_passes_the_check_is_refused_when_recorded(exchange, pem_issuer, rsa_key, monkeypatch):
    """The replay is refused when its jti is recorded, in the transaction that writes the token (whatever
    a lookup beforehand said): the second request writes nothing but its audit row."""
    token = mint(rsa_key, pem_issuer.issuer)
    assert exchange(token).status_code == HTTPStatus.OK
    monkeypatch.setattr(DatabaseStore, "get", lambda self, key, default=None: default)  # the check sees nothing
    assert_subject_rejected(exchange(token), "replayed", issued_before=1)
    assert ExchangeEvent.objects.filter(outcome="issued").count() == 1
    assert SharedCacheEntry.objects.filter(key__startswith="jti:").count() == 1


def test_the_jti_is_recorded_only_with_the_token(exchange, pem_issuer, rsa_key, monkeypatch):
    """A failure writing the token rolls the jti back too: the subject token can be exchanged again."""
    from exchange import storage

    token = mint(rsa_key, pem_issuer.issuer)
    real_execute = storage.execute
    table = AccessToken._meta.db_table

    def failing_execute(cursor, insert):
        if f'INSERT INTO "{table}"' in insert.sql:
            raise RuntimeError("disk full")
        return real_execute(cursor, insert)

    monkeypatch.setattr(storage, "execute", failing_execute)
    with pytest.raises(RuntimeError):
        exchange(token)
    assert not SharedCacheEntry.objects.filter(key__startswith="jti:").exists()
    monkeypatch.setattr(storage, "execute", real_execute)
    assert exchange(token).status_code == HTTPStatus.OK


def test_an_unknown_replay_mode_is_refused(pem_issuer, rsa_key):
    """A misspelt mode must not fall through to a mode that records nothing."""
    with pytest.raises(ValueError):
        validate_subject_token(mint(rsa_key, pem_issuer.issuer), replay="deferred")
