"""Every API error as RFC 9457 problem details (``application/problem+json``).

One shape for all of them::

    {"type": "about:blank", "title": "Bad Request", "status": 400,
     "detail": "issuer: Trusted token issuer with this Issuer already exists.",
     "code": "invalid",
     "errors": {"issuer": ["Trusted token issuer with this Issuer already exists."]}}

``title`` is the HTTP status phrase (RFC 9457 §4.2.1 for ``about:blank``),
``detail`` one readable sentence, ``code`` a stable machine-readable word
(DRF's error codes: ``invalid``, ``parse_error``, ``not_authenticated``,
``permission_denied``, ``not_found``, ``method_not_allowed``, ...) and
``errors`` — on validation failures only — the messages per field (nested
fields joined with dots: ``certificates.0``).

Django's ``ValidationError`` raised by ``exchange.flows`` (the one set of
rules shared with the console and the commands) becomes a 400 here, so views
call the flows and never re-implement their checks.
"""

import logging
from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


def _flatten(data, prefix=""):
    """DRF's nested error structure → {"field.sub": ["message", ...]}."""
    flat = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = api_settings.NON_FIELD_ERRORS_KEY if key == "__all__" else str(key)
            for path, messages in _flatten(value, f"{prefix}.{name}" if prefix else name).items():
                flat.setdefault(path, []).extend(messages)
    elif isinstance(data, list) and data and all(not isinstance(item, (dict, list)) for item in data):
        flat[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(item) for item in data]
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if value:  # DRF reports an empty entry for valid list items
                flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
    elif data not in (None, ""):
        flat[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(data)]
    return flat


def _code(detail, default):
    """The first error code in a DRF detail structure."""
    if isinstance(detail, exceptions.ErrorDetail):
        return detail.code or default
    if isinstance(detail, dict):
        for value in detail.values():
            return _code(value, default)
    if isinstance(detail, list):
        for value in detail:
            if value:
                return _code(value, default)
    return default


def problem_document(status_code, detail, *, code, errors=None):
    """The problem-details body (also what exchange/ops/outage.py answers for the API outside DRF)."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return body


def problem(status_code, detail, *, code, errors=None, headers=None):
    """A problem-details response."""
    body = problem_document(status_code, detail, code=code, errors=errors)
    return Response(body, status=status_code, headers=headers, content_type=PROBLEM_JSON)


def problem_exception_handler(exc, context):
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: DRF's handling, rendered as problem details."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(serializers.as_serializer_error(exc))
    elif isinstance(exc, IntegrityError):
        # A concurrent request won a uniqueness race that validation had already checked.
        log.warning("Integrity error answered as 409", exc_info=True)
        exc = Conflict("The resource was changed by a concurrent request; retry.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        # The flows refuse with fixed sentences (service_accounts); Django's own denials carry none.
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    headers = {name: value for name, value in response.items() if name.lower() != "content-type"}
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        detail = "; ".join(
            f"{field}: {' '.join(messages)}" if field != api_settings.NON_FIELD_ERRORS_KEY else " ".join(messages)
            for field, messages in errors.items()
        ) or "Invalid input."
        return problem(response.status_code, detail, code=_code(exc.detail, "invalid"), errors=errors, headers=headers)
    detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data.get("detail", "")
    if isinstance(exc, exceptions.NotAuthenticated):
        # A bearer token was sent but refused: say so rather than "not provided".
        oauth2_error = getattr(context.get("request"), "oauth2_error", None) or {}
        if oauth2_error.get("error_description"):
            detail = exceptions.ErrorDetail(str(oauth2_error["error_description"]), code="invalid_token")
    if isinstance(detail, dict):  # e.g. DOT's {"detail": ..., "required_scopes": [...]}
        detail = detail.get("detail", "")
    code = _code(detail, getattr(exc, "default_code", "error"))
    return problem(response.status_code, str(detail), code=code, headers=headers)


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details (documentation only)."""

    type = serializers.CharField(help_text='Always "about:blank": the status code says what kind of problem it is.')
    title = serializers.CharField(help_text="The HTTP status phrase.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="A readable explanation of this occurrence.")
    code = serializers.CharField(help_text="A stable machine-readable error code.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="Validation errors only: messages per field (nested fields joined with dots).",
    )
