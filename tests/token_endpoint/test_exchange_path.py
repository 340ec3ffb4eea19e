"""The token exchange's own request path (grant.py, storage.py): what it writes and answers.

The behaviour every grant shares (errors, client authentication, throttling, audit, metrics)
is pinned by the other suites; these tests pin what is particular to the exchange's path:
rows written with prepared INSERT statements read back like rows the ORM wrote, repeated
audience/resource values are all checked, refusals never echo request text, and
``app_authorized`` still fires.
"""

import hashlib
import time
import uuid
from http import HTTPStatus

import jwt
import pytest
from oauth2_provider.signals import app_authorized

from exchange import storage
from exchange.models import AccessToken, ExchangeEvent, RefreshToken

from ..factories import mint
from ..utils import assert_oauth_error, basic_auth, exchange_body, post_form


def _claims(response):
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def test_issued_rows_read_back_like_orm_rows(exchange, pem_issuer, rsa_key, application):
    response = exchange(mint(rsa_key, pem_issuer.issuer, sub="alice", exp=int(time.time()) + 7200))
    assert response.status_code == HTTPStatus.OK, response.content
    raw = response.json()["access_token"]
    token = AccessToken.objects.get()
    assert token.token_checksum == hashlib.sha256(raw.encode()).hexdigest()
    assert token.token == ""  # RFC 9700 storage: only the checksum is kept
    assert (token.application, token.subject, token.trusted_issuer, token.user) == (
        application, "alice", pem_issuer, None)
    assert token.jti == _claims(response)["jti"]
    assert token.resource == [] and token.scope == ""
    assert token.created is not None and token.created == token.updated
    assert abs((token.expires - token.created).total_seconds() - application.token_lifetime) < 5
    assert token.is_valid()
    event = ExchangeEvent.objects.get()
    assert (event.outcome, event.cause, event.issued_jti, event.client_id, event.issuer, event.subject) == (
        "issued", "", token.jti, application.client_id, pem_issuer.issuer, "alice")


def test_refresh_token_row_and_family(make_application, client, pem_issuer, rsa_key):
    app = make_application(name="Refreshing", grant_types=["token_exchange", "refresh_token"])
    response = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer)),
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    # No scope was asked for, so none is granted and the member is absent (never "scope": "").
    assert list(body) == ["access_token", "expires_in", "token_type", "refresh_token", "issued_token_type"]
    refresh = RefreshToken.objects.get()
    assert refresh.access_token == AccessToken.objects.get()
    assert isinstance(refresh.token_family, uuid.UUID)
    assert refresh.token_checksum == hashlib.sha256(body["refresh_token"].encode()).hexdigest()
    assert refresh.revoked is None and refresh.trusted_issuer == pem_issuer


def test_every_allowed_audience_is_kept(make_application, client, pem_issuer, rsa_key):
    app = make_application(name="Two", allowed_audiences=["https://a.example", "https://b.example"])
    pairs = list(exchange_body(mint(rsa_key, pem_issuer.issuer)).items()) + [
        ("audience", "https://a.example"), ("resource", "https://b.example")]
    response = post_form(client, "/oauth2/token", pairs, HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == HTTPStatus.OK, response.content
    assert _claims(response)["aud"] == ["https://a.example", "https://b.example"]
    assert AccessToken.objects.get().resource == ["https://b.example"]


def test_a_refused_audience_anywhere_refuses_the_request(make_application, client, pem_issuer, rsa_key):
    app = make_application(name="Aud", allowed_audiences=["https://api.example"])
    pairs = list(exchange_body(mint(rsa_key, pem_issuer.issuer)).items()) + [
        ("audience", "https://evil.example"), ("audience", "https://api.example")]
    response = post_form(client, "/oauth2/token", pairs, HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_target")
    assert not AccessToken.objects.exists()


def test_refusals_carry_only_error_and_description(exchange, pem_issuer, rsa_key):
    response = exchange(mint(rsa_key, pem_issuer.issuer), state="<script>", scope="nope")
    body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_scope")
    # The scope registry names the problem in a fixed sentence: neither the unknown scope nor state is echoed.
    assert body == {"error": "invalid_scope", "error_description": "A requested scope is not a scope this server knows."}
    assert (response["Cache-Control"], response["Pragma"]) == ("no-store", "no-cache")
    assert ExchangeEvent.objects.get().cause == "invalid_scope"


def test_app_authorized_is_sent_with_the_stored_token(exchange, pem_issuer, rsa_key):
    received = []

    def receiver(sender, request, token, **kwargs):
        received.append(token)

    app_authorized.connect(receiver)
    try:
        assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    finally:
        app_authorized.disconnect(receiver)
    assert received == [AccessToken.objects.get()]


def test_insert_statement_names_every_column_once(db):
    from django.db import connection

    columns, sql, _ = storage._statement(ExchangeEvent, connection)
    names = [attname for attname, *_ in columns]
    assert len(names) == len(set(names)) == len(ExchangeEvent._meta.concrete_fields) - 1  # all but the pk
    assert "%s" not in sql.replace("%%", "")  # named placeholders only (no per-execution rewrite on SQLite)


def test_a_token_is_issued_only_with_its_audit_row(exchange, pem_issuer, rsa_key, monkeypatch):
    real_execute, table = storage.execute, ExchangeEvent._meta.db_table

    def broken(cursor, insert):
        if f'INSERT INTO "{table}"' in insert.sql:
            raise RuntimeError("audit store down")
        return real_execute(cursor, insert)

    monkeypatch.setattr(storage, "execute", broken)
    with pytest.raises(RuntimeError):
        exchange(mint(rsa_key, pem_issuer.issuer))
    assert not AccessToken.objects.exists()


def _columns(instance):
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_one_writer_for_token_rows(client, exchange, pem_issuer, rsa_key, make_application, monkeypatch):
    """The exchange and DOT's refresh grant write AccessToken and RefreshToken rows from the same row builders.

    The instances DOT receives (built without reading the rows back) hold what the database holds.
    """
    rows = []
    for name in ("access_token_row", "refresh_token_row"):
        real = getattr(storage, name)
        monkeypatch.setattr(storage, name, lambda real=real, name=name, **kw: rows.append(name) or real(**kw))
    written = []
    real_write = storage._write
    monkeypatch.setattr(storage, "_write", lambda *a: written.append(real_write(*a)) or written[-1])
    app = make_application(name="With refresh", grant_types=["token_exchange", "refresh_token"])
    body = exchange(mint(rsa_key, pem_issuer.issuer, sub="dave"), app=app).json()
    assert rows == ["access_token_row", "refresh_token_row"]
    refresh_body = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    refreshed = post_form(client, "/oauth2/token", refresh_body, HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content
    assert rows == ["access_token_row", "refresh_token_row"] * 2
    access, refresh = written
    assert _columns(AccessToken.objects.get(pk=access.pk)) == _columns(access)
    assert _columns(RefreshToken.objects.get(pk=refresh.pk)) == _columns(refresh)
    assert (access.subject, access.trusted_issuer_id, refresh.subject, refresh.access_token_id) == (
        "dave", pem_issuer.pk, "dave", access.pk)
    assert access.source_refresh_token_id is not None  # the refresh token it replaced (DOT's bookkeeping)
