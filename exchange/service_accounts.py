"""Service accounts: what an application holding the management scope may do, and who may give it that.

Keycloak's model. An application granted the management scope acts as a *service user*: a
Django user linked to it (``Application.service_user``) that cannot sign in (no usable password,
not staff). Its bearer tokens may do over the management API exactly what that user's Django
permissions allow (``api/permissions.py``), re-checked on every request.

- Granting the scope is an action of its own, with its own permission
  (``exchange.grant_management_scope``), and a granter gives the service user only permissions
  they hold themselves: no principal obtains a management capability it does not hold.
- Obtaining an application's credentials is obtaining its authority: a new secret for an
  application with a service account needs the same authority as granting it.
- Management tokens die with their authority: ``revoke_tokens`` is called by the flows when the
  scope or a grant type is removed, the secret regenerated, the application disabled or deleted.

``SYSTEM`` is the actor of the command line and of migrations: an operator holding the server's
files holds every authority already. The console and the API always pass the signed-in user or
the token's user; a flow given no actor grants nothing.
"""

import logging

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_delete
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from .models import Application
from .protocol import MANAGE_SCOPE

log = logging.getLogger("exchange.security")


class _System:
    """The command line: an operator with access to the server's files and database."""

    pk = None

    def __repr__(self):
        return "SYSTEM"


SYSTEM = _System()

#: The permission to give an application the management scope (Application.Meta.permissions).
GRANT_PERMISSION = "exchange.grant_management_scope"
#: What a service account gets from the command line when no permissions are named.
DEFAULT_PERMISSIONS = (
    "exchange.view_trustedtokenissuer", "exchange.add_trustedtokenissuer",
    "exchange.change_trustedtokenissuer", "exchange.delete_trustedtokenissuer",
    "exchange.view_application", "exchange.add_application",
    "exchange.change_application", "exchange.delete_application",
    "exchange.view_scope", "exchange.add_scope", "exchange.change_scope", "exchange.delete_scope",
)
#: Only this app's permissions can be given to a service account.
GRANTABLE_APP = "exchange"

REFUSED_SCOPE = f"Granting the {MANAGE_SCOPE} scope needs the permission {GRANT_PERMISSION}."
REFUSED_PERMISSION = "A service account can only be given permissions that you hold yourself."


def has_management_scope(application):
    """Whether the application's allowed scopes include the management scope."""
    return MANAGE_SCOPE in (application.allowed_scopes or "").split()


def grantable_permissions():
    """The permissions a service account may hold, as ``(name, label)`` sorted by name."""
    rows = Permission.objects.filter(content_type__app_label=GRANTABLE_APP).select_related("content_type")
    return sorted((f"{p.content_type.app_label}.{p.codename}", p.name) for p in rows)


def permission_names(user):
    """The ``app_label.codename`` permissions given to ``user`` directly (service users have no groups)."""
    if user is None:
        return []
    return sorted(
        f"{app}.{codename}"
        for app, codename in user.user_permissions.values_list("content_type__app_label", "codename")
    )


def clean_permissions(names):
    """``names`` as a sorted list of distinct known grantable permissions; ValidationError otherwise."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        raise ValidationError({"service_account_permissions": "Give a list of permission names."}, code="invalid")
    known = dict(grantable_permissions())
    if any(name not in known for name in names):
        raise ValidationError(
            {"service_account_permissions": f"Unknown permission; choose from {', '.join(known)}."},
            code="unknown_permission",
        )
    return sorted(set(names))


def _actor_name(actor):
    return "system" if actor is SYSTEM else (actor.get_username() if actor is not None else "nobody")


def authorize(actor, application, permissions):
    """Raise PermissionDenied unless ``actor`` may give ``application`` the management scope with ``permissions``.

    The actor needs ``GRANT_PERMISSION`` and every one of ``permissions``; ``SYSTEM`` needs nothing.
    A refusal is logged.
    """
    if actor is SYSTEM:
        return
    if actor is None or not actor.is_active or not actor.has_perm(GRANT_PERMISSION):
        reason = REFUSED_SCOPE
    elif not actor.has_perms(permissions):
        reason = REFUSED_PERMISSION
    else:
        return
    log.warning(
        "management grant refused: actor=%s client_id=%s permissions=%s",
        _actor_name(actor), application.client_id, ",".join(permissions),
    )
    raise PermissionDenied(reason)


def record(actor, application, message, *, history=True):
    """Log a change of ``application``'s authority: a log line, and a LogEntry (its History) by a user.

    ``history=False`` for changes the console writes to History itself (a new secret, disabling).
    """
    log.info("%s: actor=%s client_id=%s", message, _actor_name(actor), application.client_id)
    if history and actor is not SYSTEM and actor is not None and application.pk is not None:
        LogEntry.objects.log_actions(actor.pk, [application], CHANGE, message, single_object=True)


def grant(application, permissions):
    """Give ``application`` (saved) its service user holding exactly ``permissions`` (already authorized)."""
    user = application.service_user
    if user is None:
        user_model = get_user_model()
        username = f"service-account-{application.client_id}"[:150]
        if user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).exists():
            raise ValidationError(
                {"allowed_scopes": "A user with this application's service-account name already exists."},
                code="service_user_exists",
            )
        user = user_model(**{user_model.USERNAME_FIELD: username}, is_staff=False, is_superuser=False)
        user.set_unusable_password()
        user.save()
        application.service_user = user
        application.save(update_fields=["service_user"])
    elif not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
    user.user_permissions.set(_permission_rows(permissions))
    return user


def _permission_rows(names):
    wanted = {tuple(name.split(".", 1)) for name in names}
    rows = Permission.objects.filter(content_type__app_label=GRANTABLE_APP).select_related("content_type")
    return [p for p in rows if (p.content_type.app_label, p.codename) in wanted]


def withdraw(application):
    """Take the service user's permissions away and deactivate it (kept: its History stays)."""
    user = application.service_user
    if user is not None:
        user.user_permissions.clear()
        if user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])


def revoke_tokens(application, *, scope=None):
    """Revoke the application's live access and refresh tokens at once (only those carrying ``scope``, if given).

    Access tokens are deleted (the API and introspection no longer find them); refresh tokens are
    marked revoked, so that presenting one again also revokes its family. Returns the number of
    access tokens revoked.
    """
    access_model, refresh_model = get_access_token_model(), get_refresh_token_model()
    tokens = access_model.objects.filter(application_id=application.pk)
    ids = [pk for pk, scopes in tokens.values_list("pk", "scope") if scope is None or scope in scopes.split()]
    refresh = refresh_model.objects.filter(application_id=application.pk, revoked__isnull=True)
    if scope is not None:
        # A refresh token whose access token is gone cannot be told apart: it goes too.
        refresh = refresh.filter(Q(access_token_id__in=ids) | Q(access_token__isnull=True))
    with transaction.atomic():
        refresh.update(revoked=timezone.now(), access_token=None)
        access_model.objects.filter(pk__in=ids).delete()
    return len(ids)


def authority(token):
    """The service user whose permissions a bearer ``token`` without a user carries, or None.

    Checked on every request, whatever was revoked: the application still exists, is enabled,
    still holds the management scope, and its service user is active.
    """
    application = token.application
    if application is None or not application.enabled or not has_management_scope(application):
        return None
    user = application.service_user
    if user is None or not user.is_active:
        return None
    return user


def _application_deleted(sender, instance, **kwargs):
    """A deleted application's service user keeps its History but loses every authority."""
    if instance.service_user_id is not None:
        user_model = get_user_model()
        user = user_model.objects.filter(pk=instance.service_user_id).first()
        if user is not None:
            user.user_permissions.clear()
            user_model.objects.filter(pk=user.pk).update(is_active=False)
            log.info("service account deactivated: application deleted: client_id=%s", instance.client_id)


def connect_signals():
    post_delete.connect(_application_deleted, sender=Application, dispatch_uid="service-account-deleted")
