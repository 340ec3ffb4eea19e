"""Logging: request ids, one JSON object per line (``LOG_FORMAT=json``), secrets redacted.

``RequestIdMiddleware`` takes the proxy's ``X-Request-ID`` when it is a short,
plain token (else makes one), keeps it for the request's log records and
returns it in the response's ``X-Request-ID`` header.

No secret or token value is logged: the code logs identifiers only, the JSON
formatter writes a fixed set of record attributes plus simple ``extra`` values
(never the request object, hence never a request body), and every handler
carries ``RedactSecrets`` as a last line of defence: it redacts tokens, secrets
and Authorization values in case a future log line or a third-party library
logs one (tests/security/test_log_redaction.py checks every logger at DEBUG level).
"""

import contextvars
import datetime
import json
import logging
import re
import uuid

from django.core.signals import request_finished

REDACTED = "[redacted]"

_PATTERNS = (
    # Compact JWS/JWE: base64url JSON headers start with "eyJ".
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*"), REDACTED),
    # Authorization header values.
    (re.compile(r"(?i)\b(basic|bearer|digest)\s+[A-Za-z0-9+/=._~-]+"), r"\1 " + REDACTED),
    # Secret-bearing form or query parameters, in urlencoded or repr form.
    (re.compile(
        r"(?i)\b((?:client_secret|subject_token|actor_token|refresh_token|access_token|password|assertion)"
        r"['\"]?\s*[=:]\s*['\"]?)[^&\s'\",}]+"
    ), r"\1" + REDACTED),
)


def redact(text):
    """``text`` with every token, Authorization value and secret parameter replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (and formatted traceback) with secrets redacted; never drops a record."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler's own error path
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_request_id = contextvars.ContextVar("request_id", default="")

_INCOMING_ID = re.compile(r"\A[A-Za-z0-9._:-]{1,64}\Z")

_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}


def current_request_id():
    """The id of the request being served (empty outside a request)."""
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (empty outside a request)."""

    def filter(self, record):
        if not getattr(record, "request_id", None):
            record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, simple extras."""

    def format(self, record):
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "") or None,
        }
        for name, value in vars(record).items():
            if name in _STANDARD_ATTRIBUTES or name.startswith("_") or name in entry:
                continue
            if isinstance(value, (str, int, float, bool)) or value is None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False)


class RequestIdMiddleware:
    """Give every request an id, visible in its log records and the ``X-Request-ID`` header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        # Cleared at request_finished, not here: Django logs the response after the middleware returns.
        _request_id.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def _clear_request_id(**kwargs):
    _request_id.set("")


request_finished.connect(_clear_request_id, dispatch_uid="exchange.ops.logging.request_id")


def logging_config(log_format, level):
    """The LOGGING dict for settings.py."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "exchange.ops.logging.RequestIdFilter"},
            "redact_secrets": {"()": "exchange.ops.logging.RedactSecrets"},
        },
        "formatters": {
            "json": {"()": "exchange.ops.logging.JsonFormatter"},
            "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "text",
                "filters": ["request_id", "redact_secrets"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.server": {"level": "WARNING"},
        },
    }
