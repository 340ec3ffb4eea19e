"""Audit events of exchanges, their retention, request ids and JSON logs that never carry a secret."""

import datetime
import io
import json
import logging
from http import HTTPStatus

import jwt
import pytest
from django.core.management import call_command
from django.utils import timezone

from exchange.models import ExchangeEvent
from exchange.ops.logging import JsonFormatter, RedactSecrets, RequestIdFilter, logging_config, redact

from ..factories import mint, private_key
from ..utils import basic_auth, exchange_body, post_form


def exchange_with_id(client, application, subject_token, request_id):
    return post_form(client, "/oauth2/token", exchange_body(subject_token), HTTP_X_REQUEST_ID=request_id,
                     HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))


@pytest.fixture
def json_log():
    """Everything logged (DEBUG and up) during the test, through the production JSON formatter and filters."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


def test_successful_exchange_is_audited(client, pem_issuer, rsa_key, application):
    subject_token = mint(rsa_key, pem_issuer.issuer, sub="alice", jti="subject-jti-1")
    response = exchange_with_id(client, application, subject_token, "req-123")
    assert response.status_code == HTTPStatus.OK
    assert response["X-Request-ID"] == "req-123"
    issued = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    event = ExchangeEvent.objects.get()
    assert (event.outcome, event.cause) == ("issued", "")
    assert (event.trusted_issuer, event.issuer) == (pem_issuer, pem_issuer.issuer)
    assert (event.application, event.client_id) == (application, application.client_id)
    assert (event.subject, event.subject_jti, event.issued_jti) == ("alice", "subject-jti-1", issued["jti"])
    assert event.request_id == "req-123"
    assert abs((timezone.now() - event.created).total_seconds()) < 60


def test_rejection_is_audited_with_its_cause(exchange, pem_issuer, rsa_key, application):
    token = mint(rsa_key, pem_issuer.issuer, jti="again")
    exchange(token)
    response = exchange(token)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    event = ExchangeEvent.objects.order_by("-pk").first()
    assert (event.outcome, event.cause, event.issued_jti) == ("rejected", "replayed", "")
    assert event.client_id == application.client_id
    assert len(event.request_id) == 32  # generated: none was sent


def test_audit_snapshots_survive_deleting_the_application(exchange, pem_issuer, rsa_key, application):
    exchange(mint(rsa_key, pem_issuer.issuer))
    client_id = application.client_id
    application.delete()
    event = ExchangeEvent.objects.get()
    assert (event.application, event.client_id) == (None, client_id)


@pytest.mark.parametrize("incoming", ["", "has space", "x" * 65, "quote\"d", "ünïcode"])
def test_unusable_incoming_request_ids_are_replaced(client, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_prune_audit(settings):
    settings.TOKEN_EXCHANGE = {"AUDIT_RETENTION_DAYS": 30}
    now = timezone.now()
    for age in (0, 29, 31, 400):
        event = ExchangeEvent.objects.create(outcome="rejected", cause="malformed")
        ExchangeEvent.objects.filter(pk=event.pk).update(created=now - datetime.timedelta(days=age))

    out = io.StringIO()
    call_command("prune_audit", "--dry-run", "--json", stdout=out)
    assert json.loads(out.getvalue())["matched"] == 2
    assert ExchangeEvent.objects.count() == 4

    out = io.StringIO()
    call_command("prune_audit", "--json", stdout=out)
    assert json.loads(out.getvalue())["deleted"] == 2
    assert sorted((now - e.created).days for e in ExchangeEvent.objects.all()) == [0, 29]

    out = io.StringIO()
    call_command("prune_audit", "--days", "10", stdout=out)
    assert "Deleted 1 exchange event(s)" in out.getvalue()


def test_json_logs_carry_the_request_id_and_no_secret(exchange, pem_issuer, rsa_key, application, json_log, client):
    subject_token = mint(rsa_key, pem_issuer.issuer, sub="alice")
    response = exchange_with_id(client, application, subject_token, "trace-abc")
    access_token = response.json()["access_token"]
    exchange(subject_token)  # a replay: a 400 logged by django.request too
    exchange(subject_token, auth="Basic " + "A" * 40)  # bad client credentials
    records = json_log()
    audit = [r for r in records if r.get("event") == "token_exchange"]
    assert audit[0]["request_id"] == "trace-abc"
    assert (audit[0]["outcome"], audit[0]["client_id"], audit[0]["subject"]) == ("issued", application.client_id, "alice")
    assert audit[1]["cause"] == "replayed"
    text = "\n".join(json.dumps(r) for r in records)
    for secret in (subject_token, access_token, application.raw_secret, "A" * 40):
        assert secret not in text
    for segment in subject_token.split(".") + access_token.split("."):
        assert segment not in text
    request_logs = [r for r in records if r["logger"] == "django.request"]
    assert len(request_logs) == 2 and all(r["request_id"] for r in request_logs)


def test_redaction_of_token_shaped_values():
    token = mint(private_key("ec", "redact"), "https://x.test")
    assert redact(f"bad token {token} seen") == "bad token [redacted] seen"
    assert redact("Authorization: Bearer abcdefghijklmnop") == "Authorization: Bearer [redacted]"
    assert redact("Basic dXNlcjpwYXNzd29yZA==") == "Basic [redacted]"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token=%s", (token,), None)
    RedactSecrets().filter(record)
    assert token not in JsonFormatter().format(record)


def test_log_format_setting_selects_the_formatter():
    assert logging_config("json", "INFO")["handlers"]["console"]["formatter"] == "json"
    assert logging_config("text", "INFO")["handlers"]["console"]["formatter"] == "text"
