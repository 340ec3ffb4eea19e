"""django-oauth-toolkit's request validator, adapted to this console.

- client authentication goes through client_auth.py (one implementation);
- grant types are checked against the application's list of RFC wire names;
- issued tokens remember the external subject and trusted issuer they were
  exchanged for, so a refresh keeps ``sub`` and disabling the issuer stops it;
- token rows are written by storage.py, the one writer the exchange uses too.
"""

import logging
import uuid

from django.utils import timezone
from oauth2_provider.models import refresh_token_expire_timedelta
from oauth2_provider.oauth2_validators import OAuth2Validator as DOTValidator
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from . import client_auth, storage
from .protocol import CLIENT_CREDENTIALS
from .registry import registry

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

    def validate_jwt_bearer_token(self, token, scopes, request):
        """A bearer token that looks like a JWT: oauthlib's OpenID server routes it here, meaning an
        ID token used as a bearer token (DOT then fails on applications without signing keys, a 500).
        Our access tokens are JWTs themselves: check them like any other access token."""
        return self.validate_bearer_token(token, scopes, request)

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        instance = request.refresh_token_instance
        if instance.not_after is not None and instance.not_after <= timezone.now():
            return False  # bounded by a subject token that has expired
        issuer = instance.trusted_issuer
        # A token exchanged from a now-disabled issuer cannot be renewed.
        return issuer is None or issuer.enabled

    def refresh_id_token(self, request):
        """A refresh answers with an ID token only for a user who signed in here, with OIDC enabled.

        An ID token asserts a sign-in at this server. Exchanged tokens (an external subject) and
        clients' own tokens have no user: DOT would look up the missing user's claims (a 500 on
        every refresh whose scope holds ``openid``); they are refreshed without an ID token.
        """
        return request.user is not None and oauth2_settings.OIDC_ENABLED and super().refresh_id_token(request)

    def _provenance(self, request, *, act=True):
        """Whom an exchanged token was issued for (and who acts, for a delegated one); the access token's
        ``act`` comes from its claims, the refresh token's from here."""
        return {
            "subject": getattr(request, "exchange_subject", None) or "",
            "trusted_issuer": getattr(request, "exchange_issuer", None),
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
        id_token = token.get("id_token", None)
        if id_token:
            id_token = self._load_id_token(id_token)
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
