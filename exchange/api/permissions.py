"""Who may use the management API.

Two kinds of callers:

- **Console administrators** signed in with a Django session (CSRF applies to
  unsafe methods): active staff users with the Django model permission the
  operation needs (``exchange.view_trustedtokenissuer`` to read issuers,
  ``exchange.add_…``, ``change_…``, ``delete_…`` to write; the same for
  ``application``). Superusers have them all.
- **OAuth 2.0 bearer tokens** issued by this server, carrying the scope
  ``console:manage`` — typically from the ``client_credentials`` grant of an
  application granted that scope, so that a CI job can call the API. Such a
  token has no user: it acts as the application's *service account*
  (``exchange/service_accounts.py``) and may do exactly what that service
  user's model permissions allow, checked per operation as for a session. The
  application must still hold the scope, be enabled and have an active service
  user at every request. A token that does belong to a user needs the scope
  *and* that user's staff status and model permissions. A token obtained by
  token exchange (issued for a third party's subject) never manages the
  console, whatever its scope.
"""

from django.core.exceptions import ImproperlyConfigured
from oauth2_provider.contrib.rest_framework import TokenHasScope
from oauth2_provider.models import AbstractAccessToken

from .. import service_accounts
from ..protocol import MANAGE_SCOPE

_ACTIONS = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "POST": "add", "PUT": "change",
            "PATCH": "change", "DELETE": "delete"}


def required_permissions(view, request):
    """The model permission an operation needs: ``<app>.<action>_<model>`` for the view's
    ``permission_model`` (else its queryset's model), the action from ``permission_actions``
    (by viewset action) or else from the HTTP method."""
    model = getattr(view, "permission_model", None) or getattr(getattr(view, "queryset", None), "model", None)
    if model is None:
        raise ImproperlyConfigured(f"{type(view).__name__} needs a permission_model for ManagementPermission.")
    opts = model._meta
    action = getattr(view, "permission_actions", {}).get(getattr(view, "action", None))
    if action is None:
        action = _ACTIONS.get(request.method, "change")
    return [f"{opts.app_label}.{action}_{opts.model_name}"]


def _user_may(user, perms):
    return bool(user and user.is_active and user.is_staff and user.has_perms(perms))


def acting_user(request):
    """Who performs a management request: the session's user, a token's user, or a token's service user."""
    token = request.auth
    if isinstance(token, AbstractAccessToken):
        return token.user if token.user_id is not None else service_accounts.authority(token)
    return request.user


class ManagementPermission(TokenHasScope):
    """Session staff with model permissions, or a bearer token with the console:manage scope.

    A TokenHasScope so that drf-spectacular documents the scope on every operation.
    """

    message = "You do not have permission to perform this action."

    def get_scopes(self, request, view):
        return [MANAGE_SCOPE]

    def has_permission(self, request, view):
        token = request.auth
        perms = required_permissions(view, request)
        if isinstance(token, AbstractAccessToken):
            if not token.is_valid([MANAGE_SCOPE]):
                self.message = f"The access token does not carry the {MANAGE_SCOPE} scope."
                return False
            if getattr(token, "trusted_issuer_id", None) is not None:
                self.message = "A token obtained by token exchange cannot manage the console."
                return False
            if not service_accounts.has_management_scope(token.application):
                self.message = f"The application no longer holds the {MANAGE_SCOPE} scope."
                return False
            if token.user_id is not None:
                return _user_may(token.user, perms)
            user = service_accounts.authority(token)
            if user is None or not user.has_perms(perms):
                self.message = f"The application's service account needs the permission {', '.join(perms)}."
                return False
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if not _user_may(user, perms):
            self.message = f"This needs an active staff account with the permission {', '.join(perms)}."
            return False
        return True
