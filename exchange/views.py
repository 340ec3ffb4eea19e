"""HTTP endpoints of the authorization server: token, introspection, JWKS, discovery.

``TokenView`` refuses malformed requests before any grant sees them (django-oauth-toolkit
keeps only the last value of a repeated parameter, so repeats are caught here)
and makes every error RFC 6749 §5.2 JSON with ``Cache-Control: no-store``. The
token-exchange grant is answered by grant.py from start to end; the other grants
(client_credentials, refresh_token, authorization_code) go through django-oauth-toolkit. The
authorization endpoint, sign-in pages and userinfo are in signin.py.
"""

import hashlib
import json
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as dot_views

from . import client_auth, grant, signing, throttling
from .conf import project_settings
from .models import AccessToken, RefreshToken
from .oauth2_validators import refresh_token_expires, refresh_token_is_live
from .protocol import AUTHORIZATION_CODE, CLIENT_CREDENTIALS, MANAGE_SCOPE, REFRESH_TOKEN, TOKEN_EXCHANGE
from .registry import registry

#: Parameters that RFC 8693 / RFC 8707 allow to repeat.
REPEATABLE = {"audience", "resource"}
SECRET_PARAMETERS = ("client_secret", "subject_token", "actor_token", "refresh_token", "code", "code_verifier",
                     "password")


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


def client_challenge(request, bearer=False):
    """The ``WWW-Authenticate`` of a failed client authentication (RFC 6749 §5.2).

    Basic, the scheme clients authenticate with here; Bearer when ``bearer`` (an endpoint that
    also takes a bearer token, as DOT's introspection does) and the client sent one, so the
    challenge matches the scheme the client used.
    """
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if bearer and authorization[:7].lower() == "bearer ":
        return 'Bearer realm="oauth2", error="invalid_token"'
    return 'Basic realm="oauth2", error="invalid_client"'


def drop_empty_scope(response):
    """Remove ``"scope": ""`` from a token response of oauthlib's grants (it always writes the member).

    RFC 6749 §3.3 defines no empty scope; clients parse ``""`` as the scope ``[""]``.
    """
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    if isinstance(body, dict) and body.get("scope") == "":
        del body["scope"]
        response.content = json.dumps(body)


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
        if response.status_code in (401, 403):
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
            if response.status_code >= 400 and not response["Content-Type"].startswith("application/json"):
                # an error raised while the token is made or saved (e.g. invalid_target) comes without headers
                response["Content-Type"] = "application/json"
                response["Cache-Control"] = "no-store"
        if response.status_code == 401:
            response["WWW-Authenticate"] = client_challenge(request)
        elif response.status_code == 200 and request.POST.get("grant_type") != TOKEN_EXCHANGE:
            drop_empty_scope(response)
        return response

    def http_method_not_allowed(self, request, *args, **kwargs):
        return oauth_error("invalid_request", "The token endpoint accepts POST only.", 405, {"Allow": "POST"})

    # Django's View answers OPTIONS itself (200, empty HTML); the token endpoint offers POST only.
    options = http_method_not_allowed


def find_token(token_value):
    """Our AccessToken or RefreshToken row for ``token_value`` (looked up by checksum), or None."""
    try:
        checksum = hashlib.sha256(token_value.encode("utf-8")).hexdigest()
    except UnicodeEncodeError:
        return None
    access = (
        AccessToken.objects.select_related("application", "user", "trusted_issuer")
        .filter(token_checksum=checksum).first()
    )
    if access is not None:
        return access
    return (
        RefreshToken.objects.select_related("application", "user", "trusted_issuer", "access_token")
        .filter(token_checksum=checksum, revoked=None).first()
    )


def introspection_answer(token):
    """The RFC 7662 §2.2 answer about ``token`` (an AccessToken or RefreshToken row, or None).

    An access token is described by the claims its JWT carries, rebuilt from its row
    (signing.row_claims: the same function that built the JWT), plus ``token_type``; a refresh
    token by its client, subject, scope and times (no ``aud``: it is presented only to this
    server). Anything else, or a token no longer honoured, is ``{"active": false}``.
    """
    if isinstance(token, AccessToken) and token.application_id and token.is_valid():
        data = {"active": True, **signing.row_claims(token), "token_type": "Bearer"}
    elif isinstance(token, RefreshToken) and refresh_token_is_live(token):
        access = token.access_token
        data = {"active": True, "iss": project_settings.CONSOLE_ISSUER,
                "sub": signing.token_subject(token),
                "client_id": token.application.client_id}
        if access.scope:
            data["scope"] = access.scope
        data["iat"] = int(token.created.timestamp())
        expires = refresh_token_expires(token)
        if expires is not None:
            data["exp"] = int(expires.timestamp())
        if token.subject and token.trusted_issuer_id:
            data["sub_id"] = signing.subject_identifier(token.trusted_issuer.issuer, token.subject)
    else:
        return {"active": False}
    if token.user_id:
        data["username"] = token.user.get_username()
    return data


class IntrospectView(ThrottledClientAuthMixin, dot_views.IntrospectTokenView):
    """RFC 7662 introspection (client-authenticated) of access and refresh tokens.

    A failed client authentication is RFC 6749 §5.2's 401 ``invalid_client`` (RFC 7662 §2.3),
    with a challenge naming the scheme the client used.

    Who may learn what (RFC 7662 §4): a client learns about a token only if the token was
    issued to it or names its client ID in ``aud``; an application marked ``resource_server``
    may introspect any token. Every other token is ``{"active": false}``, as an unknown one.
    The caller is the client authenticated by client_auth.py (Basic or body credentials);
    DOT's fallback to a bearer token with an ``introspection`` scope names no client here, so
    such a caller learns nothing (every token is ``{"active": false}``), even where an
    administrator registers and grants that scope.
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

    def unauthenticated_response(self, request, oauthlib_request=None):
        return oauth_error("invalid_client", "Client authentication failed.", 401,
                           {"WWW-Authenticate": client_challenge(request, bearer=True)})

    @staticmethod
    def may_learn(client, token):
        """Whether ``client`` may learn about ``token`` (an access or refresh token row): its own, naming
        it in ``aud`` (access tokens; a refresh token is presented only to this server), or a resource
        server asking."""
        if client is None:
            return False
        if client.resource_server or token.application_id == client.pk:
            return True
        return isinstance(token, AccessToken) and client.client_id in signing.stored_audience(token)

    @staticmethod
    def get_token_response(token_value=None, client=None):
        if token_value is None:
            return oauth_error("invalid_request", "The token parameter is required.")
        token = find_token(token_value)
        if token is not None and not (IntrospectView.may_learn(client, token) and token.application.is_usable(None)):
            token = None  # told as an unknown token: whether it exists is not for this client to learn
        response = JsonResponse(introspection_answer(token))
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


#: The metadata documents this server publishes (RFC 8414 §3, OpenID Connect Discovery §4).
METADATA_DOCUMENTS = ("oauth-authorization-server", "openid-configuration")
#: Client authentication methods of every endpoint (client_auth.py): no *_jwt method, so no signing algorithms.
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def metadata_paths():
    """Every path a client derives from the issuer to fetch this server's metadata.

    For an issuer with a path (``https://host/oauth2/token``): RFC 8414 §3.1 inserts the
    well-known segment before it (``/.well-known/oauth-authorization-server/oauth2/token``),
    OpenID Connect Discovery §4 appends it (``/oauth2/token/.well-known/openid-configuration``),
    and some clients ask at the root (``/.well-known/openid-configuration``). Each document is
    served in each form.
    """
    issuer_path = urlsplit(project_settings.CONSOLE_ISSUER).path.rstrip("/")
    paths = []
    for document in METADATA_DOCUMENTS:
        paths += [f"/.well-known/{document}{issuer_path}", f"{issuer_path}/.well-known/{document}",
                  f"/.well-known/{document}"]
    return list(dict.fromkeys(paths))


def server_metadata(request):
    """The authorization server metadata (RFC 8414 §2, OpenID Connect Discovery §3): exactly what this
    server serves now.

    Grants: token exchange, refresh, client credentials and the authorization code (with PKCE
    ``S256`` only, and ``iss`` in every authorization response, RFC 9207). Public clients
    authenticate with ``none`` at the token endpoint (the code flow only); the other endpoints take
    client secrets. ID tokens are signed with the algorithms of the published keys. Scopes: the scope
    registry's (exchange/scopes.py), those a client may be granted through these endpoints (never
    the console's management scope, which is granted by the console only). No end-session endpoint: sign-out is a page, not RP-initiated logout.
    """
    base = request.build_absolute_uri("/").rstrip("/")
    return {
        "issuer": project_settings.CONSOLE_ISSUER,
        "authorization_endpoint": base + reverse("signin:authorize"),
        "token_endpoint": base + reverse("oauth2:token"),
        "userinfo_endpoint": base + reverse("oauth2:userinfo"),
        "jwks_uri": base + reverse("oauth2:jwks"),
        "introspection_endpoint": base + reverse("oauth2:introspect"),
        "revocation_endpoint": base + reverse("oauth2:revoke"),
        "grant_types_supported": [AUTHORIZATION_CODE, TOKEN_EXCHANGE, REFRESH_TOKEN, CLIENT_CREDENTIALS],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing.id_token_algorithms(),
        "token_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "scopes_supported": sorted(set(registry.scopes()) - {MANAGE_SCOPE}),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
                             "preferred_username", "name", "given_name", "family_name", "email"],
        "prompt_values_supported": ["none", "login", "consent"],
    }


class DiscoveryView(View):
    """The metadata document at every path of ``metadata_paths``; any other ``.well-known`` path is 404."""

    def get(self, request, document, issuer_path=None):
        if request.path_info not in metadata_paths():
            raise Http404
        return JsonResponse(server_metadata(request))


class RevokeView(ThrottledClientAuthMixin, dot_views.RevokeTokenView):
    """RFC 7009 revocation (client-authenticated); a failed client authentication names the client's scheme."""

    sensitive_parameters = ("client_secret", "token")

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        if response.status_code == 401:
            response["WWW-Authenticate"] = client_challenge(request)
        return response
