"""The RFC 8693 token-exchange grant: the whole request, from client authentication to the response.

``views.TokenView`` hands every ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``
request to ``exchange`` after refusing repeated parameters and bad shapes
(the other grants go through django-oauth-toolkit). In order:

1. client policy (``check_client``): client authentication (client_auth.py) → a confidential
   client → the application allows the grant (``client_may_exchange``, also asked by ``explain_token``);
2. parameters (``check_parameters``): required, known token types, an actor token only with its type
   and for an application that allows delegation, audience/resource allowed; then the scope policy
   (``check_scope``);
3. the subject token (subject_token.py); its replay check is deferred to step 5; then, for a
   delegation (RFC 8693 §1.1), the actor token by the same routine, the subject's ``may_act``,
   the ``act`` chain's depth and the subject token's scopes (``check_actor``);
4. the local account (``resolve_local_account``, accounts.py): under the application's *attribute
   resolution for linked accounts*, the linked (or implicitly linked) local user the subject token
   is for; their role scopes narrow the granted ones. It comes after both tokens passed because it
   may write (an implicit link) and because it decides only the subject (``sub``): a delegated
   token keeps its ``act`` chain (the actor is never resolved to a local user) and the subject
   issuer's mapped claims are carried unchanged;
5. the access token signed (signing.py), a refresh token when the application also allows
   ``refresh_token``; then, in one transaction (storage.py), the subject token's ``jti`` (and the
   actor token's) recorded as used (``consume_replay``, one atomic statement: a replay is refused
   here and nothing is written) and the AccessToken, RefreshToken and ExchangeEvent rows written;
6. a refusal answers RFC 6749 §5.2 JSON and writes an ExchangeEvent with its cause code.

A database outage at any step is not a refusal: it propagates (also out of the replay step and
out of a refusal whose ExchangeEvent cannot be written), and exchange/ops/outage.py answers 503
with Retry-After. The transaction of step 5 then wrote nothing, so the client may send the same
subject token again.

This path does not build oauthlib's ``Request``/``Server`` nor DOT's ``OAuthLibCore``: that
machinery cost more instructions than the rest of the exchange (docs/performance.md). The
tokens it writes are DOT's own models, so introspection, revocation and the refresh_token
grant (through DOT) work on them as on any other token.

Nothing here keeps request state between calls: it lives on ``ExchangeRequest``.
"""

import datetime
import json
import logging
import time

from django.http import HttpResponse
from django.utils import timezone
from oauth2_provider.oauth2_validators import _parse_and_validate_uri
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.signals import app_authorized
from oauthlib.oauth2.rfc6749.tokens import random_token_generator

from . import accounts, client_auth, flows, signing, storage
from .models import AccessToken, is_scope_name
from .ops import outage
from .protocol import ACCESS_TOKEN_TYPE, JWT_TYPE, MANAGE_SCOPE, REFRESH_TOKEN, TOKEN_EXCHANGE
from .registry import registry
from .subject_token import ACTOR_CAUSES
from .subject_token import CAUSES as SUBJECT_TOKEN_CAUSES
from .subject_token import (
    MAX_ACT_DEPTH, SUBJECT_TOKEN_TYPES, SubjectTokenRejected, consume_replay, validate_subject_token,
)

log = logging.getLogger(__name__)

REQUESTED_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TYPE)
#: actor_token_type values (RFC 8693 §3): the kinds of token the subject-token routine checks.
ACTOR_TOKEN_TYPES = SUBJECT_TOKEN_TYPES

#: The fixed sentences of the delegation refusals decided here (the actor token's own causes are
#: ``actor_<cause>``, with the sentences of subject_token.ACTOR_CAUSES).
DELEGATION_CAUSES = {
    "actor_token_type_missing": "The actor_token_type parameter is required with an actor_token.",
    "actor_token_missing": "The actor_token_type parameter must not be sent without an actor_token.",
    "actor_token_type_unsupported": "The actor_token_type is not supported.",
    "delegation_not_allowed": "The client is not allowed to use delegation (actor_token).",
    "actor_is_subject": "The actor token must not be the subject token.",
    "actor_not_permitted": "The actor is not the party the subject token allows to act for it (may_act).",
    "act_chain_too_deep": SUBJECT_TOKEN_CAUSES["act_chain_too_deep"],
    "scope_not_in_subject_token": "A requested scope is not among the subject token's scopes.",
}


class ExchangeError(Exception):
    """A refusal: RFC 6749 §5.2 ``error`` (+ a fixed ``error_description``) and the HTTP status."""

    def __init__(self, error, description="", status=400, cause=None):
        super().__init__(error)
        self.error, self.description, self.status = error, description, status
        self.cause = cause or error  # the ExchangeEvent's cause code

    def response(self):
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return json_response(body, self.status)


def json_response(body, status=200, headers=None):
    """A JSON answer of the token endpoint (RFC 6749 §5.1, §5.2): never cached. views.py uses it too."""
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


class ExchangeRequest:
    """One token-exchange request: its form parameters and what the checks have learnt so far."""

    def __init__(self, form, authorization=None, client_address=""):
        self.form = form
        self.authorization = authorization
        self.client_address = client_address
        self.started = timezone.now()  # a revocation of the issuer's tokens after this refuses the exchange
        self.client = None  # the application, once named (kept for the audit trail)
        self.scopes = []
        self.requested_token_type = ACCESS_TOKEN_TYPE
        self.audience = None  # the requested audiences and resources (a list), once checked
        self.resources = []
        self.issuer = None  # the trusted issuer, once the subject token named one
        self.subject = None
        self.subject_jti = ""
        self.report = None  # the subject token's validation report, once it passed
        self.user = None  # the linked local user the token is for (None: the external identity)
        self.actor = storage.NO_ACTOR  # a delegation's actor (its issuer, sub, jti), as far as known
        self.actor_report = None  # the actor token's validation report, once it passed
        self.act_chain = []  # the issued token's act claim, outermost actor first

    def param(self, name):
        """A body parameter; empty values count as absent (RFC 6749 §3.2)."""
        return self.form.get(name) or None

    def values(self, name):
        """Every non-empty value of a repeatable parameter (audience, resource)."""
        return [value for value in self.form.getlist(name) if value]


def authenticate_client(request):
    """Client authentication: confidential clients only (client_auth.py is the one implementation)."""
    try:
        result = client_auth.authenticate(
            request.authorization, request.param("client_id"), request.param("client_secret"), registry.application
        )
    except client_auth.MultipleMethods:
        raise ExchangeError("invalid_request", "The client must not use more than one authentication method.") from None
    request.client = result.application
    if not result.ok:
        raise ExchangeError("invalid_client", status=401)


def client_may_exchange(client):
    """Why ``client`` (an authenticated application) may not use token exchange, as an ExchangeError; None if it may.

    The grant's client policy: a confidential client whose allowed grants include token exchange.
    The ``explain_token`` command asks the same question through this function.
    """
    if client.client_type != client.CLIENT_CONFIDENTIAL:
        return ExchangeError("unauthorized_client", "Public clients cannot use token exchange.")
    if not client.allows_grant_type(TOKEN_EXCHANGE):
        return ExchangeError("unauthorized_client", "The client is not allowed to use token exchange.")
    return None


def client_may_delegate(client):
    """Why ``client`` may not present an actor token, as an ExchangeError; None if it may.

    Delegation is per application and off by default (``Application.allow_delegation``); the
    ``explain_token`` command asks the same question through this function.
    """
    if not client.allow_delegation:
        return _delegation_refusal("delegation_not_allowed")
    return None


def _delegation_refusal(cause, error="invalid_request"):
    return ExchangeError(error, DELEGATION_CAUSES[cause], cause=cause)


def check_client(request):
    """Client policy: the client authenticates, and may use token exchange."""
    authenticate_client(request)
    refusal = client_may_exchange(request.client)
    if refusal is not None:
        raise refusal


def check_parameters(request):
    """Parameters: the required ones, known token types, the actor token's, allowed audiences and resources.

    Returns the subject token (validated last, by ``check_subject_token``).
    """
    subject_token = request.param("subject_token")
    subject_token_type = request.param("subject_token_type")
    if subject_token is None:
        raise ExchangeError("invalid_request", "The subject_token parameter is required.")
    if subject_token_type is None:
        raise ExchangeError("invalid_request", "The subject_token_type parameter is required.")
    if subject_token_type not in SUBJECT_TOKEN_TYPES:
        raise ExchangeError("invalid_request", "The subject_token_type is not supported.")
    requested = request.param("requested_token_type") or ACCESS_TOKEN_TYPE
    if requested not in REQUESTED_TOKEN_TYPES:
        raise ExchangeError("invalid_request", "The requested_token_type is not supported.")
    check_actor_parameters(request, subject_token)
    request.requested_token_type = requested
    check_targets(request)
    return subject_token


def check_actor_parameters(request, subject_token):
    """RFC 8693 §2.1: ``actor_token_type`` is REQUIRED with an ``actor_token`` and MUST NOT be sent without one.

    Then: a type the routine checks, an application that allows delegation, and an actor token
    that is not the subject token itself (a party does not act on its own behalf).
    """
    actor_token, actor_token_type = request.param("actor_token"), request.param("actor_token_type")
    if actor_token is None and actor_token_type is None:
        return
    if actor_token is None:
        raise _delegation_refusal("actor_token_missing")
    if actor_token_type is None:
        raise _delegation_refusal("actor_token_type_missing")
    if actor_token_type not in ACTOR_TOKEN_TYPES:
        raise _delegation_refusal("actor_token_type_unsupported")
    refusal = client_may_delegate(request.client)
    if refusal is not None:
        raise refusal
    if actor_token == subject_token:
        raise _delegation_refusal("actor_is_subject")


def check_targets(request):
    """``audience`` and ``resource``: each one the client's allowed audiences name; resources absolute URIs."""
    resources = request.values("resource")
    targets = request.values("audience") + resources
    allowed_targets = request.client.allowed_audiences or []
    if any(target not in allowed_targets for target in targets):
        raise ExchangeError("invalid_target", "The requested audience or resource is not allowed for this client.")
    for resource in resources:  # RFC 8707, as DOT checks it for its own grants
        if _parse_and_validate_uri(resource) is None:
            raise ExchangeError("invalid_target", f"The resource '{resource}' is not a valid resource indicator: "
                                                  "it must be an absolute URI with a scheme and host.")
    request.audience = targets or None
    request.resources = resources


#: invalid_scope's fixed sentences. Only a registered scope's name is ever named (the registry's text,
#: not the request's): an unknown or malformed value is never echoed.
SCOPE_MALFORMED = "The scope parameter must be scope names separated by single spaces."
SCOPE_UNKNOWN = "A requested scope is not a scope this server knows."
SCOPE_NOT_ALLOWED = "The scope {} is not allowed for this application."


def check_scope(request):
    """Scope policy: registered scopes the client is allowed, and never the console's management scope.

    No query: the scope registry is cached (registry.scopes), and read only when a scope is requested.
    """
    # An empty scope parameter counts as absent (RFC 6749 §3.2), not as the scope "".
    scope = request.param("scope")
    request.scopes = scope.strip().split(" ") if scope and scope.strip() else []
    if not request.scopes:
        return
    if not all(is_scope_name(name) for name in request.scopes):
        raise ExchangeError("invalid_scope", SCOPE_MALFORMED)
    if MANAGE_SCOPE in request.scopes:
        # Managing the console is for the console's own clients, never for a third party's subject.
        raise ExchangeError("invalid_scope", f"The {MANAGE_SCOPE} scope cannot be obtained by token exchange.")
    known = registry.scopes()
    if any(name not in known for name in request.scopes):
        raise ExchangeError("invalid_scope", SCOPE_UNKNOWN)
    available = get_scopes_backend().get_available_scopes(application=request.client)
    for name in request.scopes:
        if name not in available:
            raise ExchangeError("invalid_scope", SCOPE_NOT_ALLOWED.format(name))


def check_subject_token(request, subject_token):
    """The subject token (subject_token.py); its jti is recorded as used with the issued token, see issue()."""
    try:
        report = validate_subject_token(subject_token, client=request.client, replay="defer",
                                        token_type=request.param("subject_token_type"))
    except SubjectTokenRejected as exc:
        request.issuer = exc.report.issuer
        raise ExchangeError("invalid_request", exc.description, cause=exc.cause) from None
    request.report = report
    request.issuer = report.issuer
    request.subject = report.claims["sub"]
    jti = report.claims.get("jti")
    request.subject_jti = jti if isinstance(jti, str) else ""


def token_scopes(claims):
    """The scopes a token says it was granted, as a set: ``scope`` (a space-delimited string, RFC 8693
    §4.2, RFC 9068 §2.2.3), else ``scp`` (a string or a list of strings, as some providers send).

    None when it names none; a claim of another shape holds nothing (an empty set): fail closed.
    """
    if "scope" in claims:
        value = claims["scope"]
        return set(value.split()) if isinstance(value, str) else set()
    if "scp" in claims:
        value = claims["scp"]
        if isinstance(value, str):
            return set(value.split())
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return set(value)
        return set()
    return None


def may_act_allows(may_act, actor):
    """RFC 8693 §4.4: whether the subject token's ``may_act`` ({"sub", "iss"}, None when absent) names ``actor``.

    Both are compared exactly; ``may_act`` without ``iss`` names a subject of the subject token's
    own issuer (subject_token._party), so a namesake at another issuer never matches.
    """
    return may_act is None or (may_act["sub"] == actor["sub"] and may_act["iss"] == actor["iss"])


def delegation_chain(subject_report, actor_report):
    """The issued token's ``act`` chain (outermost first): the actor, above the subject token's own chain.

    Raises ExchangeError (``act_chain_too_deep``) beyond MAX_ACT_DEPTH actors.
    """
    claims = actor_report.claims
    chain = [{"sub": claims["sub"], "iss": claims["iss"]}, *subject_report.act_chain]
    if len(chain) > MAX_ACT_DEPTH:
        raise _delegation_refusal("act_chain_too_deep")
    return chain


def _actor_refusal(exc):
    return ExchangeError("invalid_request", exc.description, cause=f"actor_{exc.cause}")


def check_actor(request):
    """Delegation (RFC 8693 §1.1, §2.1, §4.1, §4.4), after the subject token; nothing without an actor token.

    The actor token goes through the subject token's own routine (role ``actor``: its issuer must
    be one the application accepts actor tokens from); its replay check is deferred like the
    subject token's. Then the subject's ``may_act`` must name the actor, the ``act`` chain stays
    within MAX_ACT_DEPTH, and the requested scopes must be among the subject token's scopes
    when it names any.
    """
    actor_token = request.param("actor_token")
    if actor_token is None:
        return  # no delegation: only sub crosses (the subject token's act is not copied)
    try:
        report = validate_subject_token(actor_token, client=request.client, replay="defer",
                                        token_type=request.param("actor_token_type"), role="actor")
    except SubjectTokenRejected as exc:
        request.actor = storage.Actor(trusted_issuer=exc.report.issuer)
        raise _actor_refusal(exc) from None
    claims = report.claims
    jti = claims.get("jti")
    request.actor_report = report
    request.actor = storage.Actor(report.issuer, claims["sub"], jti if isinstance(jti, str) else "")
    if not may_act_allows(request.report.may_act, {"sub": claims["sub"], "iss": claims["iss"]}):
        raise _delegation_refusal("actor_not_permitted")
    request.act_chain = delegation_chain(request.report, report)
    held = token_scopes(request.report.claims)
    if held is not None and not set(request.scopes) <= held:
        raise _delegation_refusal("scope_not_in_subject_token", error="invalid_scope")


def resolve_local_account(request):
    """Linked accounts: the local user the token is for, by the application's setting (accounts.resolve).

    Nothing is read when the application's setting is *Disabled* (the default). Otherwise the
    (issuer, sub) link is read (one query); an implicit link found by the issuer's lookup attributes
    is saved (audited, flows.link_implicitly); a linked user's scopes narrow the requested ones (one
    query when a scope was requested). Refusals: accounts.CAUSES.
    """
    mode = request.client.linked_accounts
    if mode == request.client.LinkedAccounts.DISABLED:
        return
    try:
        resolution = accounts.resolve(request.issuer, request.subject, request.report.claims, mode)
        if resolution.user is None:
            return
        link = flows.link_implicitly(resolution.link, request.client) if resolution.new_link else resolution.link
    except accounts.LinkRefused as exc:
        raise ExchangeError(exc.error, exc.description, cause=exc.cause) from None
    request.user = link.user
    request.scopes = accounts.narrow_scopes(request.scopes, request.user)


def validate_token_request(request):
    """Every check of the grant, in order; raises ExchangeError. The tokens, then the local account, come last."""
    check_client(request)
    subject_token = check_parameters(request)
    check_scope(request)
    check_subject_token(request, subject_token)
    check_actor(request)
    resolve_local_account(request)


def bounded_lifetime(client, subject_claims, now, actor_claims=None):
    """The issued token's lifetime in seconds, and the subject token's expiry it is bounded by (or None).

    An application ``bound_to_subject_token`` never issues a token that outlives the subject
    token: ``exp`` is at most the subject token's ``exp`` (a subject token accepted within the
    issuer's clock skew after its ``exp`` leaves nothing to issue: refused as expired). A
    delegated token does not outlive the actor token either (``actor_claims``): the actor's
    proof of who it is ends there.
    """
    lifetime = client.token_lifetime
    if not client.bound_to_subject_token:
        return lifetime, None
    bound = int(subject_claims["exp"])  # required and a number (subject_token.py)
    if bound - now <= 0:
        raise ExchangeError("invalid_request", SUBJECT_TOKEN_CAUSES["expired"], cause="expired")
    if actor_claims is not None:
        actor_exp = int(actor_claims["exp"])
        if actor_exp - now <= 0:
            raise ExchangeError("invalid_request", ACTOR_CAUSES["expired"], cause="actor_expired")
        bound = min(bound, actor_exp)
    return min(lifetime, bound - now), datetime.datetime.fromtimestamp(bound, tz=datetime.timezone.utc)


def issue(request):
    """Sign the access token (+ a refresh token), write the rows; the token response body.

    The AccessToken row is written from the claims the JWT is signed with (storage.access_token_row),
    so introspection and refresh read back exactly what the token says.
    """
    client = request.client
    now = int(time.time())
    actor_report = request.actor_report
    try:
        lifetime, not_after = bounded_lifetime(client, request.report.claims, now,
                                               actor_report.claims if actor_report is not None else None)
    except ExchangeError as exc:
        # A token already used is refused as a replay first, as it would be without the bound. Only the
        # expired token's jti is recorded: the other one may still be exchanged (a fresh actor token).
        if exc.cause == "expired":
            _consume(request.report, lambda rejected: ExchangeError(
                "invalid_request", rejected.description, cause=rejected.cause))
        else:
            _consume(actor_report, _actor_refusal)
        raise
    scope = " ".join(request.scopes)
    # A linked local user's token: their stable local subject as sub; sub_id still names the external identity.
    sub = request.subject if request.user is None else accounts.local_subject(request.user)
    claims = signing.new_access_token_claims(
        sub=sub, client_id=client.client_id, scope=scope, external_subject=request.subject,
        audience=request.audience or [client.client_id], lifetime=lifetime,
        subject_issuer=request.issuer.issuer, now=now, mapped_claims=request.report.mapped_claims,
        act=signing.act_claim(request.act_chain),
    )
    access_token = signing.sign(claims)
    refresh_token = None
    if client.allows_grant_type(REFRESH_TOKEN):
        refresh_token = (oauth2_settings.REFRESH_TOKEN_GENERATOR or random_token_generator)(request)
    try:
        access_token_id = storage.save_issued(
            application=client, access_token=access_token, claims=claims, refresh_token=refresh_token,
            resource=request.resources, subject=request.subject, trusted_issuer=request.issuer,
            subject_jti=request.subject_jti, first=lambda: consume_replays(request), user=request.user,
            started=request.started, refresh_not_after=not_after, mapped_claims=request.report.mapped_claims,
            actor=request.actor,
        )
    except storage.TokensRevoked as revoked:
        whose = "actor" if revoked.actor else "subject"
        raise ExchangeError("invalid_request", f"The tokens of the {whose} token's issuer were revoked while this "
                                               "request was processed; try again.",
                            cause="actor_tokens_revoked" if revoked.actor else "tokens_revoked") from None
    body = {"access_token": access_token, "expires_in": lifetime, "token_type": "Bearer"}
    if scope:  # RFC 6749 §5.1: scope is omitted when none was granted, never sent empty
        body["scope"] = scope
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    body["issued_token_type"] = request.requested_token_type
    return body, access_token_id


def _consume(report, refusal):
    """``consume_replay(report)``; its rejection raised as ``refusal(rejection)`` (an ExchangeError)."""
    try:
        consume_replay(report)
    except SubjectTokenRejected as exc:
        raise refusal(exc) from None


def consume_replays(request):
    """Record the subject token's jti as used, then the actor token's (each when its issuer rejects reuse).

    Inside the transaction that writes the issued token: a refusal of either (replayed since the
    check, or the replay store went away) rolls both back. Raises ExchangeError.
    """
    _consume(request.report, lambda exc: ExchangeError("invalid_request", exc.description, cause=exc.cause))
    if request.actor_report is not None:
        _consume(request.actor_report, _actor_refusal)


def exchange(form, *, authorization=None, client_address="", http_request=None, sender=None):
    """The token exchange as a function: the JSON response (success or refusal) to ``form``.

    ``form`` is the request body (a QueryDict: ``get`` and ``getlist``), already checked for
    shape by the token endpoint; ``authorization`` the Authorization header, if any;
    ``client_address`` the caller's address. The token endpoint and the console's *Try it out*
    both call this, so both run the same checks. Throttling is the endpoint's job, not this one's.
    ``http_request``/``sender`` are only passed on to DOT's ``app_authorized`` signal.
    """
    request = ExchangeRequest(form, authorization, client_address)
    try:
        validate_token_request(request)
        body, access_token_id = issue(request)
    except ExchangeError as exc:
        try:
            storage.save_rejected(cause=exc.cause, application=request.client, trusted_issuer=request.issuer,
                                  subject=request.subject, subject_jti=request.subject_jti, actor=request.actor)
        except Exception as error:
            if outage.database_unavailable(error):
                # Unrecorded, and perhaps caused by the outage: a 503 the client retries, never a 400.
                raise
            log.exception("Could not record the token-exchange event")
        return exc.response()
    if app_authorized.has_listeners():  # as DOT's TokenView does after a 200
        app_authorized.send(sender=sender, request=http_request, token=AccessToken.objects.get(pk=access_token_id))
    return json_response(body)
