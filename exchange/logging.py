"""Keeping credentials out of logs: a filter that redacts tokens, secrets and Authorization values.

The code never logs subject tokens, client secrets or Authorization headers
(tests/test_hostile_logging.py checks every logger at DEBUG level); this filter,
installed on the log handlers in settings.LOGGING, is the second line of
defence against a future log line or a third-party library that would.
"""

import logging
import re

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
