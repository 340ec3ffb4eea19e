"""Trusted token issuers, applications and what an exchange leaves behind.

Application, AccessToken and RefreshToken are django-oauth-toolkit's swappable
models: Application carries several allowed grant types (DOT's single
``authorization_grant_type`` column is 44 characters, shorter than the
token-exchange URN); the token models remember which external subject and
trusted issuer a token was issued for, so refresh keeps ``sub`` and
introspection can report it.
"""

import ipaddress
import re
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import (
    AbstractAccessToken,
    AbstractApplication,
    AbstractRefreshToken,
)

from . import certificates, claim_mapping, conditions, presets, secrets_at_rest
from .conf import ASYMMETRIC_ALGORITHMS, exchange_settings
from .protocol import AUTHORIZATION_CODE, CLIENT_CREDENTIALS, MANAGE_SCOPE, REFRESH_TOKEN, TOKEN_EXCHANGE


#: Short names accepted by commands and the API for the grant types' wire names.
GRANT_SHORT_NAMES = {
    "token_exchange": TOKEN_EXCHANGE,
    "refresh_token": REFRESH_TOKEN,
    "client_credentials": CLIENT_CREDENTIALS,
    "authorization_code": AUTHORIZATION_CODE,
}

#: DOT's internal grant names → RFC wire names (DOT asks ``allows_grant_type`` in its terms).
_DOT_GRANT_NAMES = {
    AbstractApplication.GRANT_AUTHORIZATION_CODE: AUTHORIZATION_CODE,
    AbstractApplication.GRANT_CLIENT_CREDENTIALS: CLIENT_CREDENTIALS,
    AbstractApplication.GRANT_OPENID_HYBRID: AUTHORIZATION_CODE,
}


def _default_algorithms():
    return list(exchange_settings.DEFAULT_ALLOWED_ALGORITHMS)


def _default_clock_skew():
    return exchange_settings.DEFAULT_CLOCK_SKEW_SECONDS


def _default_max_age():
    return exchange_settings.DEFAULT_MAX_TOKEN_AGE_SECONDS


def validate_jwks_uri(value):
    """A JWKS URL must be https, except on loopback or where a setting allows http."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("https", "http")
        or not parts.hostname
        or any(ch.isspace() or ord(ch) < 0x20 for ch in value)
    ):
        raise ValidationError(_("Enter an http(s) URL with a host name."), code="jwks_scheme")
    if parts.username or parts.password:
        raise ValidationError(_("The JWKS URL must not contain credentials."), code="jwks_userinfo")
    if parts.fragment:
        raise ValidationError(_("The JWKS URL must not contain a fragment."), code="jwks_fragment")
    host = parts.hostname
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    if parts.scheme == "http" and not loopback and not exchange_settings.JWKS_ALLOW_HTTP:
        raise ValidationError(
            _("The JWKS URL must use https (plain http is allowed only for loopback addresses)."),
            code="jwks_http",
        )
    if (
        address is not None
        and not loopback
        and (address.is_private or address.is_link_local)
        and not exchange_settings.JWKS_ALLOW_PRIVATE_ADDRESSES
    ):
        raise ValidationError(_("The JWKS URL points at a private address."), code="jwks_private")


def validate_token_lifetime(value):
    """An access-token lifetime: whole seconds from 1 to TOKEN_EXCHANGE['MAX_TOKEN_LIFETIME_SECONDS']."""
    maximum = exchange_settings.MAX_TOKEN_LIFETIME_SECONDS
    if value is not None and (type(value) is not int or not 1 <= value <= maximum):
        raise ValidationError(
            _("Enter a lifetime from 1 to %(maximum)s seconds."), params={"maximum": maximum}, code="lifetime_range",
        )


def bounded_lifetime(seconds):
    """``seconds`` capped at the configured maximum (rows written before the bound existed may exceed it)."""
    return max(1, min(int(seconds), exchange_settings.MAX_TOKEN_LIFETIME_SECONDS))


def validate_algorithms(value):
    if not isinstance(value, list) or not value:
        raise ValidationError(_("Choose at least one signing algorithm."), code="no_algorithms")
    for alg in value:
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise ValidationError(
                _("%(alg)s is not an allowed algorithm; choose from %(allowed)s."),
                params={"alg": alg, "allowed": ", ".join(ASYMMETRIC_ALGORITHMS)},
                code="bad_algorithm",
            )


def normalize_token_type(value):
    """A ``typ`` media type compared the RFC 7515 §4.1.9 way: case-insensitive, ``application/`` implied."""
    value = value.lower()
    return value[len("application/"):] if value.startswith("application/") else value


def validate_token_type(value):
    if value and (value != value.strip() or not normalize_token_type(value) or any(c.isspace() for c in value)):
        raise ValidationError(_("Enter one media type, such as at+jwt."), code="bad_type")


def validate_condition(value):
    """An admission condition must compile and stay within the cost rules (conditions.py)."""
    if value:
        try:
            conditions.compile_condition(value)
        except conditions.ConditionError as exc:
            raise ValidationError(str(exc), code="bad_condition") from None


#: Implicit account linking's lookup attributes: the local attribute, and the subject-token claim it is read
#: from (the custom one names its claim per issuer). See exchange/accounts.py.
LOOKUP_ATTRIBUTE_CHOICES = [
    ("", _("None")),
    ("username", _("Username (claim preferred_username)")),
    ("email", _("Email (claim email; requires email_verified: true)")),
    ("custom", _("Custom attribute (the claim named below)")),
]


def validate_claim_mappings(value):
    """A claim-mapping list (claim_mapping.py): well-formed, bounded, never a reserved target."""
    try:
        claim_mapping.validate_mappings(value)
    except claim_mapping.MappingError as exc:
        raise ValidationError(str(exc), code="bad_claim_mapping") from None


#: The ``iss`` of the local demo issuer (exchange/demo.py): the .invalid TLD never names a real issuer.
DEMO_ISSUER = "https://demo-issuer.invalid"


class TrustedTokenIssuer(models.Model):
    """A third-party identity provider whose JWTs may be exchanged for our tokens."""

    name = models.CharField(
        _("trusted token issuer name"), max_length=120, unique=True,
        help_text=_("A unique name to identify this trusted token issuer."),
    )
    issuer = models.CharField(
        _("issuer"), max_length=512, unique=True,
        help_text=_("A unique issuer value of the trusted token issuer: the exact iss claim of its tokens."),
    )
    alias = models.CharField(
        _("alias"), max_length=512, blank=True,
        help_text=_(
            "Alias value for this console in the trusted token issuer: accepted in the token's aud "
            "when this console's own issuer value is absent."
        ),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    jwks_uri = models.CharField(
        _("JWKS endpoint"), max_length=2048, blank=True, validators=[validate_jwks_uri],
        help_text=_("The URL from which the issuer's public signing keys are fetched."),
    )
    allowed_algorithms = models.JSONField(
        _("allowed signing algorithms"), default=_default_algorithms, validators=[validate_algorithms],
    )
    clock_skew = models.PositiveIntegerField(
        _("clock skew (seconds)"), default=_default_clock_skew,
        help_text=_("Leeway applied to exp, nbf and iat."),
    )
    max_token_age = models.PositiveIntegerField(
        _("maximum subject-token age (seconds)"), default=_default_max_age,
        help_text=_("Tokens issued (iat) longer ago than this are refused."),
    )
    reject_replayed_jti = models.BooleanField(
        _("reject reused jti"), default=True,
        help_text=_("A token whose jti was already exchanged is refused until it expires."),
    )
    require_jti = models.BooleanField(_("require jti"), default=False)
    # When tokens issued from this issuer's tokens were last revoked (flows.revoke_tokens): an exchange
    # under way at that moment is refused rather than left holding a token issued after the revocation.
    tokens_revoked_at = models.DateTimeField(_("tokens last revoked"), null=True, blank=True, editable=False)
    required_type = models.CharField(
        _("required token type (typ)"), max_length=100, blank=True, validators=[validate_token_type],
        help_text=_(
            "When set, the subject token's typ header must name this type, e.g. at+jwt for RFC 9068 "
            "access tokens (compared case-insensitively, application/ optional). Empty: typ is not required."
        ),
    )
    condition = models.TextField(
        _("admission condition"), blank=True, max_length=conditions.MAX_LENGTH, validators=[validate_condition],
        help_text=_(
            "A CEL expression over the verified claims (e.g. claims.repository_owner_id == \"123\"); "
            "a token is exchanged only when it yields true. Empty: no condition."
        ),
    )
    preset = models.CharField(
        _("preset"), max_length=40, blank=True, choices=presets.CHOICES,
        help_text=_("The shared platform this issuer was set up for; shared issuers require a condition."),
    )
    claim_mappings = models.JSONField(
        _("claim mappings"), default=list, blank=True, validators=[validate_claim_mappings],
        help_text=_(
            "Claims of this issuer's tokens carried into the tokens issued for them: source claim, target "
            "name, expected type, required or not. Empty: only sub."
        ),
    )
    applications = models.ManyToManyField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, blank=True, related_name="trusted_issuers",
        verbose_name=_("linked applications"),
        help_text=_(
            "Linking restricts both sides: a linked issuer's tokens are exchanged only by its linked "
            "applications, and a linked application exchanges only its linked issuers' tokens. "
            "Issuers and applications without links work with each other."
        ),
    )
    # Implicit account linking (exchange/accounts.py): up to two local attributes looked up from the
    # subject token's claims; an exchange whose external identity is not linked yet links it to the one
    # local user they match. Empty primary: off.
    link_lookup_primary = models.CharField(
        _("primary lookup attribute"), max_length=20, blank=True, choices=LOOKUP_ATTRIBUTE_CHOICES,
        help_text=_("Implicit account linking: the local attribute matched first. Empty: no implicit linking."),
    )
    link_lookup_secondary = models.CharField(
        _("secondary lookup attribute"), max_length=20, blank=True, choices=LOOKUP_ATTRIBUTE_CHOICES,
        help_text=_("Looked up when the token lacks the primary attribute or it matches no local user. Empty: none."),
    )
    link_custom_claim = models.CharField(
        _("custom attribute claim"), max_length=100, blank=True,
        help_text=_("The subject-token claim holding the custom lookup attribute (matched against each local "
                    "user's custom lookup attribute)."),
    )
    # Key-source health, written when the JWKS is fetched.
    keys_fetched_at = models.DateTimeField(_("keys last fetched"), null=True, blank=True)
    key_fetch_error = models.CharField(_("last key fetch problem"), max_length=200, blank=True)
    key_fetch_failed_at = models.DateTimeField(_("last key fetch failure"), null=True, blank=True)
    #: The keys the last successful JWKS fetch found, each with when it was first and last seen
    #: (``key_sources.known_keys``): the issuer page's key table survives a reload and a restart.
    known_keys = models.JSONField(_("keys last fetched"), default=list, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("trusted token issuer")

    def __str__(self):
        return self.name

    @property
    def key_source(self):
        return "jwks" if self.jwks_uri else "pem"

    @property
    def is_demo(self):
        """The local demo issuer, whose private key sits in var/ (marked in the console)."""
        return self.issuer == DEMO_ISSUER

    def exchangeable_by(self, application):
        """Whether ``application`` may exchange this issuer's tokens (see ``applications``).

        Reads ``linked_application_ids`` / ``linked_issuer_ids`` when the registry has set them
        (no query on the request path), else the database.
        """
        issuer_links = getattr(self, "linked_application_ids", None)
        if issuer_links is None:
            issuer_links = set(self.applications.values_list("pk", flat=True))
        application_links = getattr(application, "linked_issuer_ids", None)
        if application_links is None:
            application_links = set(application.trusted_issuers.values_list("pk", flat=True))
        if not issuer_links and not application_links:
            return True
        return application.pk in issuer_links

    def clean(self):
        for field in ("name", "issuer", "alias", "jwks_uri"):
            value = getattr(self, field)
            if value != value.strip():
                raise ValidationError(
                    {field: _("Remove the leading or trailing whitespace.")}, code="whitespace"
                )
        chosen = presets.PRESETS.get(self.preset)
        if chosen is not None and chosen.issuer and self.issuer != chosen.issuer:
            raise ValidationError(
                {"issuer": _("The %(label)s preset's issuer is %(issuer)s.") % {"label": chosen.label, "issuer": chosen.issuer}},
                code="preset_issuer",
            )
        shared = presets.shared_preset(self.preset, self.issuer)
        if shared is not None and not self.condition.strip():
            raise ValidationError({"condition": presets.condition_required_message(shared)}, code="condition_required")
        lookups = [a for a in (self.link_lookup_primary, self.link_lookup_secondary) if a]
        if self.link_lookup_secondary and not self.link_lookup_primary:
            raise ValidationError({"link_lookup_secondary": _("Choose the primary lookup attribute first.")},
                                  code="lookup_order")
        if len(set(lookups)) != len(lookups):
            raise ValidationError({"link_lookup_secondary": _("Choose another attribute than the primary one.")},
                                  code="lookup_twice")
        claim = self.link_custom_claim
        if "custom" in lookups and (not claim or claim != claim.strip() or any(not c.isprintable() for c in claim)):
            raise ValidationError({"link_custom_claim": _("Name the claim that holds the custom attribute.")},
                                  code="custom_claim")
        try:  # stored normalized (``required`` always present); the field's validator reports a bad list
            self.claim_mappings = claim_mapping.validate_mappings(self.claim_mappings)
        except claim_mapping.MappingError:
            pass

    @property
    def link_lookups(self):
        """The implicit-linking lookup attributes, primary first (empty: implicit linking is off)."""
        return tuple(a for a in (self.link_lookup_primary, self.link_lookup_secondary) if a)


class IssuerCertificate(models.Model):
    """A PEM certificate (or bare public key) that verifies a trusted issuer's tokens."""

    trusted_issuer = models.ForeignKey(
        TrustedTokenIssuer, on_delete=models.CASCADE, related_name="certificates"
    )
    pem = models.TextField(_("PEM"))
    fingerprint = models.CharField(_("SHA-256 fingerprint"), max_length=95, editable=False)
    subject = models.CharField(_("subject"), max_length=500, blank=True, editable=False)
    not_before = models.DateTimeField(null=True, blank=True, editable=False)
    not_after = models.DateTimeField(null=True, blank=True, editable=False)
    key_description = models.CharField(max_length=60, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]
        constraints = [
            models.UniqueConstraint(fields=["trusted_issuer", "fingerprint"], name="unique_issuer_certificate"),
        ]

    def __str__(self):
        return self.subject or self.fingerprint

    def clean(self):
        try:
            info = certificates.inspect_pem(self.pem)
        except certificates.CertificateError as exc:
            raise ValidationError({"pem": str(exc)}, code="bad_certificate") from None
        self.pem = info.pem
        self.fingerprint = info.fingerprint
        self.subject = info.subject
        self.not_before = info.not_before
        self.not_after = info.not_after
        self.key_description = info.key_description

    def save(self, *args, **kwargs):
        if not self.fingerprint:
            self.clean()
        super().save(*args, **kwargs)


#: RFC 6749 §3.3 scope-token: printable ASCII except space, double quote and backslash.
_SCOPE_TOKEN = re.compile(r"\A[\x21\x23-\x5B\x5D-\x7E]{1,100}\Z")


def is_scope_name(value):
    """Whether ``value`` is an RFC 6749 §3.3 scope-token of at most 100 characters."""
    return isinstance(value, str) and _SCOPE_TOKEN.match(value) is not None


def validate_scope_name(value):
    if not is_scope_name(value):
        raise ValidationError(
            _("Enter a scope name of 1 to 100 printable ASCII characters without spaces, quotes or backslashes "
              "(RFC 6749 §3.3)."),
            code="bad_scope_name",
        )


class Scope(models.Model):
    """A scope this server knows (the scope registry): applications may be allowed only registered scopes.

    ``protected`` scopes are the ones the server itself relies on (``console:manage`` for the
    management API, ``openid``): seeded by a migration and never deleted.
    """

    name = models.CharField(
        _("name"), max_length=100, unique=True, validators=[validate_scope_name],
        help_text=_("The scope as clients request it, e.g. orders:read."),
    )
    description = models.CharField(_("description"), max_length=255, blank=True)
    protected = models.BooleanField(
        _("protected"), default=False, editable=False,
        help_text=_("Needed by the server itself: it cannot be deleted."),
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("scope")

    def __str__(self):
        return self.name

    def clean(self):
        # Scope names compare exactly, but a scope differing only in case (CONSOLE:MANAGE) would read as the
        # same one to a person or to a resource server comparing loosely: never two such names.
        if is_scope_name(self.name):  # a malformed name is refused by its validator, never looked up (a NUL: PostgreSQL)
            clash = Scope.objects.filter(name__iexact=self.name).exclude(pk=self.pk).exclude(name=self.name).first()
            if clash is not None:
                raise ValidationError(
                    {"name": _("A scope differing only in case is already registered: %(name)s.") % {"name": clash.name}},
                    code="scope_case",
                )


class Application(AbstractApplication):
    """An OAuth client, typed like WSO2's application templates, with several grant types."""

    class Type(models.TextChoices):
        STANDARD = "standard", _("Standard-based OIDC")
        MOBILE = "mobile", _("Mobile")
        TRADITIONAL = "traditional", _("Traditional OIDC web")
        SPA = "spa", _("Single-page")

    class LinkedAccounts(models.TextChoices):
        """Attribute resolution for linked accounts (WSO2's three choices)."""

        DISABLED = "disabled", _("Disabled")
        USE = "use", _("Use linked local account")
        REQUIRE = "require", _("Require linked local account")

    class GrantType(models.TextChoices):
        TOKEN_EXCHANGE = TOKEN_EXCHANGE, _("Token Exchange")
        REFRESH_TOKEN = REFRESH_TOKEN, _("Refresh Token")
        CLIENT_CREDENTIALS = CLIENT_CREDENTIALS, _("Client Credentials")
        AUTHORIZATION_CODE = AUTHORIZATION_CODE, _("Code")

    application_type = models.CharField(
        _("application type"), max_length=20, choices=Type.choices, default=Type.STANDARD
    )
    allowed_grant_types = models.JSONField(_("allowed grant types"), default=list, blank=True)
    allowed_scopes = models.CharField(
        _("allowed scopes"), max_length=500, blank=True,
        help_text=_("Space-separated scopes this application may request."),
    )
    allowed_audiences = models.JSONField(
        _("allowed audiences"), default=list, blank=True,
        help_text=_("Values a token request may name in audience or resource."),
    )
    access_token_lifetime = models.PositiveIntegerField(
        _("access token lifetime (seconds)"), null=True, blank=True, validators=[validate_token_lifetime],
        help_text=_("Empty: the server default."),
    )
    enabled = models.BooleanField(
        _("enabled"), default=True,
        help_text=_("A disabled application cannot authenticate, and the tokens it holds stop working."),
    )
    resource_server = models.BooleanField(
        _("resource server"), default=False,
        help_text=_("May introspect any token. Other applications learn only about tokens issued to them or "
                    "naming them in aud."),
    )
    # The user this application acts as with the management scope (a Keycloak-style service account):
    # its bearer tokens may do over the API what this user's Django permissions allow. Set only by
    # exchange.service_accounts; kept (deactivated) when the application is deleted, for its history.
    service_user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, editable=False, on_delete=models.SET_NULL,
        related_name="service_application", verbose_name=_("service account"),
    )
    bound_to_subject_token = models.BooleanField(
        _("never outlive the subject token"), default=True,
        help_text=_(
            "An exchanged token (and its refresh token, and the tokens refreshed from it) expires no "
            "later than the subject token it was exchanged for."
        ),
    )

    linked_accounts = models.CharField(
        _("attribute resolution for linked accounts"), max_length=10, choices=LinkedAccounts.choices,
        default=LinkedAccounts.DISABLED,
        help_text=_(
            "Disabled: exchanged tokens are for the external identity. Use: for the local user the external "
            "identity is linked to, if any. Require: only for a linked local user; others are refused."
        ),
    )

    allow_delegation = models.BooleanField(
        _("allow delegation (actor tokens)"), default=False,
        help_text=_(
            "Accept an actor_token (RFC 8693 delegation): the issued token names the actor in its act "
            "claim. Only actor tokens of the trusted token issuers chosen below are accepted."
        ),
    )
    actor_issuers = models.ManyToManyField(
        TrustedTokenIssuer, blank=True, related_name="actor_for_applications",
        verbose_name=_("actor token issuers"),
        help_text=_("The trusted token issuers whose tokens this application may present as actor tokens."),
    )

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        permissions = [("grant_management_scope", "Can grant the management scope to applications")]

    def save(self, *args, **kwargs):
        # Single-page applications cannot keep a secret: they are public clients, and hold none
        # (an empty secret stays empty: hashed, it would be a secret anyone knows).
        if self.application_type == self.Type.SPA:
            self.client_type = self.CLIENT_PUBLIC
            self.client_secret = ""
            self.hash_client_secret = False
        else:
            self.client_type = self.CLIENT_CONFIDENTIAL
        if not self.authorization_grant_type:
            self.authorization_grant_type = self.GRANT_CLIENT_CREDENTIALS
        super().save(*args, **kwargs)

    def clean(self):
        grants = self.allowed_grant_types
        if not isinstance(grants, list) or any(g not in self.GrantType.values for g in grants):
            raise ValidationError(
                {"allowed_grant_types": _("Unknown grant type; choose from %(choices)s.")
                 % {"choices": ", ".join(self.GrantType.values)}},
                code="unknown_grant",
            )
        audiences = self.allowed_audiences
        if not isinstance(audiences, list) or any(
            not isinstance(a, str) or not a or a != a.strip() or len(a) > 2048 for a in audiences
        ) or len(set(audiences)) != len(audiences):
            raise ValidationError(
                {"allowed_audiences": _("Give distinct, non-empty values without surrounding spaces "
                                        "(at most 2048 characters each).")},
                code="bad_audience",
            )
        scopes = self.allowed_scopes.split() if isinstance(self.allowed_scopes, str) else None
        if scopes is None or any(not is_scope_name(scope) for scope in scopes):
            raise ValidationError(
                {"allowed_scopes": _("Give registered scope names separated by spaces.")}, code="bad_scope",
            )
        unknown = sorted(set(scopes) - set(Scope.objects.filter(name__in=scopes).values_list("name", flat=True)))
        if unknown:
            raise ValidationError(
                {"allowed_scopes": _("Unknown scope %(scopes)s: register it in the scope registry first.")
                 % {"scopes": ", ".join(unknown[:5])}},
                code="unknown_scope",
            )
        if self.application_type == self.Type.SPA and TOKEN_EXCHANGE in grants:
            raise ValidationError(
                {"allowed_grant_types": _(
                    "Token Exchange is not available for single-page applications: they are public "
                    "clients and cannot authenticate to the token endpoint."
                )},
                code="spa_token_exchange",
            )
        if self.application_type == self.Type.SPA and CLIENT_CREDENTIALS in grants:
            raise ValidationError(
                {"allowed_grant_types": _(
                    "Client Credentials is not available for single-page applications: they are public "
                    "clients and have no secret."
                )},
                code="spa_client_credentials",
            )
        super().clean()

    def allows_grant_type(self, *grant_types):
        """True when any of ``grant_types`` (RFC wire names or DOT's names) is allowed."""
        allowed = self.allowed_grant_types or []
        for grant in grant_types:
            wire = _DOT_GRANT_NAMES.get(grant, grant)
            if wire in allowed:
                # Grants authenticated by the client secret: public clients have none.
                if wire in (TOKEN_EXCHANGE, CLIENT_CREDENTIALS) and self.client_type != self.CLIENT_CONFIDENTIAL:
                    continue
                return True
        return False

    def accepts_actor_from(self, issuer):
        """Whether this application accepts ``issuer``'s tokens as actor tokens (delegation on, issuer chosen).

        Reads ``actor_issuer_ids`` when the registry has set it (no query on the request path).
        """
        if not self.allow_delegation:
            return False
        ids = getattr(self, "actor_issuer_ids", None)
        if ids is None:
            ids = set(self.actor_issuers.values_list("pk", flat=True))
        return issuer.pk in ids

    def redirect_uri_allowed(self, uri):
        """Exactly one of the registered redirect URIs, character for character (RFC 9700 §4.1.3):
        no loopback port variation, no wildcard, no normalization."""
        return isinstance(uri, str) and uri in self.redirect_uris.split()

    def is_usable(self, request):
        """DOT asks this when loading a client and when checking its access tokens."""
        return self.enabled

    @property
    def token_lifetime(self):
        """Seconds an access token of this application lives: its own lifetime, else the server default."""
        return bounded_lifetime(self.access_token_lifetime or exchange_settings.ACCESS_TOKEN_LIFETIME_SECONDS)

    def lifetime_for(self, scopes):
        """``token_lifetime``, shortened to the management maximum when ``scopes`` hold the management scope."""
        lifetime = self.token_lifetime
        if MANAGE_SCOPE in (scopes or ()):
            lifetime = min(lifetime, bounded_lifetime(exchange_settings.MANAGEMENT_TOKEN_LIFETIME_SECONDS))
        return lifetime


class AccessToken(AbstractAccessToken):
    """DOT's access token plus the external identity it was issued for (if any).

    Every index is a page written per token (and copied again at each WAL checkpoint), so the
    ones nothing looks tokens up by are left out: ``jti`` (the admin searches it by substring, which
    no index serves) and ``user`` for tokens without one — exchanged and client_credentials tokens,
    nearly all of them; the user's tokens are still found by index.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, blank=True, null=True, db_index=False,
        related_name="%(app_label)s_%(class)s", verbose_name=_("user"),
    )
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    trusted_issuer = models.ForeignKey(
        TrustedTokenIssuer, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    jti = models.CharField(max_length=64, blank=True)
    # The aud claim of the issued JWT, always as a list: introspection and refresh read it from here,
    # so what they say is what the token says. Empty on rows written before it existed.
    audience = models.JSONField(_("audience"), default=list, blank=True)
    # The claims the trusted issuer's claim mapping carried into the JWT (claim_mapping.py), so that
    # introspection and refresh say what the token says.
    mapped_claims = models.JSONField(_("mapped claims"), default=dict, blank=True)
    # Delegation (RFC 8693 §4.1): the act claim of the issued JWT (introspection and refresh read it
    # from here), and the actor's issuer and subject, for revocation by provenance. Empty otherwise.
    act = models.JSONField(_("actor (act)"), null=True, blank=True)
    actor_trusted_issuer = models.ForeignKey(
        TrustedTokenIssuer, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False,
    )
    actor_subject = models.CharField(_("actor subject"), max_length=255, blank=True)

    class Meta(AbstractAccessToken.Meta):
        swappable = "OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL"
        indexes = [
            models.Index(fields=["user"], condition=models.Q(user__isnull=False), name="exchange_at_user_idx"),
            models.Index(fields=["actor_trusted_issuer"], condition=models.Q(actor_trusted_issuer__isnull=False),
                         name="exchange_at_actor_iss_idx"),
        ]


class RefreshToken(AbstractRefreshToken):
    # Exchanged tokens belong to an external subject, not a local user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="%(app_label)s_%(class)s",
    )
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    trusted_issuer = models.ForeignKey(
        TrustedTokenIssuer, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # The subject token's expiry, for a token exchanged by an application bound to it: the refresh
    # token stops refreshing then, and no access token refreshed from it lives longer.
    not_after = models.DateTimeField(_("not after"), null=True, blank=True)
    # The mapped claims of the exchanged token: tokens refreshed from it carry them too.
    mapped_claims = models.JSONField(_("mapped claims"), default=dict, blank=True)
    # Delegation: as on AccessToken; the tokens refreshed from it carry the same act claim.
    act = models.JSONField(_("actor (act)"), null=True, blank=True)
    actor_trusted_issuer = models.ForeignKey(
        TrustedTokenIssuer, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False,
    )
    actor_subject = models.CharField(_("actor subject"), max_length=255, blank=True)

    class Meta(AbstractRefreshToken.Meta):
        swappable = "OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL"
        indexes = [
            *AbstractRefreshToken.Meta.indexes,
            models.Index(fields=["actor_trusted_issuer"], condition=models.Q(actor_trusted_issuer__isnull=False),
                         name="exchange_rt_actor_iss_idx"),
        ]


class LocalAccount(models.Model):
    """What a local user (a Django user) has beyond Django's columns: the stable ``sub`` of tokens issued for
    them (never the username, which can change) and an optional custom lookup attribute for implicit linking.

    Created with the user (exchange/accounts.py, ``post_save``) and for older users by migration.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="local_account")
    subject = models.UUIDField(_("local subject"), default=uuid.uuid4, unique=True, editable=False)
    lookup_attribute = models.CharField(
        _("custom lookup attribute"), max_length=255, unique=True, null=True, blank=True,
        help_text=_("Unique among local users; matched by issuers whose implicit linking uses the custom attribute."),
    )

    def __str__(self):
        return str(self.subject)


class RoleScopes(models.Model):
    """The scopes a local role (a Django group) holds: a linked local user gets at most their groups' scopes."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="role_scopes")
    scopes = models.CharField(_("scopes"), max_length=500, blank=True, help_text=_("Space-separated scopes."))

    class Meta:
        verbose_name = _("role scopes")
        verbose_name_plural = _("role scopes")

    def __str__(self):
        return f"{self.group}: {self.scopes}"


class LinkedIdentity(models.Model):
    """An external identity (trusted issuer, external ``sub``) linked to a local user, for exchanged tokens."""

    class Origin(models.TextChoices):
        EXPLICIT = "explicit", _("Linked by an administrator")
        IMPLICIT = "implicit", _("Linked implicitly at token exchange")

    trusted_issuer = models.ForeignKey(
        TrustedTokenIssuer, on_delete=models.CASCADE, related_name="linked_identities",
        verbose_name=_("trusted token issuer"),
    )
    subject = models.CharField(_("external subject"), max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="linked_identities",
        verbose_name=_("local user"),
    )
    origin = models.CharField(_("origin"), max_length=10, choices=Origin.choices, default=Origin.EXPLICIT)
    matched_on = models.CharField(_("matched on"), max_length=20, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = _("linked identity")
        verbose_name_plural = _("linked identities")
        constraints = [
            models.UniqueConstraint(fields=["trusted_issuer", "subject"], name="unique_linked_identity"),
        ]

    def __str__(self):
        return f"{self.subject} @ {self.trusted_issuer}"


class SigningKey(models.Model):
    """A private key this console signs its access tokens with; public halves go to /oauth2/jwks."""

    kid = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=10)
    # Encrypted (exchange/secrets_at_rest.py): save() seals a PEM given in the clear. Empty once retired.
    private_pem = models.TextField()
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    retire_after = models.DateTimeField(
        null=True, blank=True, help_text=_("Unpublished from the JWKS after this time.")
    )
    activate_at = models.DateTimeField(
        null=True, blank=True,
        help_text=_("Published from creation, used for signing only from this time on (rotation)."),
    )
    retired_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the key was retired and its private half erased."),
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.kid} ({self.algorithm})"

    def save(self, *args, **kwargs):
        if self.private_pem and not secrets_at_rest.is_sealed(self.private_pem):
            self.private_pem = secrets_at_rest.seal(self.private_pem, self.kid)
        super().save(*args, **kwargs)


class ExchangeEvent(models.Model):
    """One token-exchange attempt: who asked, for whom, and what came of it."""

    class Outcome(models.TextChoices):
        ISSUED = "issued", _("Issued")
        REJECTED = "rejected", _("Rejected")

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    cause = models.CharField(max_length=40, blank=True)
    # Indexed by (trusted_issuer, -created) below, which also serves lookups by issuer alone.
    trusted_issuer = models.ForeignKey(
        TrustedTokenIssuer, null=True, blank=True, on_delete=models.SET_NULL, related_name="events", db_index=False
    )
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=255, blank=True)
    subject_jti = models.CharField(max_length=255, blank=True)
    issued_jti = models.CharField(max_length=64, blank=True)
    # Delegation: the actor token's issuer, subject and jti, as for the subject token (empty without one).
    actor_trusted_issuer = models.ForeignKey(
        TrustedTokenIssuer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
    )
    actor_subject = models.CharField(max_length=255, blank=True)
    actor_jti = models.CharField(max_length=255, blank=True)
    actor_issuer = models.CharField(max_length=512, blank=True)  # snapshot, kept when the issuer is deleted
    # Snapshots kept when the application or issuer is later deleted; the request id ties the row to logs.
    # Not indexed: every index is one more page written per exchange, and nothing looks events up by these.
    client_id = models.CharField(max_length=100, blank=True)
    issuer = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["trusted_issuer", "-created"])]

    def __str__(self):
        return f"{self.outcome} {self.cause}".strip()


class SharedCacheEntry(models.Model):
    """A counter or marker every process sees: the replay record of consumed subject-token jtis (in
    every mode) and failed-authentication counters (without Redis, or while it is unreachable).

    See exchange/shared_cache.py (``DatabaseStore``, ``ReplayRecord``); expired rows are deleted by
    ``prune_audit`` and, every so many writes, by the process writing.
    """

    key = models.CharField(max_length=200, primary_key=True)
    value = models.BigIntegerField(default=0)
    expires = models.FloatField(db_index=True)  # Unix time

    def __str__(self):
        return self.key
