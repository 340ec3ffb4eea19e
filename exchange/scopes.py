"""Scopes as data: the scope registry (``models.Scope``), the built-in scopes, and DOT's scopes backend.

The scopes the server knows are the rows of the registry, cached in each process by
``registry.scopes()`` (invalidated like issuers and applications). An application may be allowed
only registered scopes (``Application.clean``), receives only the scopes it is allowed (never
DOT's "all scopes" default), and discovery's ``scopes_supported`` lists the registry.
"""

from django.db import DEFAULT_DB_ALIAS
from oauth2_provider.scopes import BaseScopes

from .models import Scope
from .protocol import MANAGE_SCOPE
from .registry import registry

#: Scopes the server knows from the start: name → (description, protected); the description is what the
#: consent page shows the person signing in. Protected ones are needed by
#: the server itself (the management API's scope; OpenID Connect's) and cannot be deleted.
BUILT_IN_SCOPES = {
    "openid": ("Sign you in (OpenID Connect)", True),
    "profile": ("Your name and username", False),
    "email": ("Your email address", False),
    MANAGE_SCOPE: ("Manage trusted token issuers and applications through the API", True),
}


def ensure_built_in(using=DEFAULT_DB_ALIAS):
    """Create the built-in scopes that are missing: all of them in an empty registry, else the protected ones.

    The data migration seeds them once; this runs after every ``migrate`` and ``flush`` (post_migrate),
    so the scopes the server needs always exist, and a built-in scope an administrator deleted
    (``profile``, ``email``) is not brought back.
    """
    empty = not Scope.objects.using(using).exists()
    for name, (description, protected) in BUILT_IN_SCOPES.items():
        if protected or empty:
            Scope.objects.using(using).get_or_create(name=name, defaults={"description": description,
                                                                         "protected": protected})


def post_migrate(app_config, using=DEFAULT_DB_ALIAS, apps=None, **kwargs):
    """Signal receiver: after this app's migrations (and after ``flush``), the protected scopes exist."""
    if app_config.label != "exchange":
        return
    if apps is not None:
        try:
            apps.get_model("exchange", "Scope")
        except LookupError:  # migrated back before the registry existed
            return
    ensure_built_in(using)


class ApplicationScopes(BaseScopes):
    """DOT's scopes backend over the registry: an application gets only its allowed, registered scopes."""

    def get_all_scopes(self):
        return dict(registry.scopes())

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        if application is None:
            return []
        known = registry.scopes()
        return [scope for scope in application.allowed_scopes.split() if scope in known]

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return []
