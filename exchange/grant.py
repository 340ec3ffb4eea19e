"""The RFC 8693 token-exchange grant, plugged into oauthlib/django-oauth-toolkit.

Request path (the view has already refused repeated parameters and bad shapes):
client authentication → the application allows the grant → parameters →
subject-token validation (subject_token.py) → token issued through DOT's
``save_token`` (signed by signing.py) → an ExchangeEvent recorded.

Instances are shared across threads: everything request-specific lives on
the oauthlib ``request``.
"""

import json
import logging

from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.base import GrantTypeBase

from .models import REFRESH_TOKEN, TOKEN_EXCHANGE, ExchangeEvent
from .scopes import MANAGE_SCOPE
from .subject_token import SubjectTokenRejected, validate_subject_token

log = logging.getLogger(__name__)

JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TOKEN_TYPES = (JWT_TYPE, ACCESS_TOKEN_TYPE)
REQUESTED_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TYPE)


class InvalidTargetError(errors.OAuth2Error):
    error = "invalid_target"
    description = "The requested audience or resource is not allowed for this client."


def _param(request, name):
    """A body parameter; empty values count as absent (RFC 6749 §3.2)."""
    return request._params.get(name) or None


def _all_values(request, name):
    return [value for key, value in (request.decoded_body or []) if key == name and value]


class TokenExchangeGrant(GrantTypeBase):
    def create_token_response(self, request, token_handler):
        headers = self._get_default_headers()
        try:
            self.validate_token_request(request)
        except errors.OAuth2Error as exc:
            record_event(request, cause=getattr(request, "rejection_cause", None) or exc.error)
            headers.update(exc.headers)
            return headers, exc.json, exc.status_code

        with_refresh = request.client.allows_grant_type(REFRESH_TOKEN)
        token = token_handler.create_token(request, refresh_token=with_refresh)
        token["issued_token_type"] = request.requested_token_type
        self.request_validator.save_token(token, request)
        record_event(request)
        return headers, json.dumps(token), 200

    def validate_token_request(self, request):
        if request.grant_type != TOKEN_EXCHANGE:
            raise errors.UnsupportedGrantTypeError(request=request)

        # Client authentication: confidential clients only.
        if not self.request_validator.authenticate_client(request):
            raise errors.InvalidClientError(request=request)
        if request.client.client_type != request.client.CLIENT_CONFIDENTIAL:
            raise errors.UnauthorizedClientError(
                description="Public clients cannot use token exchange.", request=request
            )
        if not request.client.allows_grant_type(TOKEN_EXCHANGE):
            raise errors.UnauthorizedClientError(
                description="The client is not allowed to use token exchange.", request=request
            )

        # Parameters.
        subject_token = _param(request, "subject_token")
        subject_token_type = _param(request, "subject_token_type")
        if subject_token is None:
            raise errors.InvalidRequestError(description="The subject_token parameter is required.", request=request)
        if subject_token_type is None:
            raise errors.InvalidRequestError(description="The subject_token_type parameter is required.", request=request)
        if subject_token_type not in SUBJECT_TOKEN_TYPES:
            raise errors.InvalidRequestError(description="The subject_token_type is not supported.", request=request)
        requested = _param(request, "requested_token_type") or ACCESS_TOKEN_TYPE
        if requested not in REQUESTED_TOKEN_TYPES:
            raise errors.InvalidRequestError(description="The requested_token_type is not supported.", request=request)
        if _param(request, "actor_token") or _param(request, "actor_token_type"):
            raise errors.InvalidRequestError(
                description="Delegation with an actor_token is not supported.", request=request
            )
        targets = _all_values(request, "audience") + _all_values(request, "resource")
        allowed_targets = request.client.allowed_audiences or []
        if any(target not in allowed_targets for target in targets):
            raise InvalidTargetError(request=request)
        request.requested_token_type = requested
        request.exchange_audience = targets[0] if len(targets) == 1 else (targets or None)
        # An empty scope parameter counts as absent (RFC 6749 §3.2), not as the scope "".
        if not (request.scope or "").strip():
            request.scope, request.scopes = None, []
        self.validate_scopes(request)
        if MANAGE_SCOPE in (request.scopes or []):
            # Managing the console is for the console's own clients, never for a third party's subject.
            raise errors.InvalidScopeError(
                description=f"The {MANAGE_SCOPE} scope cannot be obtained by token exchange.", request=request
            )

        # The subject token (last: its jti is consumed only when everything else holds).
        try:
            report = validate_subject_token(subject_token, client=request.client)
        except SubjectTokenRejected as exc:
            request.rejection_cause = exc.cause
            request.exchange_issuer = exc.report.issuer
            raise errors.InvalidRequestError(description=exc.description, request=request) from None
        request.exchange_issuer = report.issuer
        request.exchange_subject = report.claims["sub"]
        request.subject_jti = report.claims.get("jti") if isinstance(report.claims.get("jti"), str) else ""
        request.user = None


def record_event(request, cause=None):
    """Write the audit row for this exchange attempt; never lets a failure here break the response."""
    client = getattr(request, "client", None)
    try:
        ExchangeEvent.objects.create(
            outcome=ExchangeEvent.Outcome.REJECTED if cause else ExchangeEvent.Outcome.ISSUED,
            cause=(cause or "")[:40],
            trusted_issuer=getattr(request, "exchange_issuer", None),
            application=client if getattr(client, "pk", None) else None,
            subject=(getattr(request, "exchange_subject", None) or "")[:255],
            subject_jti=(getattr(request, "subject_jti", None) or "")[:255],
            issued_jti=getattr(request, "issued_jti", "") if not cause else "",
        )
    except Exception:
        log.exception("Could not record the token-exchange event")
