"""A database outage is a 503 with Retry-After in each surface's own format (exchange/ops/outage.py).

The outage is injected where the driver would raise it: every SQL statement (or every INSERT)
run through Django's connection raises Django's ``OperationalError`` from the driver's own
exception, as ``DatabaseErrorWrapper`` does. Which driver errors mean "unavailable" (and which
are bugs that must stay a 500) is a table of real and constructed exceptions. The real outage —
a PostgreSQL cluster restarted and stopped under load — is tests/ops/test_outage_postgres.py.
"""

import contextlib
import logging
import socket
import sqlite3
from http import HTTPStatus

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import DataError, IntegrityError, InterfaceError, OperationalError, ProgrammingError, connection
from django.test import Client, RequestFactory

from exchange import key_sources, shared_cache, signing, throttling, views
from exchange.models import AccessToken, ExchangeEvent, RefreshToken, SharedCacheEntry
from exchange.ops import outage

from ..factories import mint
from ..utils import basic_auth, post_form

RETRY_AFTER = str(outage.RETRY_AFTER_SECONDS)


@pytest.fixture(autouse=True)
def _shared_cache_trusted_again_afterwards():
    """An injected outage also reaches the shared-cache stand-ins (the throttle counters live in the
    database without Redis), which then skip it for a while: later tests must not inherit that."""
    yield
    for fallback in (shared_cache.jwks_cache, shared_cache.throttle_cache):
        fallback.clear_local()


def wrapped(driver_error, django_class=OperationalError):
    """Django's exception raised from ``driver_error``, as its DatabaseErrorWrapper raises it."""
    try:
        raise django_class(*driver_error.args) from driver_error
    except django_class as exc:
        return exc


def refused_connection_error():
    """A real psycopg error: a connection to a port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    try:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2)
    except psycopg.OperationalError as exc:
        return exc
    raise AssertionError("a connection to a closed port succeeded")


def sqlite_error(tmp_path, kind):
    """A real sqlite3 error: a missing table, or a write lock held by another connection."""
    path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        if kind == "missing_table":
            other.execute("SELECT * FROM no_such_table")
        holder.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        return exc
    finally:
        holder.close()
        other.close()
    raise AssertionError("no sqlite3 error")


UNAVAILABLE = [
    ("connection refused (real)", lambda tmp: wrapped(refused_connection_error())),
    ("connection lost", lambda tmp: wrapped(psycopg.OperationalError("the connection is lost"))),
    ("connection closed", lambda tmp: wrapped(psycopg.OperationalError("the connection is closed"))),
    ("consuming input failed", lambda tmp: wrapped(psycopg.OperationalError(
        "consuming input failed: server closed the connection unexpectedly"))),
    ("connect timeout", lambda tmp: wrapped(psycopg.errors.ConnectionTimeout("connection timeout expired"))),
    ("admin shutdown 57P01", lambda tmp: wrapped(psycopg.errors.AdminShutdown(
        "terminating connection due to administrator command"))),
    ("crash shutdown 57P02", lambda tmp: wrapped(psycopg.errors.CrashShutdown("crash shutdown"))),
    ("starting up 57P03", lambda tmp: wrapped(psycopg.errors.CannotConnectNow("the database system is starting up"))),
    ("too many connections 53300", lambda tmp: wrapped(psycopg.errors.TooManyConnections("too many clients"))),
    ("connection failure 08006", lambda tmp: wrapped(psycopg.errors.ConnectionFailure("connection failure"))),
    ("read-only standby 25006", lambda tmp: wrapped(psycopg.errors.ReadOnlySqlTransaction(
        "cannot execute INSERT in a read-only transaction"))),
    ("sqlite locked (real)", lambda tmp: wrapped(sqlite_error(tmp, "locked"))),
]

NOT_UNAVAILABLE = [
    ("undefined table", lambda tmp: wrapped(psycopg.errors.UndefinedTable("relation does not exist"),
                                            ProgrammingError)),
    ("syntax error", lambda tmp: wrapped(psycopg.errors.SyntaxError("syntax error"), ProgrammingError)),
    ("unique violation", lambda tmp: wrapped(psycopg.errors.UniqueViolation("duplicate key"), IntegrityError)),
    ("division by zero", lambda tmp: wrapped(psycopg.errors.DivisionByZero("division by zero"), DataError)),
    ("statement timeout 57014", lambda tmp: wrapped(psycopg.errors.QueryCanceled("canceling statement"))),
    ("cursor misuse", lambda tmp: wrapped(psycopg.InterfaceError("the cursor is closed"), InterfaceError)),
    ("sqlite missing table (real)", lambda tmp: wrapped(sqlite_error(tmp, "missing_table"))),
    ("Django error without a driver cause", lambda tmp: OperationalError("something")),
    ("InterfaceError without a driver cause", lambda tmp: InterfaceError("connection already closed")),
    ("not a database error", lambda tmp: ValueError("the connection is lost")),
]


@pytest.mark.parametrize("make", [case[1] for case in UNAVAILABLE], ids=[case[0] for case in UNAVAILABLE])
def test_errors_that_mean_the_database_is_unavailable(make, tmp_path):
    assert outage.database_unavailable(make(tmp_path))


@pytest.mark.parametrize("make", [case[1] for case in NOT_UNAVAILABLE], ids=[case[0] for case in NOT_UNAVAILABLE])
def test_errors_that_are_bugs_not_outages(make, tmp_path):
    assert not outage.database_unavailable(make(tmp_path))


def admin_shutdown():
    return wrapped(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))


@contextlib.contextmanager
def database_down(only=None):
    """Every SQL statement (or those ``only(sql)`` selects) fails as a restarted PostgreSQL makes it fail."""
    failed = []

    def fail(execute, sql, params, many, context):
        if only is None or only(sql):
            failed.append(sql)
            raise admin_shutdown()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield failed


EXCHANGE_TABLES = (
    "exchange_sharedcacheentry", "exchange_accesstoken", "exchange_refreshtoken", "exchange_exchangeevent",
)


def exchange_writes(sql):
    """The INSERTs of an exchange: its replay record (without Redis), its tokens, its audit event."""
    return sql.lstrip().upper().startswith("INSERT") and any(f'"{table}"' in sql for table in EXCHANGE_TABLES)


def assert_oauth_unavailable(response):
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == RETRY_AFTER
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"error": "temporarily_unavailable", "error_description": outage.DESCRIPTION}


def rows():
    return AccessToken.objects.count(), RefreshToken.objects.count(), ExchangeEvent.objects.count(), \
        SharedCacheEntry.objects.count()


# -- the token endpoint --------------------------------------------------------------------------


def test_token_exchange_while_the_database_is_down(exchange, subject_token):
    with database_down() as failed:
        response = exchange(subject_token)
    assert failed
    assert_oauth_unavailable(response)


def test_exchange_whose_write_fails_leaves_nothing_and_can_be_retried(exchange, subject_token):
    """The replay record, the tokens and the audit event commit together or not at all."""
    signing.active_key()  # created on first use: not part of the exchange
    before = rows()
    with database_down(only=exchange_writes) as failed:
        response = exchange(subject_token)
    assert failed and '"exchange_sharedcacheentry"' in failed[0], failed  # the replay record, first
    assert_oauth_unavailable(response)
    assert rows() == before
    retried = exchange(subject_token)
    assert retried.status_code == HTTPStatus.OK, retried.content
    assert ExchangeEvent.objects.filter(outcome="issued").count() == 1


def test_refused_exchange_whose_audit_row_cannot_be_written_is_503_not_400(exchange, pem_issuer, rsa_key):
    """A refusal that cannot be recorded may be the outage's doing: never a 400 with a misleading cause."""
    expired = mint(rsa_key, pem_issuer.issuer, exp=1000, iat=900)
    with database_down(only=exchange_writes) as failed:
        response = exchange(expired)
    assert len(failed) == 1 and '"exchange_exchangeevent"' in failed[0], failed
    assert_oauth_unavailable(response)
    assert exchange(expired).status_code == HTTPStatus.BAD_REQUEST  # once it is back: the real answer


def test_key_loading_that_hits_the_outage_is_503_not_key_source_unavailable(exchange, subject_token, monkeypatch):
    def down(issuer):
        raise admin_shutdown()

    monkeypatch.setattr(key_sources, "pem_keys", down)
    assert_oauth_unavailable(exchange(subject_token))


def test_client_credentials_while_the_database_is_down(client, make_application):
    app = make_application(grant_types=("client_credentials",))
    with database_down():
        response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials"},
                             HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert_oauth_unavailable(response)


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_introspection_and_revocation_while_the_database_is_down(client, auth, path):
    with database_down():
        response = post_form(client, path, {"token": "whatever"}, **auth)
    assert_oauth_unavailable(response)


@pytest.mark.parametrize("path, module, function", [
    ("/oauth2/jwks", signing, "published_jwks"),  # the signing keys are rows
    # Discovery reads no database today; were it to, an outage raised there gets the same answer.
    ("/.well-known/openid-configuration", views, "server_metadata"),
    ("/.well-known/oauth-authorization-server", views, "server_metadata"),
])
def test_jwks_and_discovery_when_what_they_read_is_down(client, db, monkeypatch, path, module, function):
    def down(*args, **kwargs):
        raise admin_shutdown()

    monkeypatch.setattr(module, function, down)
    assert_oauth_unavailable(client.get(path))


# -- the management API, the console, health -----------------------------------------------------


@pytest.fixture
def superuser_client(db):
    user = get_user_model().objects.create_superuser("outage-admin", password=None)
    staff = Client(HTTP_HOST="localhost")
    staff.force_login(user)
    return staff


@pytest.mark.parametrize("path", ["/api/server/v1/trusted-token-issuers", "/api/server/v1/applications/"])
def test_api_answers_problem_details(superuser_client, path):
    with database_down():
        response = superuser_client.get(path)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == RETRY_AFTER
    assert response["Content-Type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank", "title": "Service Unavailable", "status": 503,
        "detail": outage.DESCRIPTION, "code": "database_unavailable",
    }


def test_api_with_a_bearer_token(client, db):
    with database_down():
        response = client.get("/api/server/v1/applications", HTTP_AUTHORIZATION="Bearer some-token")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/console/", "/console/exchange/application/", "/console/login/"])
def test_console_answers_its_own_page(superuser_client, path):
    with database_down():
        response = superuser_client.get(path)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == RETRY_AFTER
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert "The console cannot reach its database" in page
    assert 'id="site-name"' in page and "console/console.css" in page  # the console's own look
    assert "Traceback" not in page and "AdminShutdown" not in page


def test_console_sign_in_post(client, db):
    with database_down():
        response = client.post("/console/login/", {"username": "someone", "password": "x" * 12})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "The console cannot reach its database" in response.content.decode()


def test_readyz_says_when_to_retry(client, db):
    with database_down():
        response = client.get("/readyz")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == RETRY_AFTER
    assert response.json()["checks"]["database"]["ok"] is False
    assert client.get("/healthz").status_code == HTTPStatus.OK  # the process itself is alive


def test_throttle_counters_unreadable_in_an_outage_are_a_503_without_traceback(client, auth, monkeypatch, caplog):
    """Wherever the counters live, an outage there is not "fail open with a logged traceback"."""
    def down(*args, **kwargs):
        raise admin_shutdown()

    monkeypatch.setattr(throttling.cache, "get_many", down)
    caplog.set_level(logging.INFO)
    assert_oauth_unavailable(post_form(client, "/oauth2/introspect", {"token": "t"}, **auth))
    assert all(r.exc_info is None and not r.exc_text for r in caplog.records)


# -- not an outage: a bug stays a 500 ------------------------------------------------------------


def test_a_programming_error_is_not_dressed_as_an_outage(exchange, subject_token):
    def bug(execute, sql, params, many, context):
        raise wrapped(psycopg.errors.UndefinedTable("relation does not exist"), ProgrammingError)

    with connection.execute_wrapper(bug), pytest.raises(ProgrammingError):
        exchange(subject_token)  # the test client re-raises what became a 500


@pytest.mark.parametrize("path, expected", [
    ("/oauth2/token", "application/json"),
    ("/api/server/v1/applications", "application/problem+json"),
    ("/console/", "text/html; charset=utf-8"),
    ("/no/such/path", "application/json"),
])
def test_handler500_answers_an_outage_raised_outside_a_view(db, path, expected):
    request = RequestFactory().get(path)
    try:
        raise admin_shutdown()
    except OperationalError:
        response = outage.server_error(request)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == RETRY_AFTER
    assert response["Content-Type"] == expected


def test_handler500_leaves_other_errors_to_django(db):
    request = RequestFactory().get("/oauth2/token")
    try:
        raise wrapped(psycopg.errors.UndefinedTable("relation does not exist"), ProgrammingError)
    except ProgrammingError:
        response = outage.server_error(request)
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR


# -- logging -------------------------------------------------------------------------------------


@pytest.fixture
def frozen_outage_clock(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(outage.outage_log, "clock", lambda: clock[0])
    outage.outage_log.reset()
    yield clock
    outage.outage_log.reset()


def test_logged_once_per_interval_with_request_id_and_no_traceback(client, db, frozen_outage_clock, caplog):
    caplog.set_level(logging.INFO)
    with database_down():
        for index in range(5):
            response = client.post("/oauth2/introspect", {"token": "t"}, HTTP_X_REQUEST_ID=f"req-{index}",
                                   HTTP_AUTHORIZATION="Basic eDp5")
            assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        frozen_outage_clock[0] += outage.LOG_INTERVAL_SECONDS
        client.post("/oauth2/introspect", {"token": "t"}, HTTP_X_REQUEST_ID="req-later",
                    HTTP_AUTHORIZATION="Basic eDp5")
    assert all(r.exc_info is None and not r.exc_text for r in caplog.records)  # no traceback, from anyone
    records = [r for r in caplog.records if r.name == "exchange.ops.outage"]
    assert len(records) == 2, [r.getMessage() for r in records]
    first, second = records
    assert first.request_id == "req-0" and second.request_id == "req-later"
    assert "AdminShutdown 57P01" in first.getMessage() and "1 such answer" in first.getMessage()
    assert "5 such answer" in second.getMessage()  # the four unreported, and its own
    assert not [r for r in caplog.records if r.name == "django.request"]  # no "Service Unavailable" per request
