"""HTTP endpoints of the authorization server: token, introspection, JWKS, discovery.

``TokenView`` refuses malformed requests before any grant sees them (django-oauth-toolkit
keeps only the last value of a repeated parameter, so repeats are caught here)
and makes every error RFC 6749 §5.2 JSON with ``Cache-Control: no-store``. The
token-exchange grant is answered by grant.py from start to end; the other grants
(client_credentials, refresh_token, authorization_code) go through django-oauth-toolkit.
"""

import hashlib

import jwt
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as dot_views
from oauth2_provider.models import get_access_token_model

from . import client_auth, grant, signing, throttling
from .conf import project_settings
from .protocol import AUTHORIZATION_CODE, CLIENT_CREDENTIALS, REFRESH_TOKEN, TOKEN_EXCHANGE
from .registry import registry

#: Parameters that RFC 8693 / RFC 8707 allow to repeat.
REPEATABLE = {"audience", "resource"}
SECRET_PARAMETERS = ("client_secret", "subject_token", "actor_token", "refresh_token", "code", "password")


def oauth_error(error, description, status=400, headers=None):
    return grant.json_response({"error": error, "error_description": description}, status, headers)


def body_problem(request):
    """(error, description, status) when the request body cannot be parsed as a form, or None."""
    try:
        request.POST
    except RequestDataTooBig:
        return "invalid_request", "The request body is too large.", 413
    except (SuspiciousOperation, BadRequest, LookupError, UnicodeDecodeError, ValueError):
        # e.g. too many fields, a charset other than UTF-8, an unknown charset, a broken multipart body
        return "invalid_request", "The request body could not be read.", 400
    return None


def request_shape_problem(request):
    """(error, description, status) for a token request no grant should see, or None."""
    content_type = request.content_type or ""
    if content_type != "application/x-www-form-urlencoded":
        return "invalid_request", "The request body must be application/x-www-form-urlencoded.", 400
    if request.GET:
        return "invalid_request", "Parameters must be sent in the request body, not the URL.", 400
    problem = body_problem(request)
    if problem:
        return problem
    for key, values in request.POST.lists():
        if len(values) > 1 and key not in REPEATABLE:
            return "invalid_request", "The request repeats a parameter.", 400
    if not request.POST.get("grant_type"):
        return "invalid_request", "The grant_type parameter is required.", 400
    return None


class ThrottledClientAuthMixin:
    """Refuse (429) clients and addresses with too many failed client authentications; count failures.

    Also what Django's ``method_decorator`` would do, without its cost on every request (it rebuilds
    the wrapped method and reapplies the decorators per call): ``as_view()`` marks the view
    function CSRF-exempt (machine clients send no CSRF token) and login-not-required once, and
    ``dispatch`` names the POST parameters that error reports must hide, as
    ``sensitive_post_parameters`` does.
    """

    #: POST parameters hidden from Django's error reports (``SafeExceptionReporterFilter``).
    sensitive_parameters = SECRET_PARAMETERS

    @classmethod
    def as_view(cls, **initkwargs):
        return csrf_exempt(login_not_required(super().as_view(**initkwargs)))

    def dispatch(self, request, *args, **kwargs):
        request.sensitive_post_parameters = self.sensitive_parameters
        problem = body_problem(request)
        if problem:
            return oauth_error(*problem)
        client_id = throttling.presented_client_id(request)
        address = request.META.get("REMOTE_ADDR", "")
        wait = throttling.retry_after(client_id, address)
        if wait:
            return oauth_error(
                "temporarily_unavailable", "Too many failed client authentications. Retry later.", 429,
                {"Retry-After": str(wait)},
            )
        response = super().dispatch(request, *args, **kwargs)
        if response.status_code in (401, 403):  # introspection answers a failed client authentication with 403
            throttling.record_failure(client_id, address)
        return response


class _TokenViewBase(dot_views.TokenView):
    # DOT decorates TokenView.dispatch with method_decorator(csrf_exempt) and (login_not_required),
    # which only mark the view function, at a cost on every request; the mixin marks it once.
    dispatch = View.dispatch


class TokenView(ThrottledClientAuthMixin, _TokenViewBase):
    """POST /oauth2/token — every grant, token exchange included."""

    def post(self, request, *args, **kwargs):
        problem = request_shape_problem(request)
        if problem:
            error, description, status = problem
            return oauth_error(error, description, status)
        if request.POST.get("grant_type") == TOKEN_EXCHANGE:
            response = grant.exchange(  # our own path, start to end
                request.POST, authorization=request.META.get("HTTP_AUTHORIZATION"),
                client_address=request.META.get("REMOTE_ADDR", ""), http_request=request, sender=self,
            )
        else:
            try:
                response = super().post(request, *args, **kwargs)  # the other grants: DOT and oauthlib
            finally:  # DOT's post marks only password and client_secret sensitive; ours is a superset
                request.sensitive_post_parameters = self.sensitive_parameters
        if response.status_code == 401:
            response["WWW-Authenticate"] = 'Basic realm="oauth2", error="invalid_client"'
        return response

    def http_method_not_allowed(self, request, *args, **kwargs):
        return oauth_error("invalid_request", "The token endpoint accepts POST only.", 405, {"Allow": "POST"})

    # Django's View answers OPTIONS itself (200, empty HTML); the token endpoint offers POST only.
    options = http_method_not_allowed


def _audiences(access_token):
    """The ``aud`` values of one of our own access tokens (found by its checksum, so its claims are ours)."""
    try:
        aud = jwt.decode(access_token, options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError:
        return []
    if isinstance(aud, str):
        return [aud]
    return [value for value in aud if isinstance(value, str)] if isinstance(aud, list) else []


class IntrospectView(ThrottledClientAuthMixin, dot_views.IntrospectTokenView):
    """RFC 7662 introspection (client-authenticated), reporting the exchanged external ``sub``.

    Who may learn what (RFC 7662 §4): a client learns about a token only if the token was
    issued to it or names its client ID in ``aud``; an application marked ``resource_server``
    may introspect any token. Every other token is ``{"active": false}``, as an unknown one.
    The caller is the client authenticated by client_auth.py (Basic or body credentials);
    DOT's fallback to a bearer token with an ``introspection`` scope names no client here, and
    that scope is never granted (it is not in ``OAUTH2_PROVIDER["SCOPES"]``).
    """

    sensitive_parameters = ("client_secret", "token")

    def authenticate_client(self, request):
        try:
            result = client_auth.authenticate(
                request.META.get("HTTP_AUTHORIZATION"), request.POST.get("client_id"),
                request.POST.get("client_secret"), registry.application,
            )
        except client_auth.MultipleMethods:
            return False
        request.introspecting_client = result.application if result.ok else None
        return result.ok

    def get(self, request, *args, **kwargs):
        return self.get_token_response(request.GET.get("token"), getattr(request, "introspecting_client", None))

    def post(self, request, *args, **kwargs):
        return self.get_token_response(request.POST.get("token"), getattr(request, "introspecting_client", None))

    @staticmethod
    def may_learn(client, token, token_value):
        """Whether ``client`` may learn about ``token``: its own, naming it in aud, or a resource server asking."""
        if client is None:
            return False
        if client.resource_server or token.application_id == client.pk:
            return True
        return client.client_id in (token.resource or []) or client.client_id in _audiences(token_value)

    @staticmethod
    def get_token_response(token_value=None, client=None):
        if token_value is None:
            return oauth_error("invalid_request", "The token parameter is required.")
        try:
            checksum = hashlib.sha256(token_value.encode("utf-8")).hexdigest()
        except UnicodeEncodeError:
            checksum = None
        token = (
            get_access_token_model().objects.select_related("application", "user", "trusted_issuer")
            .filter(token_checksum=checksum).first()
            if checksum else None
        )
        if (
            token is None or not token.is_valid()
            or token.application_id is None or not token.application.is_usable(None)
            or not IntrospectView.may_learn(client, token, token_value)
        ):
            data = {"active": False}
        else:
            data = {
                "active": True,
                "iss": project_settings.CONSOLE_ISSUER,
                "sub": token.subject or (str(token.user.pk) if token.user else token.application.client_id),
                "client_id": token.application.client_id,
                "scope": token.scope,
                "exp": int(token.expires.timestamp()),
                "token_type": "Bearer",
            }
            if token.jti:
                data["jti"] = token.jti
            if token.subject and token.trusted_issuer_id:
                data["sub_id"] = signing.subject_identifier(token.trusted_issuer.issuer, token.subject)
            if token.user:
                data["username"] = token.user.get_username()
            if token.resource:
                data["aud"] = token.resource
        response = JsonResponse(data)
        response["Cache-Control"] = "no-store"
        return response


def livez(request):
    """Liveness: a constant JSON answer touching neither the database nor the cache.

    Also the benchmarks' ceiling: the cheapest request the full middleware stack serves.
    """
    return JsonResponse({"status": "ok"})


@method_decorator(cache_control(public=True, max_age=300), name="dispatch")
class JWKSView(View):
    def get(self, request):
        return JsonResponse(signing.published_jwks())


class DiscoveryView(View):
    """/.well-known/openid-configuration and /.well-known/oauth-authorization-server."""

    def get(self, request):
        base = request.build_absolute_uri("/").rstrip("/")
        document = {
            "issuer": project_settings.CONSOLE_ISSUER,
            "token_endpoint": base + reverse("oauth2:token"),
            "jwks_uri": base + reverse("oauth2:jwks"),
            "introspection_endpoint": base + reverse("oauth2:introspect"),
            "revocation_endpoint": base + reverse("oauth2:revoke"),
            "grant_types_supported": [TOKEN_EXCHANGE, REFRESH_TOKEN, CLIENT_CREDENTIALS, AUTHORIZATION_CODE],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [signing.active_key().algorithm],
            "scopes_supported": sorted(settings.OAUTH2_PROVIDER.get("SCOPES", {})),
            "token_endpoint_auth_signing_alg_values_supported": [signing.active_key().algorithm],
        }
        return JsonResponse(document)


class RevokeView(ThrottledClientAuthMixin, dot_views.RevokeTokenView):
    """RFC 7009 revocation (client-authenticated)."""

    sensitive_parameters = ("client_secret", "token")
