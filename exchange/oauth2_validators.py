"""django-oauth-toolkit's request validator, adapted to this console.

- client authentication goes through client_auth.py (one implementation);
- grant types are checked against the application's list of RFC wire names;
- issued tokens remember the external subject and trusted issuer they were
  exchanged for, so a refresh keeps ``sub`` and disabling the issuer stops it;
- token rows are written by storage.py, the one writer the exchange uses too;
- the authorization code flow (signin.py): only ``response_type=code``, redirect URIs compared
  exactly, the scopes of ``signin.granted_scopes``, disabled users refused at every step, ID tokens
  signed with this server's own keys (signing.py) and ``iss`` the console's issuer.
"""

import logging
import uuid

from django.db import router, transaction
from django.utils import timezone
from oauth2_provider.models import get_id_token_model, refresh_token_expire_timedelta
from oauth2_provider.oauth2_validators import OAuth2Validator as DOTValidator
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from . import client_auth, signin, signing, storage
from .conf import project_settings
from .protocol import AUTHORIZATION_CODE, CLIENT_CREDENTIALS
from .registry import registry
from .subject_token import storable

log = logging.getLogger(__name__)


def refresh_token_expires(refresh_token):
    """When a live refresh token stops refreshing (``REFRESH_TOKEN_EXPIRE_SECONDS`` after its access
    token expires, as DOT enforces it; at the latest its ``not_after``, the subject token's expiry
    for a bounded exchange), or None when it does not expire."""
    delta = refresh_token_expire_timedelta()
    expires = refresh_token.access_token.expires + delta if delta else None
    not_after = refresh_token.not_after
    if not_after is not None and (expires is None or not_after < expires):
        return not_after
    return expires


def refresh_token_is_live(refresh_token, now=None):
    """Whether ``refresh_token`` (a row) would still be honoured by the refresh_token grant.

    Not revoked, paired with its access token (DOT's rule for a live refresh token), not past
    ``refresh_token_expires``, of a usable application and, for an exchanged token, of an enabled
    issuer. Introspection reports refresh tokens by this; ``validate_refresh_token`` adds the issuer rule.
    """
    if refresh_token.revoked is not None or refresh_token.access_token is None:
        return False
    expires = refresh_token_expires(refresh_token)
    if expires is not None and expires <= (now or timezone.now()):
        return False
    issuer = refresh_token.trusted_issuer
    return refresh_token.application.is_usable(None) and (issuer is None or issuer.enabled)


def _body_value(request, name):
    """A body parameter's value, or None when absent or empty."""
    value = request._params.get(name) if hasattr(request, "_params") else None
    return value or None


class OAuth2Validator(DOTValidator):
    def _authorization_header(self, request):
        headers = request.headers or {}
        return headers.get("HTTP_AUTHORIZATION") or headers.get("Authorization")

    def authenticate_client(self, request, *args, **kwargs):
        """Authenticate a confidential client by Basic or body credentials (not both): client_auth.py.

        A public client asking for a grant authenticated by a secret is refused as
        ``unauthorized_client``: it has no secret, whatever it presents.
        """
        if request.grant_type == CLIENT_CREDENTIALS:
            client_id = _body_value(request, "client_id") or self._basic_client_id(request)
            if client_id and client_auth.plausible_client_id(client_id):
                application = registry.application(client_id)
                if application is not None and application.client_type != application.CLIENT_CONFIDENTIAL:
                    raise errors.UnauthorizedClientError(
                        description="A public client cannot use the client credentials grant.", request=request
                    )
        try:
            result = client_auth.authenticate(
                self._authorization_header(request),
                _body_value(request, "client_id"),
                _body_value(request, "client_secret"),
                lambda client_id: self._load_application(client_id, request),
            )
        except client_auth.MultipleMethods:
            raise errors.InvalidRequestError(
                description="The client must not use more than one authentication method.", request=request
            ) from None
        if not result.ok:
            if result.credentials is not None and result.credentials.client_secret is not None:
                request.client = None  # a wrong secret: nothing about the client is kept
            return False
        request.client_id = result.credentials.client_id
        return True

    def _basic_client_id(self, request):
        header = self._authorization_header(request)
        if not header:
            return None
        try:
            return client_auth.parse_basic(header)[0]
        except client_auth.MalformedCredentials:
            return None

    def client_authentication_required(self, request, *args, **kwargs):
        if self._authorization_header(request) or _body_value(request, "client_secret"):
            return True
        client_id = _body_value(request, "client_id")
        if client_id and client_auth.plausible_client_id(client_id):
            self._load_application(client_id, request)
        if request.client:
            return request.client.client_type == request.client.CLIENT_CONFIDENTIAL
        return True

    def _load_application(self, client_id, request):
        """DOT's lookup, served from the in-process registry (invalidated on every change).

        DOT's own checks (client_id match, ``is_usable``) still run on the cached
        application; an unknown client_id falls through to DOT's database lookup.
        """
        if not request.client:
            request.client = registry.application(client_id)
        return super()._load_application(client_id, request)

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        if not client_id or not client_auth.plausible_client_id(client_id):
            return False
        return super().authenticate_client_id(client_id, request, *args, **kwargs)

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        """Allowed iff the wire name is in the application's allowed grant types."""
        return bool(grant_type) and request.client.allows_grant_type(grant_type)

    def validate_response_type(self, client_id, response_type, client, request, *args, **kwargs):
        """``code`` only, for applications allowed the Code grant: no implicit or hybrid response
        (DOT would let the Code grant's applications use ``code id_token`` and the like)."""
        return response_type == "code" and client.allows_grant_type(AUTHORIZATION_CODE)

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        """At the authorization endpoint the scopes asked for are narrowed, not refused
        (``signin.granted_scopes``); the token endpoint's grants keep DOT's check (a subset of the
        application's allowed scopes)."""
        if getattr(request, "response_type", None) == "code" and not getattr(request, "grant_type", None):
            request.scopes = signin.granted_scopes(scopes, client, getattr(request, "user", None))
            return True
        return super().validate_scopes(client_id, scopes, client, request, *args, **kwargs)

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        return request.client.redirect_uri_allowed(redirect_uri)

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request, *args, **kwargs):
        """RFC 6749 §4.1.3: the token request repeats the authorization request's ``redirect_uri``,
        which this server always requires (signin.py); a request without it is refused rather than
        compared with a default."""
        if getattr(request, "using_default_redirect_uri", False):
            raise errors.InvalidRequestError(description="The redirect_uri parameter is required.", request=request)
        if not super().confirm_redirect_uri(client_id, code, redirect_uri, client, request, *args, **kwargs):
            # RFC 6749 §5.2 names this invalid_grant (oauthlib would say invalid_request)
            raise errors.InvalidGrantError(
                description="The redirect_uri differs from the authorization request's.", request=request)
        return True

    def validate_silent_login(self, request):
        """``prompt=none``: signin.AuthorizationView answers ``login_required`` itself before oauthlib asks."""
        return True

    def validate_silent_authorization(self, request):
        """``prompt=none``: signin.AuthorizationView answers ``consent_required`` itself before oauthlib asks."""
        return True

    @staticmethod
    def _plausible_code(code):
        """A code that could have been issued: looked up only then (a NUL is refused by PostgreSQL: a 500)."""
        return isinstance(code, str) and len(code) <= 255 and storable(code)

    def get_authorization_code_scopes(self, client_id, code, redirect_uri, request):
        """oauthlib asks before ``validate_code``: an implausible code has none (and is then refused there)."""
        return super().get_authorization_code_scopes(client_id, code, redirect_uri, request) \
            if self._plausible_code(code) else []

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        """DOT's check of the code, and its user still active (disabled since the sign-in: refused)."""
        if not self._plausible_code(code):
            return False
        if not super().validate_code(client_id, code, client, request, *args, **kwargs):
            return False
        return request.user is not None and request.user.is_active

    def is_pkce_required(self, client_id, request):
        return signin.pkce_required(client_id)

    def validate_bearer_token(self, token, scopes, request):
        """DOT's check, and a token issued to a user is refused once that user is disabled."""
        if not super().validate_bearer_token(token, scopes, request):
            return False
        user = getattr(request.access_token, "user", None)
        return user is None or user.is_active

    def get_oidc_issuer_endpoint(self, request):
        """``iss`` of ID tokens: the console's issuer, the same value as discovery and access tokens."""
        return project_settings.CONSOLE_ISSUER

    def get_additional_claims(self, request):
        """The user's claims, each given for the scope OpenID Connect Core §5.4 names (``oidc_claim_scope``)."""
        return signin.user_claims(request.user)

    def get_userinfo_claims(self, request):
        """The userinfo answer: only for a token issued to a user (a client's own token has no end-user)."""
        if request.user is None:
            raise errors.InvalidTokenError(request=request)
        return super().get_userinfo_claims(request)

    def finalize_id_token(self, id_token, token, token_handler, request):
        """DOT's ID token claims (``iss``, ``exp``, ``auth_time``, ``jti``, ``nonce``), signed with this
        server's signing key (signing.sign_id_token): its ``kid`` is in ``/oauth2/jwks``."""
        claims, expiration_time = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(**claims)
        if "nonce" not in id_token and request.nonce:  # oauthlib bug #746, as DOT works around it
            id_token["nonce"] = request.nonce
        signed = signing.sign_id_token(id_token)
        with transaction.atomic(using=router.db_for_write(get_id_token_model())):
            row = self._save_id_token(id_token["jti"], request, expiration_time)
        request.access_token = row
        request.id_token = row
        return signed

    def _load_id_token(self, token):
        """The IDToken row of an ID token this server signed, verified with its published keys; or None."""
        claims = signing.verify_id_token(token) if isinstance(token, str) else None
        if not claims or not isinstance(claims.get("jti"), str):
            return None
        return get_id_token_model().objects.filter(jti=claims["jti"]).first()

    def validate_jwt_bearer_token(self, token, scopes, request):
        """A bearer token that looks like a JWT: oauthlib's OpenID server routes it here, meaning an
        ID token used as a bearer token (DOT then fails on applications without signing keys, a 500).
        Our access tokens are JWTs themselves: check them like any other access token."""
        return self.validate_bearer_token(token, scopes, request)

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        instance = request.refresh_token_instance
        if instance.user_id is not None and not instance.user.is_active:
            return False  # the user who signed in has been disabled
        if instance.not_after is not None and instance.not_after <= timezone.now():
            return False  # bounded by a subject token that has expired
        issuer = instance.trusted_issuer
        # A token exchanged from a now-disabled issuer cannot be renewed.
        if issuer is not None and not issuer.enabled:
            return False
        # Nor one exchanged for a linked local user who has been disabled since (flows.set_user_active also
        # revokes their tokens; this holds for a change made outside the flows).
        return not (instance.subject and instance.user_id and not instance.user.is_active)

    def refresh_id_token(self, request):
        """A refresh answers with an ID token only for a user who signed in here, with OIDC enabled.

        An ID token asserts a sign-in at this server. Exchanged tokens (an external subject, even one
        linked to a local user) and
        clients' own tokens have no user: DOT would look up the missing user's claims (a 500 on
        every refresh whose scope holds ``openid``); they are refreshed without an ID token.
        """
        exchanged = bool(getattr(getattr(request, "refresh_token_instance", None), "subject", ""))
        return (request.user is not None and not exchanged and oauth2_settings.OIDC_ENABLED
                and super().refresh_id_token(request))

    def _provenance(self, request, *, act=True):
        """Whom an exchanged token was issued for (and who acts, for a delegated one); the access token's
        ``act`` comes from its claims, the refresh token's from here."""
        return {
            "subject": getattr(request, "exchange_subject", None) or "",
            "trusted_issuer": getattr(request, "exchange_issuer", None),
            "mapped_claims": getattr(request, "exchange_mapped_claims", None),
            **({"act": getattr(request, "exchange_act", None)} if act else {}),
            "actor_trusted_issuer": getattr(request, "exchange_actor_issuer", None),
            "actor_subject": getattr(request, "exchange_actor_subject", None) or "",
        }

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        """DOT's access token, written by storage.py (the one writer of AccessToken rows).

        The row is written from the claims the token was signed with (signing.access_token_generator
        leaves them on the request), not from DOT's ``expires``: introspection then reports what the
        token says, to the second.
        """
        claims = request.issued_claims
        if "expires_in" in token:  # bounded by a subject token (signing.access_token_generator): say so
            token["expires_in"] = claims["exp"] - claims["iat"]
        id_token = getattr(request, "id_token", None) if token.get("id_token") else None
        if not isinstance(id_token, get_id_token_model()):  # the row finalize_id_token wrote
            id_token = None
        return storage.create_access_token(
            user=request.user, application=request.client, id_token=id_token or None,
            source_refresh_token=source_refresh_token, token=token["access_token"], claims=request.issued_claims,
            resource=getattr(request, "resource", []), **self._provenance(request, act=False),
        )

    def _create_refresh_token(self, request, refresh_token_code, access_token, previous_refresh_token):
        """DOT's refresh token, written by storage.py (the one writer of RefreshToken rows)."""
        return storage.create_refresh_token(
            user=request.user, application=request.client, access_token=access_token, token=refresh_token_code,
            token_family=previous_refresh_token.token_family if previous_refresh_token else uuid.uuid4(),
            resource=getattr(request, "resource", []), **self._provenance(request),
            not_after=previous_refresh_token.not_after if previous_refresh_token else None,
        )
