"""Shapes of the management API's requests and responses.

Serializers check shapes only (types, lengths, required fields). The rules —
uniqueness, key sources, certificates, algorithms, grant types, single-page
applications — live in ``exchange.flows`` and the models, which the views call;
their ``ValidationError`` becomes a 400 problem (see ``errors.py``).
"""

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import claim_mapping, service_accounts
from ..certificates import MAX_CERTIFICATE_INPUT
from ..conf import ASYMMETRIC_ALGORITHMS
from ..models import GRANT_SHORT_NAMES, Application, IssuerCertificate, LinkedIdentity, Scope, TrustedTokenIssuer
from ..subject_token import SUBJECT_TOKEN_TYPES

class _JSONType:
    """Accept only the JSON type the schema documents (DRF would turn 5 into "5", 0 into False)."""

    json_types = (str,)

    def to_internal_value(self, data):
        if not isinstance(data, self.json_types) or (isinstance(data, bool) and bool not in self.json_types):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(_JSONType, serializers.CharField):
    pass


class StrictURLField(_JSONType, serializers.URLField):
    pass


class StrictIntegerField(_JSONType, serializers.IntegerField):
    json_types = (int,)


class StrictBooleanField(_JSONType, serializers.BooleanField):
    json_types = (bool,)


class QueryBooleanField(serializers.BooleanField):
    """A boolean query parameter: exactly true or false."""

    TRUE_VALUES = {"true"}
    FALSE_VALUES = {"false"}
    NULL_VALUES = set()


class StrictModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.URLField: StrictURLField,
        models.BooleanField: StrictBooleanField,
        models.IntegerField: StrictIntegerField,
        models.PositiveIntegerField: StrictIntegerField,
    }


# Exact values matter (an issuer is compared byte for byte with a token's iss):
# the model refuses surrounding whitespace rather than the API silently trimming it.
_EXACT = {"trim_whitespace": False}


@extend_schema_field({
    "type": "array", "minItems": 1,
    "items": {"type": "string", "enum": list(ASYMMETRIC_ALGORITHMS)},
    "description": "JWS algorithms accepted from this issuer (never none or HS*).",
})
class AlgorithmsField(serializers.ListField):
    """A list of algorithm names; which ones are allowed is the model's rule (validate_algorithms)."""

    child = StrictCharField(max_length=20)


@extend_schema_field({
    "type": "array",
    "items": {"type": "string", "enum": list(GRANT_SHORT_NAMES) + list(Application.GrantType.values)},
    "description": "Grant types, as wire names or short names (token_exchange, refresh_token, "
                   "client_credentials, authorization_code).",
})
class GrantTypesField(serializers.ListField):
    child = StrictCharField(max_length=100)


class RedirectUrisField(serializers.ListField):
    """The Code grant's redirect URIs: a list here, stored space-separated (DOT's ``redirect_uris``)."""

    child = StrictCharField(max_length=2048, trim_whitespace=False)

    MAX_URIS = 20

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Where the Code grant may send users back; a request's redirect_uri must "
                                       "equal one of them exactly.")
        super().__init__(**kwargs)

    def to_representation(self, data):
        return data.split() if isinstance(data, str) else super().to_representation(data)

    def to_internal_value(self, data):
        uris = super().to_internal_value(data)
        if len(uris) > self.MAX_URIS:
            raise serializers.ValidationError(f"Give at most {self.MAX_URIS} redirect URIs.")
        if any(not uri or any(ch.isspace() for ch in uri) for uri in uris):
            raise serializers.ValidationError("Give each redirect URI without spaces.")
        return " ".join(uris)


@extend_schema_field({
    "type": "array", "maxItems": claim_mapping.MAX_MAPPINGS,
    "items": {
        "type": "object", "required": ["source", "target", "type"], "additionalProperties": False,
        "properties": {
            "source": {"type": "string", "maxLength": claim_mapping.MAX_NAME_LENGTH,
                       "description": "A top-level claim of the issuer's tokens, taken literally (no paths)."},
            "target": {"type": "string", "maxLength": claim_mapping.MAX_NAME_LENGTH,
                       "description": "The claim name in the issued token: printable ASCII, never a claim this "
                                      "server sets (" + ", ".join(sorted(claim_mapping.RESERVED_TARGETS)) + ")."},
            "type": {"type": "string", "enum": list(claim_mapping.TYPES)},
            "required": {"type": "boolean", "default": False,
                         "description": "Refuse the exchange (mapped_claim_missing / mapped_claim_invalid) when "
                                        "the claim is absent or not of the type; otherwise it is left out."},
        },
    },
    "description": "Claims of the issuer's tokens carried into the tokens issued for them. Empty: only sub.",
})
class ClaimMappingsField(serializers.JSONField):
    """The claim-mapping list; its rules are the model's (claim_mapping.validate_mappings)."""


class CertificateSerializer(serializers.ModelSerializer):
    class Meta:
        model = IssuerCertificate
        fields = ["fingerprint", "subject", "not_before", "not_after", "key_description", "pem"]
        read_only_fields = fields


class CertificateRequestSerializer(serializers.Serializer):
    certificate = StrictCharField(
        trim_whitespace=False, max_length=MAX_CERTIFICATE_INPUT,
        help_text="A PEM certificate or public key, or base64 DER.",
    )


_LINKS_HELP = (
    "client_ids of the linked applications. Linking restricts both sides: a linked issuer's tokens are "
    "exchanged only by its linked applications, and a linked application exchanges only its linked issuers' "
    "tokens. Issuers and applications without links work with each other."
)


class TrustedTokenIssuerSerializer(serializers.ModelSerializer):
    """A trusted token issuer as the API returns it."""

    key_source = serializers.ChoiceField(choices=["jwks", "pem"], read_only=True)
    certificates = CertificateSerializer(many=True, read_only=True)
    allowed_algorithms = AlgorithmsField(read_only=True)
    applications = serializers.SlugRelatedField(slug_field="client_id", many=True, read_only=True,
                                                help_text=_LINKS_HELP)
    claim_mappings = ClaimMappingsField(read_only=True)

    class Meta:
        model = TrustedTokenIssuer
        fields = [
            "id", "name", "issuer", "alias", "enabled", "key_source", "jwks_uri", "certificates",
            "allowed_algorithms", "clock_skew", "max_token_age", "reject_replayed_jti", "require_jti",
            "required_type", "condition", "preset", "applications", "claim_mappings", "link_lookup_primary",
            "link_lookup_secondary", "link_custom_claim", "keys_fetched_at", "key_fetch_error",
            "key_fetch_failed_at", "tokens_revoked_at", "created", "updated",
        ]
        read_only_fields = fields


_ISSUER_OPTIONS = ["allowed_algorithms", "clock_skew", "max_token_age", "reject_replayed_jti", "require_jti",
                   "required_type", "condition", "preset", "applications", "claim_mappings", "link_lookup_primary",
                   "link_lookup_secondary", "link_custom_claim"]

_CONDITION_HELP = (
    "Admission condition: a CEL expression over the subject token's verified claims (the variable "
    "claims), e.g. claims.repository_owner_id == \"123456\". A token is exchanged only when it yields "
    "true; false or an evaluation error refuses it (cause condition_not_met). Required for shared "
    "issuers (a preset, or the issuer value of GitHub Actions, GitLab.com or Terraform Cloud)."
)
_PRESET_HELP = "The shared platform this issuer is set up for (docs/workload-identity.md); shared issuers require a condition."


def _links_field():
    return serializers.SlugRelatedField(
        slug_field="client_id", many=True, required=False, queryset=Application.objects.all(), help_text=_LINKS_HELP,
    )


class TrustedTokenIssuerCreateSerializer(StrictModelSerializer):
    """Register an issuer: exactly one of ``jwks_uri`` and ``certificates``."""

    certificates = serializers.ListField(
        child=StrictCharField(trim_whitespace=False, max_length=MAX_CERTIFICATE_INPUT), required=False, max_length=20,
        help_text="PEM certificates or public keys (one per entry); base64 DER is accepted too.",
    )
    allowed_algorithms = AlgorithmsField(required=False)
    applications = _links_field()
    claim_mappings = ClaimMappingsField(required=False)
    discover = StrictBooleanField(
        required=False, default=False,
        help_text="Fill jwks_uri and allowed_algorithms from <issuer>/.well-known/openid-configuration "
                  "(its issuer must equal the issuer value exactly). Not with jwks_uri or certificates.",
    )

    class Meta:
        model = TrustedTokenIssuer
        fields = ["name", "issuer", "alias", "enabled", "jwks_uri", "certificates", *_ISSUER_OPTIONS, "discover"]
        extra_kwargs = {
            "condition": {**_EXACT, "help_text": _CONDITION_HELP},
            "preset": {"help_text": _PRESET_HELP},
            # Uniqueness is checked by the flow (with the model's own message), not twice.
            "name": {**_EXACT, "validators": []},
            "issuer": {**_EXACT, "validators": []},
            "alias": _EXACT,
            "jwks_uri": {**_EXACT, "validators": []},
        }


class TrustedTokenIssuerUpdateSerializer(StrictModelSerializer):
    """Change an issuer's settings. The key source stays what it is (JWKS or certificates)."""

    allowed_algorithms = AlgorithmsField(required=False)
    applications = _links_field()
    claim_mappings = ClaimMappingsField(required=False)
    revoke_tokens = StrictBooleanField(
        required=False, write_only=True,
        help_text="With enabled false: also revoke the live tokens issued from this issuer's tokens, in the same step.",
    )

    class Meta:
        model = TrustedTokenIssuer
        fields = ["name", "issuer", "alias", "enabled", "jwks_uri", "revoke_tokens", *_ISSUER_OPTIONS]
        extra_kwargs = {
            "condition": {**_EXACT, "help_text": _CONDITION_HELP},
            "preset": {"help_text": _PRESET_HELP},
            "name": {**_EXACT, "validators": []},
            "issuer": {**_EXACT, "validators": []},
            "alias": _EXACT,
            "jwks_uri": {**_EXACT, "validators": []},
        }


class KeySerializer(serializers.Serializer):
    kid = serializers.CharField(allow_null=True, help_text="The JWKS key ID (null for certificates).")
    algorithms = serializers.ListField(child=serializers.CharField(), help_text="Algorithms this key can verify.")
    usable_algorithms = serializers.ListField(
        child=serializers.CharField(), help_text="Those of them the issuer allows: what a token may use with this key.",
    )
    description = serializers.CharField(help_text='Key type and size, e.g. "RSA 2048", "EC P-256".')
    source = serializers.ChoiceField(choices=["jwks", "pem"])
    not_before = serializers.DateTimeField(allow_null=True, help_text="Certificate validity start (PEM only).")
    not_after = serializers.DateTimeField(allow_null=True, help_text="Certificate expiry (PEM only).")
    current = serializers.BooleanField(help_text="False for a certificate outside its validity period.")


class IssuerKeysSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key_source = serializers.ChoiceField(choices=["jwks", "pem"])
    jwks_uri = serializers.CharField(allow_blank=True)
    keys_fetched_at = serializers.DateTimeField(allow_null=True, help_text="When the JWKS was last fetched.")
    key_fetch_error = serializers.CharField(allow_blank=True, help_text="The last JWKS fetch problem, if any.")
    key_fetch_failed_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(
        allow_null=True, help_text="Why no keys could be read just now (JWKS endpoint unreachable, ...).",
    )
    keys = KeySerializer(many=True)


_SERVICE_ACCOUNT_HELP = (
    "With the console:manage scope: the permissions (app_label.codename) of the application's service account, "
    "which its bearer tokens act as. Giving the scope or permissions needs exchange.grant_management_scope and "
    "every permission given."
)


_ACTOR_ISSUERS_HELP = (
    "Issuer values (iss) of the trusted token issuers whose tokens this application may present as actor "
    "tokens (RFC 8693 delegation), with allow_delegation. Empty: no actor token is accepted."
)
_ALLOW_DELEGATION_HELP = (
    "Accept an actor_token beside the subject token: the issued token names the actor in its act claim "
    "(RFC 8693 §4.1). Default false: requests with an actor_token are refused (delegation_not_allowed)."
)


def _actor_issuers_field(**kwargs):
    return serializers.SlugRelatedField(slug_field="issuer", many=True, help_text=_ACTOR_ISSUERS_HELP, **kwargs)


class ApplicationSerializer(serializers.ModelSerializer):
    """An application (OAuth client) as the API returns it. The client secret is never returned here."""

    allowed_grant_types = GrantTypesField(read_only=True)
    allowed_audiences = serializers.ListField(child=serializers.CharField(), read_only=True)
    service_account_permissions = serializers.SerializerMethodField(help_text=_SERVICE_ACCOUNT_HELP)
    allow_delegation = serializers.BooleanField(read_only=True, help_text=_ALLOW_DELEGATION_HELP)
    actor_issuers = _actor_issuers_field(read_only=True)
    redirect_uris = RedirectUrisField(read_only=True)

    class Meta:
        model = Application
        fields = [
            "id", "name", "client_id", "application_type", "client_type", "allowed_grant_types",
            "allowed_scopes", "allowed_audiences", "access_token_lifetime", "enabled", "resource_server",
            "service_account_permissions", "bound_to_subject_token", "redirect_uris", "skip_authorization",
            "allow_delegation", "actor_issuers", "linked_accounts",
            "created", "updated",
        ]
        read_only_fields = fields

    def get_service_account_permissions(self, application) -> list[str]:
        if not service_accounts.has_management_scope(application):
            return []
        return service_accounts.permission_names(application.service_user)


class ApplicationWithSecretSerializer(ApplicationSerializer):
    client_secret = serializers.CharField(
        read_only=True, allow_null=True, help_text="Shown once: store it now. null for public clients: they have none.",
    )

    class Meta(ApplicationSerializer.Meta):
        fields = ApplicationSerializer.Meta.fields + ["client_secret"]
        read_only_fields = fields


def _audiences_field():
    return serializers.ListField(
        child=StrictCharField(max_length=2048, trim_whitespace=False), required=False, max_length=50,
        help_text="Values a token request may name in audience or resource (exact strings, distinct).",
    )


def _service_account_field():
    return serializers.ListField(
        child=StrictCharField(max_length=200), required=False, max_length=100, help_text=_SERVICE_ACCOUNT_HELP,
    )


class ApplicationCreateSerializer(StrictModelSerializer):
    allowed_grant_types = GrantTypesField(required=False)
    allowed_audiences = _audiences_field()
    service_account_permissions = _service_account_field()
    actor_issuers = _actor_issuers_field(required=False, queryset=TrustedTokenIssuer.objects.all())
    redirect_uris = RedirectUrisField(required=False)

    class Meta:
        model = Application
        fields = ["name", "application_type", "allowed_grant_types", "allowed_scopes", "allowed_audiences",
                  "access_token_lifetime", "resource_server", "service_account_permissions",
                  "bound_to_subject_token", "redirect_uris", "skip_authorization",
                  "allow_delegation", "actor_issuers", "linked_accounts"]
        extra_kwargs = {"name": {"required": True}, "allow_delegation": {"help_text": _ALLOW_DELEGATION_HELP}}


class ApplicationUpdateSerializer(StrictModelSerializer):
    allowed_grant_types = GrantTypesField(required=False)
    allowed_audiences = _audiences_field()
    service_account_permissions = _service_account_field()
    actor_issuers = _actor_issuers_field(required=False, queryset=TrustedTokenIssuer.objects.all())
    redirect_uris = RedirectUrisField(required=False)

    class Meta:
        model = Application
        fields = ["name", "allowed_grant_types", "allowed_scopes", "allowed_audiences", "access_token_lifetime",
                  "enabled", "resource_server", "service_account_permissions",
                  "bound_to_subject_token", "redirect_uris", "skip_authorization",
                  "allow_delegation", "actor_issuers", "linked_accounts"]
        extra_kwargs = {"allow_delegation": {"help_text": _ALLOW_DELEGATION_HELP}}


class ProtocolSerializer(StrictModelSerializer):
    """The application's Protocol tab: allowed grant types and access-token lifetime."""

    allowed_grant_types = GrantTypesField()
    effective_access_token_lifetime = serializers.IntegerField(
        source="token_lifetime", read_only=True, help_text="The lifetime issued tokens get, in seconds.",
    )

    class Meta:
        model = Application
        fields = ["application_type", "client_type", "allowed_grant_types", "access_token_lifetime",
                  "effective_access_token_lifetime", "bound_to_subject_token"]
        read_only_fields = ["application_type", "client_type"]
        extra_kwargs = {
            "access_token_lifetime": {"help_text": "Seconds; null (or absent) for the server default."},
            "bound_to_subject_token": {"required": False, "help_text": (
                "Exchanged tokens (and their refresh tokens) expire no later than the subject token; "
                "absent: unchanged.")},
        }


class RevokeTokensRequestSerializer(serializers.Serializer):
    """Which tokens issued from an issuer's tokens to revoke: all, or one external subject's."""

    subject = StrictCharField(required=False, max_length=255, trim_whitespace=False,
                              help_text="The external subject (the sub of the issuer's tokens); absent: every subject.")
    dry_run = StrictBooleanField(required=False, default=False, help_text="Count, revoke nothing.")


class RevocationSerializer(serializers.Serializer):
    """What a revocation by provenance did (or would do, for a dry run)."""

    issuer = serializers.CharField(help_text="The issuer value (iss) of the trusted token issuer.")
    subject = serializers.CharField(allow_null=True, help_text="The external subject, or null for every subject.")
    access_tokens = serializers.IntegerField(help_text="Live access tokens revoked (deleted).")
    refresh_tokens = serializers.IntegerField(help_text="Refresh tokens revoked (marked revoked).")
    dry_run = serializers.BooleanField()


class SecretSerializer(serializers.Serializer):
    client_id = serializers.CharField()
    client_secret = serializers.CharField(help_text="Shown once: store it now. The previous secret stops working.")


class TokenValidationRequestSerializer(serializers.Serializer):
    subject_token = StrictCharField(
        trim_whitespace=False, allow_blank=True, max_length=1_000_000,
        help_text="The JWT to check, exactly as it would be sent to the token endpoint.",
    )
    subject_token_type = serializers.ChoiceField(
        choices=SUBJECT_TOKEN_TYPES, required=False,
        help_text="The subject_token_type a client would send; the token is checked against it "
                  "(an ID token sent as an access token is refused). Omitted: none declared.",
    )
    role = serializers.ChoiceField(
        choices=["subject", "actor"], required=False, default="subject",
        help_text="How the token is presented: as the subject token, or as an actor token (RFC 8693 "
                  "delegation; the same checks, with sentences naming the actor token).",
    )


class StepSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    ok = serializers.BooleanField(allow_null=True, help_text="null: not checked, because an earlier step failed.")
    detail = serializers.CharField(allow_blank=True)


class TokenValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    cause = serializers.CharField(allow_null=True, help_text="The stable rejection cause, e.g. expired.")
    description = serializers.CharField(
        allow_null=True, help_text="The sentence the token endpoint would answer for this cause.",
    )
    issuer = serializers.CharField(allow_null=True, help_text="The trusted token issuer's name, when found.")
    steps = StepSerializer(many=True)
    header = serializers.DictField(allow_null=True, help_text="The token's header, when it could be decoded.")
    claims = serializers.DictField(
        allow_null=True, help_text="The token's claims: verified when valid, unverified otherwise.",
    )
    mapped_claims = serializers.DictField(
        help_text="The claims the issuer's claim mapping would carry into the issued token (empty: only sub).",
    )


class ScopeSerializer(serializers.ModelSerializer):
    """A registered scope as the API returns it."""

    class Meta:
        model = Scope
        fields = ["id", "name", "description", "protected", "created", "updated"]
        read_only_fields = fields


class ScopeCreateSerializer(StrictModelSerializer):
    """Register a scope: its name as clients request it (RFC 6749 §3.3 syntax) and a description."""

    class Meta:
        model = Scope
        fields = ["name", "description"]
        # Syntax and uniqueness are the model's rules, checked by the flow (one message for all surfaces).
        extra_kwargs = {"name": {**_EXACT, "validators": []}, "description": {**_EXACT, "required": False}}


class ScopeUpdateSerializer(StrictModelSerializer):
    """Change a scope's description (its name never changes)."""

    class Meta:
        model = Scope
        fields = ["description"]
        extra_kwargs = {"description": {**_EXACT, "required": True}}

    def validate(self, attrs):
        if isinstance(self.initial_data, dict) and "name" in self.initial_data:
            raise serializers.ValidationError({"name": "A scope's name never changes: register a new scope."})
        return attrs


# -- local users, linked identities, roles (exchange/accounts.py) -----------------------------------------

class LinkedIdentitySerializer(serializers.ModelSerializer):
    """An external identity (trusted issuer, external sub) linked to a local user."""

    issuer = serializers.CharField(source="trusted_issuer.issuer", read_only=True)
    username = serializers.CharField(source="user.get_username", read_only=True)

    class Meta:
        model = LinkedIdentity
        fields = ["id", "trusted_issuer", "issuer", "subject", "user", "username", "origin", "matched_on", "created"]
        read_only_fields = fields


class LinkedIdentityCreateSerializer(serializers.Serializer):
    trusted_issuer = StrictIntegerField(min_value=1, max_value=2**63 - 1, help_text="The trusted issuer's id.")
    subject = StrictCharField(max_length=255, trim_whitespace=False,
                              help_text="The external subject: the sub of the issuer's tokens, exactly.")
    user = StrictIntegerField(min_value=1, max_value=2**63 - 1, help_text="The local user's id.")


class LocalUserSerializer(serializers.Serializer):
    """A local user (a Django user) as the API returns it."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.CharField(read_only=True)
    is_active = serializers.BooleanField(read_only=True, help_text="false: disabled.")
    is_staff = serializers.BooleanField(read_only=True, help_text="Console administrators are never linked.")
    local_subject = serializers.CharField(read_only=True, help_text="The sub of tokens issued for this user; it never changes.")
    lookup_attribute = serializers.CharField(read_only=True, allow_null=True,
                                             help_text="The custom lookup attribute of implicit account linking.")
    role_scopes = serializers.ListField(child=serializers.CharField(), read_only=True,
                                        help_text="The scopes the user's roles (groups) hold.")
    linked_identities = LinkedIdentitySerializer(many=True, read_only=True)


class LocalUserUpdateSerializer(serializers.Serializer):
    is_active = StrictBooleanField(required=False, help_text="false disables the user and revokes their tokens.")
    lookup_attribute = StrictCharField(required=False, allow_null=True, max_length=255, trim_whitespace=False,
                                       help_text="Unique among local users; null to remove it.")


class RoleSerializer(serializers.Serializer):
    """A role: a Django group and the scopes it holds."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    scopes = StrictCharField(allow_blank=True, max_length=500, trim_whitespace=False,
                             help_text="Space-separated scopes of the scope registry (never console:manage).")
