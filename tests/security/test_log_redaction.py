"""subject_token, client_secret and Authorization values never reach log records or handlers' output."""

import io
import logging
from http import HTTPStatus

import pytest

from exchange.ops.logging import RedactSecrets, redact

from ..factories import mint, private_key
from ..utils import basic_auth, exchange_body, post_form

LOGGERS = ["", "django", "django.request", "django.server", "oauth2_provider", "oauthlib", "exchange", "urllib3"]


@pytest.fixture
def debug_logs(caplog):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _everything_logged(caplog):
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        # django.request attaches the request object itself (for the error reporter, which masks
        # sensitive_post_parameters and HTTP_AUTHORIZATION); formatters never print it.
        parts.extend(repr(v) for k, v in vars(record).items() if k not in ("args", "msg", "exc_info", "request"))
    return "\n".join(parts)


def test_no_secret_in_any_log_record(debug_logs, client, application, pem_issuer, rsa_key, jwks_issuer, jwks_server, settings):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 3}
    secrets = []
    good = mint(rsa_key, pem_issuer.issuer)
    bad = mint(private_key("rsa", "attacker"), pem_issuer.issuer)
    jwks_server.status = 500
    failing_jwks = mint(private_key("ec", "issuer-b"), jwks_issuer.issuer, kid="k1")
    auth = basic_auth(application.client_id, application.raw_secret)
    secrets += [good, bad, failing_jwks, application.raw_secret, auth.split()[1]]
    for token in (good, bad, failing_jwks, "garbage." + good):
        post_form(client, "/oauth2/token", exchange_body(token), HTTP_AUTHORIZATION=auth)
    post_form(client, "/oauth2/token", exchange_body(good, client_id=application.client_id,
                                                     client_secret=application.raw_secret))
    access = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer)),
                       HTTP_AUTHORIZATION=auth).json()["access_token"]
    secrets.append(access)
    post_form(client, "/oauth2/introspect", {"token": access}, HTTP_AUTHORIZATION=auth)
    wrong_secret = "wrong-secret-value-123"
    wrong = basic_auth(application.client_id, wrong_secret)
    secrets += [wrong_secret, wrong.split()[1]]
    for _ in range(5):  # failures, then throttled
        post_form(client, "/oauth2/token", exchange_body(good), HTTP_AUTHORIZATION=wrong)
        post_form(client, "/oauth2/token", exchange_body(good, client_id=application.client_id, client_secret=wrong_secret))
    client.post("/oauth2/token?client_secret=" + wrong_secret, "subject_token=" + good,
                content_type="application/x-www-form-urlencoded")
    logged = _everything_logged(debug_logs)
    assert debug_logs.records, "nothing was logged: the test would prove nothing"
    for secret in secrets:
        assert secret not in logged


def test_handlers_redact_what_a_future_log_line_might_leak():
    token = mint(private_key("rsa", "issuer-a"), "https://x.test")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("subject_token=%s client_secret=%s", token, "s3cret")
        logger.warning("headers %r", {"Authorization": "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"})
        try:
            raise ValueError(f"bad token {token}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert token not in output and "s3cret" not in output and "czZCaGRS" not in output
    assert output.count("[redacted]") >= 4


def test_the_configured_handlers_carry_the_filter():
    handlers = logging.getLogger().handlers
    configured = [h for h in handlers if any(isinstance(f, RedactSecrets) for f in h.filters)]
    assert configured, "settings.LOGGING must install exchange.ops.logging.RedactSecrets on its handlers"


@pytest.mark.parametrize("text, leaked", [
    ("Authorization: bearer abc.def", "abc.def"),
    ("client_secret=abc%20def&x=1", "abc%20def"),
    ("{'refresh_token': 'r1'}", "r1"),
    ("password: hunter2", "hunter2"),
])
def test_redact(text, leaked):
    assert leaked not in redact(text)


@pytest.mark.parametrize("grant_type", ["x", "refresh_token", "client_credentials",
                                        "urn:ietf:params:oauth:grant-type:token-exchange"])
@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=BoUnDaRy", "application/x-www-form-urlencoded"])
def test_sensitive_post_parameters_hide_secrets_in_error_reports(rf, grant_type, content_type):
    """Whichever path answers (ours, or DOT's post, which marks only password and client_secret)."""
    from urllib.parse import urlencode

    from django.test.client import encode_multipart
    from django.views.debug import SafeExceptionReporterFilter

    from exchange.views import TokenView

    form = {"client_secret": "s3cret", "subject_token": "tok", "refresh_token": "rt", "grant_type": grant_type}
    body = urlencode(form) if content_type.startswith("application") else encode_multipart("BoUnDaRy", form)
    request = rf.post("/oauth2/token", body, content_type=content_type, HTTP_AUTHORIZATION="Basic czZCaGRS")
    TokenView.as_view()(request)
    reporter = SafeExceptionReporterFilter()
    cleaned = reporter.get_post_parameters(request)
    assert cleaned["client_secret"] != "s3cret" and cleaned["subject_token"] != "tok" and cleaned["refresh_token"] != "rt"
    assert reporter.get_safe_request_meta(request)["HTTP_AUTHORIZATION"] != "Basic czZCaGRS"
    assert HTTPStatus  # imported for symmetry with the other suites
