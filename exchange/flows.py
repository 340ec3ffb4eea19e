"""What administrators do, as named steps: one set of rules for the console, the API and the commands.

Each flow validates with the models' own ``full_clean`` and raises Django's
``ValidationError`` (with field names) when something is wrong; nothing is
saved unless everything is valid.

Every data change of the console and the API goes through a flow, and each flow that changes
issuers, certificates, applications or scopes invalidates what reads them, so the next token request
sees the change (in this process at once, in every other within ``REGISTRY_CHECK_MS``):

- the registry (registry.py) through the model signals the flow's own writes send; the same
  receivers catch changes made outside flows (the shell, data migrations);
- this process's key-source caches (``_keys_changed`` below), after a change of an issuer's settings
  or certificates, or its deletion. Callers never clear caches themselves.
"""

import base64
import binascii
import copy
import logging
from typing import NamedTuple

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret

from . import accounts, certificates, discovery, key_sources, presets, service_accounts
from .conf import exchange_settings
from .models import (
    GRANT_SHORT_NAMES,
    AccessToken,
    Application,
    IssuerCertificate,
    LinkedIdentity,
    LocalAccount,
    RefreshToken,
    RoleScopes,
    Scope,
    TrustedTokenIssuer,
    is_scope_name,
)
from .protocol import MANAGE_SCOPE
from .subject_token import storable

audit_log = logging.getLogger("exchange.audit")


def certificate_to_pem(value):
    """PEM text, PEM/DER bytes or base64 DER text → PEM text. Raises ValidationError."""
    try:
        certificates.check_input_size(value)
        if isinstance(value, bytes):
            return certificates.normalize_upload(value)
        text = value.strip()
        if text.startswith("-----BEGIN"):
            return text
        try:
            der = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise certificates.CertificateError("This is neither a PEM certificate nor base64 DER.") from None
        return certificates.der_to_pem(der)
    except certificates.CertificateError as exc:
        raise ValidationError({"certificates": str(exc)}, code="bad_certificate") from None


def _keys_changed():
    """Forget this process's parsed keys now and again once the change commits (no refill from old rows)."""
    key_sources.clear_caches()
    transaction.on_commit(key_sources.clear_caches)


def _certificate(issuer, pem):
    cert = IssuerCertificate(trusted_issuer=issuer, pem=certificate_to_pem(pem))
    try:
        cert.full_clean(exclude=["trusted_issuer", "fingerprint"])
    except ValidationError as exc:
        raise ValidationError({"certificates": exc.message_dict.get("pem", exc.messages)}) from None
    return cert


def create_trusted_token_issuer(*, name, issuer, alias="", jwks_uri="", certificates=(), applications=(), **options):
    """Register a trusted token issuer with exactly one key source: a JWKS URL or certificates.

    ``applications``: the applications to link it to (none: open to every unlinked application).
    """
    certificates = list(certificates or [])
    if bool(jwks_uri) == bool(certificates):
        raise ValidationError(
            {"jwks_uri": "Give either a JWKS endpoint or at least one PEM certificate (not both)."},
            code="key_source",
        )
    trusted = TrustedTokenIssuer(name=name, issuer=issuer, alias=alias or "", jwks_uri=jwks_uri or "", **options)
    trusted.full_clean()
    certs = [_certificate(trusted, pem) for pem in certificates]
    fingerprints = [cert.fingerprint for cert in certs]
    if len(set(fingerprints)) != len(fingerprints):
        raise ValidationError({"certificates": "The same certificate is given twice."}, code="duplicate")
    with transaction.atomic():
        trusted.save()
        for cert in certs:
            cert.trusted_issuer = trusted
            cert.save()
        if applications:
            trusted.applications.set(applications)
    return trusted  # no keys of a new issuer are cached yet: nothing to forget


def delete_trusted_token_issuer(trusted):
    """Delete an issuer; the tokens exchanged from its tokens are deleted with it (they stop working)."""
    trusted.delete()
    _keys_changed()


def refresh_issuer_keys(trusted):
    """Fetch a JWKS-backed issuer's keys now, replacing the cached ones; the keys. Raises KeySourceError."""
    return key_sources.refresh_jwks(trusted)


def add_certificate(trusted, pem):
    """Add a certificate to a PEM-backed issuer (e.g. the next key, before the issuer switches)."""
    if trusted.jwks_uri:
        raise ValidationError({"certificates": "This issuer uses a JWKS endpoint; remove it before adding certificates."})
    cert = _certificate(trusted, pem)
    if trusted.certificates.filter(fingerprint=cert.fingerprint).exists():
        raise ValidationError({"certificates": "This certificate is already registered for the issuer."}, code="duplicate")
    cert.save()
    _keys_changed()
    return cert


def remove_certificate(cert):
    """Remove one of an issuer's certificates (never its last one): tokens it verified are refused at once."""
    if cert.trusted_issuer.certificates.count() <= 1:
        raise ValidationError(
            {"certificates": "This is the only certificate of the issuer; add another before removing it."}
        )
    cert.delete()
    _keys_changed()


def resolve_grant_type(name):
    """A grant type's wire name from a wire name or a short name; ValidationError if unknown."""
    wire = GRANT_SHORT_NAMES.get(name, name)
    if wire not in Application.GrantType.values:
        raise ValidationError(
            {"allowed_grant_types": f"Unknown grant type {name!r}; use one of {', '.join(GRANT_SHORT_NAMES)} or a wire name."},
            code="unknown_grant",
        )
    return wire


def _ordered_grants(grant_types):
    wires = [resolve_grant_type(g) for g in grant_types]
    return [g for g in Application.GrantType.values if g in wires]


def create_application(*, name, application_type=Application.Type.STANDARD, grant_types=(), scopes="", actor=None,
                       service_account_permissions=None, actor_issuers=(), **fields):
    """Create an application; returns (application, client_secret). The secret is shown once.

    A public client (single-page application) gets no secret: None is returned for it.
    The management scope in ``scopes`` is a grant (see service_accounts): ``actor`` must be allowed
    to give it with ``service_account_permissions`` (default: none; ``SYSTEM``'s default:
    ``DEFAULT_PERMISSIONS``), else PermissionDenied and nothing is saved. ``actor_issuers``: the
    trusted issuers whose tokens it accepts as actor tokens (with ``allow_delegation``).
    """
    public = application_type == Application.Type.SPA
    secret = None if public else generate_client_secret()
    application = Application(
        name=name,
        application_type=application_type,
        allowed_grant_types=_ordered_grants(grant_types),
        allowed_scopes=scopes,
        client_secret=secret or "",
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_type=Application.CLIENT_PUBLIC if public else Application.CLIENT_CONFIDENTIAL,
        **fields,
    )
    application.full_clean()
    permissions = _service_permissions(application, service_account_permissions, actor, granting=True)
    with transaction.atomic():
        application.save()
        if actor_issuers:
            application.actor_issuers.set(actor_issuers)
        if permissions is not None:
            service_accounts.grant(application, permissions)
            service_accounts.record(actor, application, _granted_message(permissions))
    return application, secret


def _granted_message(permissions):
    return f"Granted the {MANAGE_SCOPE} scope; service account permissions: {', '.join(permissions) or 'none'}"


def _service_permissions(application, requested, actor, *, granting):
    """The service account's permissions to set (authorized for ``actor``), or None when nothing is granted."""
    if not service_accounts.has_management_scope(application):
        if requested:
            raise ValidationError(
                {"service_account_permissions": f"Only an application with the {MANAGE_SCOPE} scope has a service account."},
                code="no_service_account",
            )
        return None
    if requested is None:
        if not granting:
            return None
        requested = service_accounts.DEFAULT_PERMISSIONS if actor is service_accounts.SYSTEM else []
    permissions = service_accounts.clean_permissions(list(requested))
    service_accounts.authorize(actor, application, permissions)
    return permissions


def set_grant_types(application, grant_types):
    """Replace the application's allowed grant types (the command line's)."""
    return update_application(application, actor=service_accounts.SYSTEM, allowed_grant_types=grant_types)


def regenerate_secret(application, actor=None):
    """Give the application a new client secret (returned once); the old one and every token stop working.

    Whoever receives the secret receives the application's authority: for an application with the
    management scope, ``actor`` must be allowed to grant its service account's permissions.
    """
    if application.client_type != Application.CLIENT_CONFIDENTIAL:
        raise ValidationError({"client_secret": "A public client has no secret."}, code="public_client")
    if service_accounts.has_management_scope(application):
        service_accounts.authorize(actor, application, service_accounts.permission_names(application.service_user))
    secret = generate_client_secret()
    with transaction.atomic():
        application.client_secret = secret
        application.save(update_fields=["client_secret"])
        revoked = service_accounts.revoke_tokens(application)
        service_accounts.record(actor, application, f"Regenerated the client secret; {revoked} access tokens revoked",
                                history=False)
    return secret


def delete_application(application, actor=None):
    """Delete an application: its tokens go with it and its service account loses every permission."""
    with transaction.atomic():
        service_accounts.revoke_tokens(application)
        if actor is not None and actor is not service_accounts.SYSTEM:
            LogEntry.objects.log_actions(actor.pk, [application], DELETION, "Deleted", single_object=True)
        application.delete()


def first_error(exc):
    """One readable line from a ValidationError, for commands and messages."""
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


#: Fields of a trusted token issuer that ``update_trusted_token_issuer`` may change.
ISSUER_UPDATABLE = (
    "name", "issuer", "alias", "enabled", "jwks_uri", "allowed_algorithms", "clock_skew",
    "max_token_age", "reject_replayed_jti", "require_jti", "required_type", "condition", "preset", "applications",
    "link_lookup_primary", "link_lookup_secondary", "link_custom_claim",
    "claim_mappings",
)


def discovered_issuer_settings(issuer, preset=""):
    """``jwks_uri`` and ``allowed_algorithms`` for ``issuer``, read from its OpenID discovery document.

    The algorithms are those the document lists that we allow; when it lists none, the
    preset's, else the defaults. Raises ValidationError (on ``issuer``) with a safe sentence.
    """
    try:
        found = discovery.discover(issuer)
    except discovery.DiscoveryError as exc:
        raise ValidationError({"issuer": str(exc)}, code="discovery") from None
    chosen = presets.PRESETS.get(preset)
    algorithms = found.algorithms or list(chosen.algorithms if chosen else exchange_settings.DEFAULT_ALLOWED_ALGORITHMS)
    return {"jwks_uri": found.jwks_uri, "allowed_algorithms": algorithms}


def preset_issuer(preset, issuer=""):
    """The issuer value of a preset: its fixed one, or ``issuer`` for presets without one (Kubernetes).

    Raises ValidationError for an unknown preset, a missing issuer, or another issuer than the fixed one.
    """
    chosen = presets.PRESETS.get(preset)
    if chosen is None:
        raise ValidationError({"preset": f"Unknown preset; choose from {', '.join(presets.PRESETS)}."}, code="bad_preset")
    if chosen.issuer:
        if issuer and issuer != chosen.issuer:
            raise ValidationError({"issuer": f"The {chosen.label} preset's issuer is {chosen.issuer}."}, code="preset_issuer")
        return chosen.issuer
    if not issuer:
        raise ValidationError({"issuer": f"The {chosen.label} preset needs the issuer URL."}, code="required")
    return issuer


def update_trusted_token_issuer(trusted, *, revoke=False, user=None, **changes):
    """Change an issuer's settings with the model's own validation; nothing is saved if any is invalid.

    A JWKS-backed issuer keeps a JWKS endpoint (it cannot be emptied here), and a
    certificate-backed issuer cannot be given one: the key source changes only
    through its own steps. ``revoke``: when the change leaves the issuer disabled, also
    revoke the live tokens issued from its tokens (``revoke_tokens``), in the same transaction.
    """
    unknown = set(changes) - set(ISSUER_UPDATABLE)
    if unknown:
        raise TypeError(f"Cannot update {', '.join(sorted(unknown))}")
    if "jwks_uri" in changes:
        if trusted.jwks_uri and not changes["jwks_uri"]:
            raise ValidationError({"jwks_uri": "Enter the JWKS endpoint of this issuer."}, code="required")
        if not trusted.jwks_uri and changes["jwks_uri"]:
            raise ValidationError({"jwks_uri": "This issuer uses PEM certificates."}, code="key_source")
    links = changes.pop("applications", None)  # linked applications (see TrustedTokenIssuer.applications)
    changed = copy.copy(trusted)  # the caller's object is left as it was if anything is invalid
    for field, value in changes.items():
        setattr(changed, field, value)
    changed.full_clean()
    with transaction.atomic():
        changed.save()
        if links is not None:
            changed.applications.set(links)
        if revoke and not changed.enabled:
            revoke_tokens(changed, user=user)
    for field in (*changes, "updated", "tokens_revoked_at"):
        setattr(trusted, field, getattr(changed, field))
    _keys_changed()
    return trusted


def set_issuer_enabled(trusted, enabled, *, revoke=False, user=None):
    """Enable or disable an issuer: a disabled issuer's tokens are refused (issuer_disabled).

    ``revoke``: when disabling, also revoke the live tokens issued from its tokens, in the same
    transaction; returns that ``Revocation`` (None otherwise).
    """
    trusted.enabled = bool(enabled)
    with transaction.atomic():
        trusted.save(update_fields=["enabled", "updated"])
        result = revoke_tokens(trusted, user=user) if revoke and not trusted.enabled else None
    return result  # the registry serves the flag (model signals); its keys did not change


class Revocation(NamedTuple):
    """What ``revoke_tokens`` did (or, for a dry run, would do)."""

    issuer: str
    subject: str  # "" when every subject's tokens were revoked
    access_tokens: int
    refresh_tokens: int
    dry_run: bool = False

    def as_dict(self):
        return {"issuer": self.issuer, "subject": self.subject or None, "access_tokens": self.access_tokens,
                "refresh_tokens": self.refresh_tokens, "dry_run": self.dry_run}


def _issued_from(model, trusted, subject):
    """The tokens issued from ``trusted``'s tokens (``subject``'s only, when given): as the subject or as the actor."""
    if subject is None:
        return model.objects.filter(Q(trusted_issuer=trusted) | Q(actor_trusted_issuer=trusted))
    return model.objects.filter(Q(trusted_issuer=trusted, subject=subject)
                                | Q(actor_trusted_issuer=trusted, actor_subject=subject))


def revoke_tokens(trusted, subject=None, *, dry_run=False, user=None):
    """Revoke every live token issued from ``trusted``'s tokens (only ``subject``'s, when given).

    That includes delegated tokens whose actor token came from ``trusted`` (``subject`` as the actor):
    a compromised issuer's or an offboarded subject's actor tokens no longer act for anyone.

    Revoked the way django-oauth-toolkit revokes (``RefreshToken.revoke_family``): refresh tokens
    marked ``revoked`` first, then access tokens deleted (``AccessToken.revoke``), one statement
    per table in one transaction; introspection then answers ``active: false`` for both, and a
    refresh token left without its access token is refused by the refresh grant.

    The transaction begins by stamping the issuer's ``tokens_revoked_at``, which locks its row:
    an exchange from this issuer reads the stamp under a shared lock in the transaction that
    writes its token (storage.save_issued). Either the exchange wrote first, and the statements
    below (which wait for it) revoke its token, or it reads the stamp after this commits and is
    refused when it began before the stamp. No live token is left from an exchange under way
    when the revocation began.

    Audited: a log line on ``exchange.audit`` and, when ``user`` is given, a LogEntry on the
    issuer (its History page), both with the counts. Returns a ``Revocation``.
    """
    if subject is not None and (not isinstance(subject, str) or not subject or len(subject) > 255
                                or not storable(subject)):
        raise ValidationError({"subject": "Give the subject (sub) as issued, 1 to 255 characters."}, code="subject")
    access = _issued_from(AccessToken, trusted, subject)
    refresh = _issued_from(RefreshToken, trusted, subject).filter(revoked__isnull=True)
    if dry_run:
        now = timezone.now()
        return Revocation(trusted.issuer, subject or "", access.filter(expires__gt=now).count(), refresh.count(), True)
    with transaction.atomic():
        now = timezone.now()
        TrustedTokenIssuer.objects.filter(pk=trusted.pk).update(tokens_revoked_at=now)
        refresh_count = refresh.update(revoked=now, updated=now)  # ``updated`` is auto_now: not set by update()
        access_count = access.filter(expires__gt=now).delete()[1].get(AccessToken._meta.label, 0)
        # Expired access tokens are inactive already; they go too, so no refresh token is left paired.
        access.delete()
        result = Revocation(trusted.issuer, subject or "", access_count, refresh_count)
        message = (f"Revoked the tokens issued from {'subject ' + repr(subject) if subject else 'every subject'}"
                   f": {access_count} access token(s), {refresh_count} refresh token(s).")
        if user is not None and getattr(user, "pk", None) is not None:
            LogEntry.objects.log_actions(user.pk, [trusted], CHANGE, change_message=message, single_object=True)
    trusted.tokens_revoked_at = now
    audit_log.info("tokens revoked by provenance", extra={
        "event": "tokens_revoked", "issuer": trusted.issuer, "subject": subject or None,
        "access_tokens": access_count, "refresh_tokens": refresh_count,
        "actor": user.get_username() if user is not None and getattr(user, "pk", None) is not None else None,
    })
    return result


#: Fields of an application that ``update_application`` may change.
APPLICATION_UPDATABLE = (
    "name", "allowed_grant_types", "allowed_scopes", "allowed_audiences", "access_token_lifetime",
    "enabled", "resource_server", "service_account_permissions", "bound_to_subject_token", "linked_accounts",
    "allow_delegation", "actor_issuers",
    "redirect_uris", "skip_authorization",
)


def update_application(application, *, actor=None, **changes):
    """Change an application's settings, validated by the model; nothing is saved if any is invalid.

    Adding the management scope, or changing the service account's permissions, is a grant that
    ``actor`` must be allowed to make (PermissionDenied otherwise). Removing the scope or a grant
    type revokes the application's management tokens; disabling it revokes all its tokens.
    """
    unknown = set(changes) - set(APPLICATION_UPDATABLE)
    if unknown:
        raise TypeError(f"Cannot update {', '.join(sorted(unknown))}")
    if "allowed_grant_types" in changes:
        changes["allowed_grant_types"] = _ordered_grants(changes["allowed_grant_types"])
    requested = changes.pop("service_account_permissions", None)
    actor_issuers = changes.pop("actor_issuers", None)  # the issuers of accepted actor tokens (delegation)
    changed = copy.copy(application)
    for field, value in changes.items():
        setattr(changed, field, value)
    changed.full_clean(exclude=["client_secret"])
    had = service_accounts.has_management_scope(application)
    current = service_accounts.permission_names(application.service_user) if had else None
    permissions = _service_permissions(changed, requested, actor, granting=not had)
    if permissions == current:
        permissions = None  # the same grant again: nothing to authorize or record
    removed_grants = set(application.allowed_grant_types) - set(changed.allowed_grant_types)
    with transaction.atomic():
        if changes:
            changed.save(update_fields=list(changes))
        if actor_issuers is not None:
            changed.actor_issuers.set(actor_issuers)
        if permissions is not None:
            service_accounts.grant(changed, permissions)
            service_accounts.record(actor, changed, _granted_message(permissions))
        if had and not service_accounts.has_management_scope(changed):
            service_accounts.withdraw(changed)
            revoked = service_accounts.revoke_tokens(changed, scope=MANAGE_SCOPE)
            service_accounts.record(actor, changed, f"Removed the {MANAGE_SCOPE} scope; {revoked} access tokens revoked")
        elif removed_grants:
            revoked = service_accounts.revoke_tokens(changed, scope=MANAGE_SCOPE)
            if revoked:
                service_accounts.record(actor, changed, f"Removed grant types; {revoked} management tokens revoked",
                                        history=False)
        if application.enabled and not changed.enabled:
            revoked = service_accounts.revoke_tokens(changed)
            service_accounts.record(actor, changed, f"Disabled; {revoked} access tokens revoked", history=False)
    for field in (*changes, "service_user"):
        setattr(application, field, getattr(changed, field))
    return application


# -- local users and linked identities (exchange/accounts.py) -------------------------------------------

def _user_history(actor, user, message):
    """History of a local user's links and status: a LogEntry on the user, and a line on ``exchange.audit``.

    The author is ``actor`` when a user acted (console, API); otherwise (the command line, an
    implicit link made by an exchange) the user it is about, and ``message`` says who acted.
    """
    author = actor if getattr(actor, "pk", None) is not None else user
    LogEntry.objects.log_actions(author.pk, [user], CHANGE, change_message=message, single_object=True)
    audit_log.info(message, extra={"event": "local_user_changed", "user_id": user.pk,
                                   "actor": actor.get_username() if getattr(actor, "pk", None) else None})


def _revoke_user_tokens(user, trusted=None, subject=None):
    """Revoke the user's live tokens (only those exchanged for ``subject`` of ``trusted``, when given)."""
    access = AccessToken.objects.filter(user=user)
    refresh = RefreshToken.objects.filter(user=user, revoked__isnull=True)
    if trusted is not None:
        access = access.filter(trusted_issuer=trusted, subject=subject)
        refresh = refresh.filter(trusted_issuer=trusted, subject=subject)
    now = timezone.now()
    refresh.update(revoked=now, updated=now)
    return access.delete()[1].get(AccessToken._meta.label, 0)


def link_identity(trusted, subject, user, *, actor=None):
    """Link the external identity (``trusted``, ``subject``) to the local ``user``; the LinkedIdentity.

    Refused (ValidationError) for staff, superusers and service accounts, for a subject that is not
    1 to 255 characters of text, and for an identity already linked (to anyone).
    """
    if not isinstance(subject, str) or not subject or len(subject) > 255 or subject != subject.strip() \
            or not subject.isprintable() or not storable(subject):
        raise ValidationError({"subject": "Give the external subject (sub) as issued, 1 to 255 characters."},
                              code="subject")
    problem = accounts.linkable_problem(user)
    if problem is not None:
        raise ValidationError({"user": f"This user cannot be linked: {problem}."}, code="not_linkable")
    if LinkedIdentity.objects.filter(trusted_issuer=trusted, subject=subject).exists():
        raise ValidationError({"subject": "This external identity is already linked to a local user."},
                              code="already_linked")
    who = "by the command line" if getattr(actor, "pk", None) is None else f"by {actor.get_username()}"
    with transaction.atomic():
        link = LinkedIdentity.objects.create(trusted_issuer=trusted, subject=subject, user=user,
                                             origin=LinkedIdentity.Origin.EXPLICIT)
        _user_history(actor, user, f"Linked the external identity {subject!r} of {trusted.issuer} {who}.")
    return link


def link_implicitly(link, application):
    """Save the implicit link an exchange found (accounts.resolve); the saved link, or the one saved meanwhile
    by another request (accounts.LinkRefused if that link's user may not get tokens). Its History entry
    names the attribute it was matched on and the application."""
    try:
        with transaction.atomic():
            link.save()
            _user_history(None, link.user, (
                f"Linked the external identity {link.subject!r} of {link.trusted_issuer.issuer} implicitly at "
                f"token exchange (matched on {link.matched_on}; application {application.client_id})."))
    except IntegrityError:  # the same identity linked meanwhile (perhaps to someone else): that link stands
        existing = LinkedIdentity.objects.select_related("user__local_account", "user__service_application").get(
            trusted_issuer=link.trusted_issuer, subject=link.subject)
        accounts.check_user(existing.user)
        return existing
    return link


def unlink_identity(link, *, actor=None):
    """Remove a link; the live tokens exchanged through it are revoked. The next exchange of that external
    identity is for the external identity again (or refused, for applications that require a link)."""
    user = link.user
    who = "by the command line" if getattr(actor, "pk", None) is None else f"by {actor.get_username()}"
    with transaction.atomic():
        revoked = _revoke_user_tokens(user, link.trusted_issuer, link.subject)
        link.delete()
        _user_history(actor, user, f"Removed the link of the external identity {link.subject!r} of "
                                   f"{link.trusted_issuer.issuer} {who}; {revoked} access token(s) revoked.")


def set_user_active(user, active, *, actor=None):
    """Enable or disable a local user; disabling revokes their live tokens (exchanged ones included).

    Only local users: staff and superusers are managed on Django's own user page.
    """
    if accounts.linkable_problem(user) is not None:
        raise ValidationError({"is_active": "Staff, superusers and service accounts are not managed here."},
                              code="not_local")
    if getattr(actor, "pk", None) == user.pk:
        raise ValidationError({"is_active": "You cannot disable yourself."}, code="self")
    who = "by the command line" if getattr(actor, "pk", None) is None else f"by {actor.get_username()}"
    with transaction.atomic():
        user.is_active = bool(active)
        user.save(update_fields=["is_active"])
        revoked = 0 if user.is_active else _revoke_user_tokens(user)
        verb = "Enabled" if user.is_active else f"Disabled ({revoked} access token(s) revoked)"
        _user_history(actor, user, f"{verb} {who}.")
    return user


def set_lookup_attribute(user, value, *, actor=None):
    """Set (or, with None or "", remove) a local user's custom lookup attribute: unique among local users."""
    value = value or None
    if value is not None and (not isinstance(value, str) or len(value) > 255 or value != value.strip()
                              or not value.isprintable() or not storable(value)):
        raise ValidationError({"lookup_attribute": "Give 1 to 255 printable characters without surrounding spaces."},
                              code="lookup_attribute")
    account = LocalAccount.objects.get_or_create(user=user)[0]
    if value is not None and LocalAccount.objects.filter(lookup_attribute=value).exclude(pk=account.pk).exists():
        raise ValidationError({"lookup_attribute": "Another local user has this lookup attribute."}, code="unique")
    who = "by the command line" if getattr(actor, "pk", None) is None else f"by {actor.get_username()}"
    with transaction.atomic():
        account.lookup_attribute = value
        account.save(update_fields=["lookup_attribute"])
        _user_history(actor, user, f"{'Set' if value else 'Removed'} the custom lookup attribute {who}.")
    return account


def clean_role_scopes(scopes):
    """A role's scopes (a space-separated string or a list) as stored; ValidationError unless registered scopes.

    Validated against the scope registry (exchange/scopes.py) like an application's allowed scopes
    (``Application.clean``): RFC 6749 §3.3 names, each registered. The registry refuses to delete a
    scope a role still grants (``delete_scope``).
    """
    names = scopes.split() if isinstance(scopes, str) else list(scopes)
    if any(not is_scope_name(n) for n in names):
        raise ValidationError({"scopes": "Give registered scope names separated by spaces."}, code="bad_scope")
    if MANAGE_SCOPE in names:
        raise ValidationError({"scopes": f"The {MANAGE_SCOPE} scope is not a role's: it is never exchanged."},
                              code="manage_scope")
    unknown = sorted(set(names) - set(Scope.objects.filter(name__in=names).values_list("name", flat=True)))
    if unknown:
        raise ValidationError({"scopes": f"Unknown scope {unknown[0]!r}: register it in the scope registry first."},
                              code="unknown_scope")
    value = " ".join(dict.fromkeys(names))
    if len(value) > 500:
        raise ValidationError({"scopes": "At most 500 characters of scopes."}, code="too_long")
    return value


def set_role_scopes(group, scopes, *, actor=None):
    """Set the scopes a role (a Django group) holds (``clean_role_scopes``); the stored value."""
    value = clean_role_scopes(scopes)
    with transaction.atomic():
        RoleScopes.objects.update_or_create(group=group, defaults={"scopes": value})
        if getattr(actor, "pk", None) is not None:
            LogEntry.objects.log_actions(actor.pk, [group], CHANGE, change_message=f"Scopes: {value or '(none)'}",
                                         single_object=True)
    return value


# -- The scope registry (exchange/scopes.py) ------------------------------------------------------


def history(user, obj, action, message):
    """A LogEntry on ``obj``'s History by ``user`` (none for no user): the management API's and flows' audit row."""
    if user is not None and getattr(user, "pk", None) is not None:
        LogEntry.objects.log_actions(user.pk, [obj], action, change_message=message, single_object=True)


def create_scope(*, name, description="", user=None):
    """Register a scope (validated by the model: RFC 6749 syntax, unique). ``user``: its History author."""
    scope = Scope(name=name, description=description)
    scope.full_clean()
    with transaction.atomic():
        scope.save()
        history(user, scope, ADDITION, [{"added": {}}])
    return scope  # the registry's caches are emptied by the model signals (registry.py)


def update_scope(scope, *, description, user=None):
    """Change a scope's description. Its name is what applications and tokens carry: it never changes."""
    changed = copy.copy(scope)
    changed.description = description
    changed.full_clean()
    with transaction.atomic():
        changed.save(update_fields=["description", "updated"])
        history(user, changed, CHANGE, [{"changed": {"fields": ["Description"]}}])
    scope.description, scope.updated = changed.description, changed.updated
    return scope


def applications_allowing(scope):
    """The applications whose allowed scopes name ``scope`` (exactly, not as a substring)."""
    candidates = Application.objects.filter(allowed_scopes__contains=scope.name).order_by("name")
    return [application for application in candidates if scope.name in application.allowed_scopes.split()]


def roles_granting(scope):
    """The roles (Django groups) whose scopes name ``scope`` (exactly, not as a substring)."""
    candidates = RoleScopes.objects.filter(scopes__contains=scope.name).select_related("group").order_by("group__name")
    return [role.group for role in candidates if scope.name in role.scopes.split()]


def delete_scope(scope, *, user=None):
    """Remove a scope from the registry: refused while it is protected, any application is allowed it or
    any role grants it (linked accounts' role scopes, exchange/accounts.py).

    Refused rather than removed from those applications and roles: an application or a role losing a
    scope changes what its clients or users get, which should be a choice made on the application or
    the role itself. Tokens already issued with the scope keep it until they expire.
    """
    if scope.protected:
        raise ValidationError({"name": f"The {scope.name} scope is needed by the server and cannot be deleted."},
                              code="protected_scope")
    for holders, how in ((applications_allowing, "allowed for {} application(s)"), (roles_granting, "granted by {} role(s)")):
        found = holders(scope)
        if found:
            names = ", ".join(holder.name for holder in found[:5]) + (" …" if len(found) > 5 else "")
            raise ValidationError({"name": f"The scope is {how.format(len(found))} ({names}); remove it there first."},
                                  code="scope_in_use")
    with transaction.atomic():
        history(user, scope, DELETION, "Deleted")
        scope.delete()

