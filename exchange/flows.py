"""What administrators do, as named steps: one set of rules for the console, the API and the commands.

Each flow validates with the models' own ``full_clean`` and raises Django's
``ValidationError`` (with field names) when something is wrong; nothing is
saved unless everything is valid.

Every data change of the console and the API goes through a flow, and each flow that changes
issuers, certificates or applications invalidates what reads them, so the next token request
sees the change (in this process at once, in every other within ``REGISTRY_CHECK_MS``):

- the registry (registry.py) through the model signals the flow's own writes send; the same
  receivers catch changes made outside flows (the shell, data migrations);
- this process's key-source caches (``_keys_changed`` below), after a change of an issuer's settings
  or certificates, or its deletion. Callers never clear caches themselves.
"""

import base64
import binascii
import copy

from django.core.exceptions import ValidationError
from django.db import transaction
from oauth2_provider.generators import generate_client_secret

from . import certificates, key_sources
from .models import GRANT_SHORT_NAMES, Application, IssuerCertificate, TrustedTokenIssuer


def certificate_to_pem(value):
    """PEM text, PEM/DER bytes or base64 DER text → PEM text. Raises ValidationError."""
    try:
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


def create_application(*, name, application_type=Application.Type.STANDARD, grant_types=(), scopes="", **fields):
    """Create an application; returns (application, client_secret). The secret is shown once."""
    secret = generate_client_secret()
    application = Application(
        name=name,
        application_type=application_type,
        allowed_grant_types=_ordered_grants(grant_types),
        allowed_scopes=scopes,
        client_secret=secret,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_type=(
            Application.CLIENT_PUBLIC if application_type == Application.Type.SPA else Application.CLIENT_CONFIDENTIAL
        ),
        **fields,
    )
    application.full_clean()
    application.save()
    return application, secret


def set_grant_types(application, grant_types):
    """Replace the application's allowed grant types."""
    application.allowed_grant_types = _ordered_grants(grant_types)
    application.full_clean(exclude=["client_secret"])
    application.save(update_fields=["allowed_grant_types"])
    return application


def regenerate_secret(application):
    """Give the application a new client secret (returned once); the old one stops working."""
    secret = generate_client_secret()
    application.client_secret = secret
    application.save(update_fields=["client_secret"])
    return secret


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
    "max_token_age", "reject_replayed_jti", "require_jti", "required_type", "applications",
)


def update_trusted_token_issuer(trusted, **changes):
    """Change an issuer's settings with the model's own validation; nothing is saved if any is invalid.

    A JWKS-backed issuer keeps a JWKS endpoint (it cannot be emptied here), and a
    certificate-backed issuer cannot be given one: the key source changes only
    through its own steps.
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
    for field in (*changes, "updated"):
        setattr(trusted, field, getattr(changed, field))
    _keys_changed()
    return trusted


def set_issuer_enabled(trusted, enabled):
    """Enable or disable an issuer: a disabled issuer's tokens are refused (issuer_disabled)."""
    trusted.enabled = bool(enabled)
    trusted.save(update_fields=["enabled", "updated"])
    return trusted  # the registry serves the flag (model signals); its keys did not change


def update_application(application, **changes):
    """Change an application's name, grant types, scopes, audiences or token lifetime, validated by the model."""
    allowed = {"name", "allowed_grant_types", "allowed_scopes", "allowed_audiences", "access_token_lifetime"}
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"Cannot update {', '.join(sorted(unknown))}")
    if "allowed_grant_types" in changes:
        changes["allowed_grant_types"] = _ordered_grants(changes["allowed_grant_types"])
    changed = copy.copy(application)
    for field, value in changes.items():
        setattr(changed, field, value)
    changed.full_clean(exclude=["client_secret"])
    changed.save(update_fields=list(changes))
    for field in changes:
        setattr(application, field, getattr(changed, field))
    return application


def delete_application(application):
    """Delete an application; its tokens are deleted with it (they stop working)."""
    application.delete()
