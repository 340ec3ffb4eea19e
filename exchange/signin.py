"""Sign-in for the applications registered here: the authorization code flow (RFC 6749 §4.1) with
PKCE (RFC 7636) and OpenID Connect, through django-oauth-toolkit's own authorization endpoint.

- ``/oauth2/authorize`` is DOT's ``AuthorizationView`` with this server's rules: only
  ``response_type=code`` for applications allowed the Code grant (oauth2_validators.py), a
  ``redirect_uri`` always sent and compared exactly with a registered one, PKCE ``S256`` only
  (``pkce_required``; ``plain`` is refused, server.py), the scopes of ``granted_scopes``, a consent
  page each time (no consent is remembered; an application marked first-party skips it), and the
  request checked *before* anyone is asked to sign in, so a broken request never reaches the
  sign-in page. Refusals: a redirect with ``error`` (and ``state``, ``iss``) to a valid redirect
  URI, else a page saying what is wrong, never a redirect to an unregistered URI.
- ``/oauth2/signin`` signs a local user in (any active Django user: the console's administrators
  too, but the console itself still admits staff only). Throttled with the console sign-in's own
  counters (throttling.py, ``CONSOLE_LOGIN``): guesses on either page count together. Failures are
  logged on ``exchange.audit`` with the request id.
- ``/oauth2/signout`` signs the user out (POST; GET shows who is signed in).
"""

import logging

from django import forms
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider import views as dot_views
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.common import add_params_to_uri

from . import accounts, throttling
from .conf import exchange_settings, project_settings
from .protocol import MANAGE_SCOPE
from .registry import registry
from .subject_token import storable

audit_log = logging.getLogger("exchange.audit")


#: OpenID Connect's identity scopes (Core §5.4): what the sign-in itself says about the user to the
#: application. They are not role-gated: a user who may sign in to an application may tell it who they
#: are. Every other scope is an API scope and needs one of the user's roles (accounts.scopes_for_user).
IDENTITY_SCOPES = frozenset({"openid", "profile", "email"})


def granted_scopes(requested, application, user):
    """The scopes a sign-in grants, in the order asked: requested ∩ the application's allowed scopes, and,
    for an API scope, ∩ the user's role scopes (``accounts.scopes_for_user``: their groups' RoleScopes).

    The one place where a sign-in's scopes are decided (the authorization request, the consent page
    and the code all use it). Never the console's management scope: managing the console is not
    something an application's sign-in can hand out. The identity scopes (``IDENTITY_SCOPES``:
    ``openid``, ``profile``, ``email``) are not narrowed by roles; API scopes are, as a linked
    user's exchanged tokens are (accounts.narrow_scopes), so one user holds the same API scopes
    whichever way their token was obtained. ``user`` is the signed-in user, or None where it is
    not known yet (the request's first check, before anyone signs in): the consent page and the
    code are always decided with the user known, so the roles narrow there (one query, only when an
    API scope is still in play).
    """
    allowed = set((application.allowed_scopes or "").split()) if application is not None else set()
    granted = []
    for scope in requested or ():
        if scope in allowed and scope != MANAGE_SCOPE and scope not in granted:
            granted.append(scope)
    if getattr(user, "pk", None) is not None and any(scope not in IDENTITY_SCOPES for scope in granted):
        held = accounts.scopes_for_user(user)
        granted = [scope for scope in granted if scope in IDENTITY_SCOPES or scope in held]
    return granted


def pkce_required(client_id):
    """DOT's ``PKCE_REQUIRED``: always for public clients; for confidential ones unless
    ``TOKEN_EXCHANGE["PKCE_REQUIRED_FOR_CONFIDENTIAL_CLIENTS"]`` is turned off."""
    application = registry.application(client_id) if isinstance(client_id, str) else None
    if application is None or application.client_type != application.CLIENT_CONFIDENTIAL:
        return True
    return bool(exchange_settings.PKCE_REQUIRED_FOR_CONFIDENTIAL_CLIENTS)


def user_claims(user):
    """The OpenID Connect claims of a local user (filtered by scope by DOT's ``oidc_claim_scope``).

    ``sub`` is the user's local subject (``accounts.local_subject``, a UUID), replacing DOT's default
    (the primary key): the same ``sub`` as the access tokens issued for them, by this flow
    (signing.access_token_generator) or by an exchange for an external identity linked to them, and
    stable where the username may change. The ID token and userinfo both take it from here (DOT's
    ``get_claim_dict``). ``email_verified`` is not claimed: this server does not verify addresses.
    """
    if user is None:
        return {}
    claims = {"sub": accounts.local_subject(user), "preferred_username": user.get_username()}
    name = user.get_full_name() if hasattr(user, "get_full_name") else ""
    if name:
        claims["name"] = name
    if getattr(user, "first_name", ""):
        claims["given_name"] = user.first_name
    if getattr(user, "last_name", ""):
        claims["family_name"] = user.last_name
    if getattr(user, "email", ""):
        claims["email"] = user.email
    return claims


def with_issuer(uri):
    """RFC 9207: an authorization response (success or error) names this server's issuer in ``iss``."""
    parts = uri.split("#", 1)
    base = parts[0]
    if "?" in base:
        path, query = base.split("?", 1)
        kept = "&".join(p for p in query.split("&") if p and not p.startswith("iss="))
        base = path + ("?" + kept if kept else "")
    base = add_params_to_uri(base, [("iss", project_settings.CONSOLE_ISSUER)])
    return base if len(parts) == 1 else base + "#" + parts[1]


#: The page's sentence for each refusal that cannot be redirected to the application.
PAGE_ERRORS = {
    "missing_client_id": "The request does not name an application (client_id).",
    "invalid_client_id": "No application with this client ID can sign in here.",
    "missing_redirect_uri": "The request does not name a redirect URI (redirect_uri).",
    "invalid_redirect_uri": "The redirect URI is not registered for this application.",
    "mismatching_redirect_uri": "The redirect URI is not registered for this application.",
    "repeated_parameter": "The request repeats a parameter.",
    "invalid_request": "This is not a valid authorization request.",
    "bad_form": "The consent form was incomplete. Start the sign-in again from the application.",
}
_FATAL_CAUSES = {
    errors.MissingClientIdError: "missing_client_id",
    errors.InvalidClientIdError: "invalid_client_id",
    errors.MissingRedirectURIError: "missing_redirect_uri",
    errors.InvalidRedirectURIError: "invalid_redirect_uri",
    errors.MismatchingRedirectURIError: "mismatching_redirect_uri",
}
#: Parameters of an authorization request that must not repeat (RFC 6749 §3.1).
_SINGLE = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
           "code_challenge_method", "prompt")


def error_page(request, cause, status=400):
    response = render(request, "signin/error.html", {"title": "Sign-in refused", "cause": cause,
                                                      "message": PAGE_ERRORS[cause]}, status=status)
    add_never_cache_headers(response)
    return response


class ConsentForm(AllowForm):
    """DOT's consent form; ``scope`` may be empty (RFC 6749 §3.3: a request may ask for no scope)."""

    scope = forms.CharField(required=False, widget=forms.HiddenInput())


@method_decorator(never_cache, name="dispatch")
class AuthorizationView(dot_views.AuthorizationView):
    """GET/POST /oauth2/authorize — DOT's authorization endpoint, with the rules in this module's docstring.

    Nothing it answers is cached (the consent page holds a CSRF token, the redirects a code).
    """

    template_name = "signin/consent.html"
    form_class = ConsentForm

    def get_login_url(self):
        return reverse("signin:login")

    def dispatch(self, request, *args, **kwargs):
        self.oauth2_data = {}
        if not all(storable(key) and all(storable(value) for value in values)
                   for data in (request.GET, request.POST) for key, values in data.lists()):
            return error_page(request, "invalid_request")  # a NUL or lone surrogate: no store takes it (PostgreSQL)
        if request.method == "GET":
            for name in _SINGLE:
                if len(request.GET.getlist(name)) > 1:
                    return error_page(request, "repeated_parameter")
            if "redirect_uri" not in request.GET:
                return error_page(request, "missing_redirect_uri")
            # Consent is asked each time: DOT's approval_prompt=auto (skip it when a token exists) is not offered.
            request.GET = request.GET.copy()
            request.GET.pop("approval_prompt", None)
            # The request is checked before anyone signs in: a broken one is refused now, not after.
            try:
                _, credentials = self.validate_authorization_request(request)
            except OAuthToolkitError as error:
                return self.error_response(error, application=None)
            if "none" in request.GET.get("prompt", "").split():  # OpenID Connect Core §3.1.2.6
                application = registry.application(credentials["client_id"])
                if not request.user.is_authenticated:
                    return self._refuse("login_required", "The user is not signed in.", application)
                if not application.skip_authorization:
                    return self._refuse("consent_required", "The user must consent.", application)
        return super().dispatch(request, *args, **kwargs)

    def _refuse(self, error, description, application):
        params = [("error", error), ("error_description", description)]
        if self.request.GET.get("state"):
            params.append(("state", self.request.GET["state"]))
        return self.redirect(add_params_to_uri(self.request.GET["redirect_uri"], params), application)

    def validate_authorization_request(self, request):
        scopes, credentials = super().validate_authorization_request(request)
        application = registry.application(credentials["client_id"])
        user = request.user if request.user.is_authenticated else None
        return granted_scopes(scopes, application, user), credentials

    def error_response(self, error, application, **kwargs):
        oauthlib_error = getattr(error, "oauthlib_error", None)
        for kind, cause in _FATAL_CAUSES.items():
            if isinstance(oauthlib_error, kind):
                return error_page(request=self.request, cause=cause)
        if isinstance(oauthlib_error, errors.FatalClientError):
            return error_page(request=self.request, cause="invalid_request")
        return super().error_response(error, application, **kwargs)

    def redirect(self, redirect_to, application):
        return super().redirect(with_issuer(redirect_to), application)

    def form_valid(self, form):
        if registry.application(form.cleaned_data["client_id"]) is None:
            return error_page(self.request, "invalid_client_id")
        return super().form_valid(form)

    def form_invalid(self, form):
        return error_page(self.request, "bad_form")


class UserInfoView(dot_views.UserInfoView):
    """GET/POST /oauth2/userinfo — OpenID Connect Core §5.3, answered by DOT (claims: oauth2_validators.py).

    Machine clients send no CSRF token: exempt, as the token endpoint is.
    """

    @classmethod
    def as_view(cls, **initkwargs):
        return csrf_exempt(login_not_required(super().as_view(**initkwargs)))


@method_decorator([sensitive_post_parameters("password"), csrf_protect, never_cache, login_not_required],
                  name="dispatch")
class SignInView(auth_views.LoginView):
    """GET/POST /oauth2/signin — a local user signs in; throttled like the console's sign-in."""

    template_name = "signin/login.html"
    extra_context = {"title": "Sign in"}

    def get_default_redirect_url(self):
        return reverse("signin:logout")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["application"] = self._application()
        return context

    def _application(self):
        """The application the sign-in continues to (named by ``next``, an authorization request), or None."""
        redirect_to = self.get_redirect_url()
        if not redirect_to.startswith(reverse("signin:authorize") + "?"):
            return None
        client_id = QueryDict(redirect_to.split("?", 1)[1]).get("client_id")
        return registry.application(client_id) if client_id else None

    def post(self, request, *args, **kwargs):
        username = throttling.sign_in_name(request.POST.get("username"))
        address = request.META.get("REMOTE_ADDR", "")
        wait, response = throttling.throttled_sign_in(
            username, address, lambda: super(SignInView, self).post(request, *args, **kwargs),
            signed_in=lambda response: response.status_code == 302,
        )
        if wait:
            audit_log.warning("sign-in throttled", extra={"event": "signin_throttled", "username": username})
            form = self.get_form_class()(request, initial={"username": username})
            context = self.get_context_data(form=form, throttled=wait)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
        elif response.status_code != 302:
            audit_log.warning("sign-in failed", extra={"event": "signin_failed", "username": username})
        else:
            audit_log.info("signed in", extra={"event": "signed_in", "username": username})
        return response


@method_decorator([csrf_protect, never_cache, login_not_required], name="dispatch")
class SignOutView(View):
    """GET /oauth2/signout shows who is signed in; POST signs out (a GET never does: no sign-out by link)."""

    def get(self, request):
        return render(request, "signin/signout.html", {"title": "Sign out", "signed_out": False})

    def post(self, request):
        if request.user.is_authenticated:
            audit_log.info("signed out", extra={"event": "signed_out", "username": request.user.get_username()})
        logout(request)
        return render(request, "signin/signout.html", {"title": "Signed out", "signed_out": True})

