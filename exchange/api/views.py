"""The management API: thin views over ``exchange.flows`` (every change), ``key_sources`` and ``subject_token`` (reads).

Authentication and permissions: ``permissions.py``. Errors: ``errors.py``.
"""

import json
import re
import time

from django.contrib.admin.models import ADDITION, CHANGE, DELETION
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import accounts, flows, key_sources
from ..models import Application, LinkedIdentity, RoleScopes, Scope, TrustedTokenIssuer
from ..subject_token import explain_subject_token
from . import serializers as s
from .errors import PROBLEM_JSON, Conflict, ProblemSerializer
from .permissions import ManagementPermission, acting_user

_MAX_ID = 2**63 - 1


def _problems(*codes):
    """OpenAPI responses for the problem-details errors an operation can answer."""
    descriptions = {
        400: "Invalid request: see `errors` for the messages per field.",
        401: "No valid session or bearer token.",
        403: "Authenticated, but without the scope or model permission this operation needs.",
        404: "No such resource.",
        409: "The request conflicts with the resource's current state.",
    }
    return {(code, PROBLEM_JSON): OpenApiResponse(ProblemSerializer, description=descriptions[code]) for code in codes}


_AUTH_ERRORS = (401, 403)


class Pagination(LimitOffsetPagination):
    """limit (1–500, default 50) and offset; anything else is a 400, not silently the default."""

    default_limit = 50
    max_limit = 500
    max_offset = 10**12

    def _integer(self, request, name, default, minimum, maximum):
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not re.fullmatch(r"[0-9]{1,13}", raw) or not minimum <= int(raw) <= maximum:
            raise ValidationError({name: [f"Enter a whole number from {minimum} to {maximum}."]})
        return int(raw)

    def get_limit(self, request):
        return self._integer(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request):
        return self._integer(request, self.offset_query_param, 0, 0, self.max_offset)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, self.max_offset)}
        for parameter in parameters:
            minimum, maximum = bounds[parameter["name"]]
            parameter["schema"].update(minimum=minimum, maximum=maximum)
        return parameters


class ManagementMixin:
    permission_classes = [ManagementPermission]
    pagination_class = Pagination

    def get_object(self):
        # The URL accepts any path segment; only an id the database can hold is looked up
        # (a huge number would overflow the column type rather than simply match nothing).
        raw = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        if not re.fullmatch(r"[0-9]{1,19}", raw) or not 0 < int(raw) <= _MAX_ID:
            raise NotFound()
        self.kwargs[self.lookup_url_kwarg or self.lookup_field] = int(raw)
        return super().get_object()


class IssuerFilterSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=120,
                                 help_text="Names containing this (case-insensitive).")
    issuer = serializers.CharField(required=False, allow_blank=True, max_length=512, trim_whitespace=False,
                                   help_text="The exact issuer value.")
    enabled = s.QueryBooleanField(required=False, allow_null=True, default=None)


class ApplicationFilterSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=255,
                                 help_text="Names containing this (case-insensitive).")
    client_id = serializers.CharField(required=False, allow_blank=True, max_length=100, trim_whitespace=False)
    application_type = serializers.ChoiceField(required=False, choices=Application.Type.choices)


def _valid(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _filtered(queryset, filter_serializer_class, request, lookups):
    # A plain dict: DRF would read an empty value in a QueryDict as "absent" (?enabled= means nothing).
    query = filter_serializer_class(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    for field, lookup in lookups.items():
        value = query.validated_data.get(field)
        if value is not None:
            queryset = queryset.filter(**{lookup: value})
    return queryset


@extend_schema_view(
    list=extend_schema(
        summary="List trusted token issuers", parameters=[IssuerFilterSerializer],
        responses={200: s.TrustedTokenIssuerSerializer(many=True), **_problems(400, *_AUTH_ERRORS)},
    ),
    create=extend_schema(
        summary="Register a trusted token issuer",
        description="Give exactly one key source: `jwks_uri`, or `certificates` (PEM text, or base64 DER). "
                    "Validation options default to the server's defaults, as in the console.",
        request=s.TrustedTokenIssuerCreateSerializer,
        responses={201: s.TrustedTokenIssuerSerializer, **_problems(400, *_AUTH_ERRORS, 409)},
        examples=[
            OpenApiExample("JWKS endpoint", request_only=True, value={
                "name": "Partner IdP", "issuer": "https://idp.partner.example",
                "jwks_uri": "https://idp.partner.example/.well-known/jwks.json", "alias": "identity-console",
            }),
            OpenApiExample("PEM certificate", request_only=True, value={
                "name": "Partner IdP", "issuer": "https://idp.partner.example",
                "certificates": ["-----BEGIN CERTIFICATE-----\nMIIC...\n-----END CERTIFICATE-----\n"],
                "allowed_algorithms": ["RS256"], "clock_skew": 30, "max_token_age": 600,
            }),
        ],
    ),
    retrieve=extend_schema(
        summary="Get a trusted token issuer",
        responses={200: s.TrustedTokenIssuerSerializer, **_problems(*_AUTH_ERRORS, 404)},
    ),
    partial_update=extend_schema(
        summary="Change a trusted token issuer",
        description="Any subset of the fields. The key source stays what it is: a JWKS issuer keeps a "
                    "JWKS endpoint, a certificate issuer cannot be given one.",
        request=s.TrustedTokenIssuerUpdateSerializer,
        responses={200: s.TrustedTokenIssuerSerializer, **_problems(400, *_AUTH_ERRORS, 404, 409)},
    ),
    destroy=extend_schema(
        summary="Delete a trusted token issuer",
        description="Tokens issued by exchanging its tokens are deleted with it (they stop working).",
        responses={204: None, **_problems(*_AUTH_ERRORS, 404)},
    ),
)
class TrustedTokenIssuerViewSet(
    ManagementMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = TrustedTokenIssuer.objects.prefetch_related("certificates")
    serializer_class = s.TrustedTokenIssuerSerializer
    permission_model = TrustedTokenIssuer
    permission_actions = {"keys": "view", "refresh_keys": "change", "add_certificate": "change",
                          "remove_certificate": "change", "revoke_tokens": "change"}

    def get_queryset(self):
        queryset = super().get_queryset().order_by("name", "pk")
        if self.action == "list":
            queryset = _filtered(queryset, IssuerFilterSerializer, self.request,
                                 {"name": "name__icontains", "issuer": "issuer", "enabled": "enabled"})
        return queryset

    def create(self, request):
        data = _valid(s.TrustedTokenIssuerCreateSerializer, request.data)
        if data.pop("discover", False):
            if data.get("jwks_uri") or data.get("certificates"):
                raise ValidationError({"discover": "Give discover or a key source (jwks_uri, certificates), not both."})
            found = flows.discovered_issuer_settings(data["issuer"], data.get("preset", ""))
            data["jwks_uri"] = found["jwks_uri"]
            data.setdefault("allowed_algorithms", found["allowed_algorithms"])
        with transaction.atomic():
            issuer = flows.create_trusted_token_issuer(**data)
            _record(request, issuer, ADDITION, [{"added": {}}])
        body = s.TrustedTokenIssuerSerializer(issuer).data
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{issuer.pk}")
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    def partial_update(self, request, pk=None):
        issuer = self.get_object()
        data = _valid(s.TrustedTokenIssuerUpdateSerializer, request.data, partial=True)
        revoke = data.pop("revoke_tokens", False)
        with transaction.atomic():
            issuer = flows.update_trusted_token_issuer(issuer, revoke=revoke, user=_user(request), **data)
            _record_change(request, issuer, data)
        return Response(s.TrustedTokenIssuerSerializer(issuer).data)

    @extend_schema(
        summary="Revoke the tokens issued from the issuer's tokens",
        description="Every live access and refresh token this server issued by exchanging a token of this "
                    "issuer, or only those of one external subject (`subject`, the `sub` of the issuer's "
                    "tokens). Introspection then answers `active: false` for them; resource servers that "
                    "validate the JWTs locally accept them until they expire. With `dry_run`, only counts.",
        request=s.RevokeTokensRequestSerializer,
        responses={200: s.RevocationSerializer, **_problems(400, *_AUTH_ERRORS, 404)},
        examples=[OpenApiExample("Offboard one user", request_only=True, value={"subject": "user-42"})],
    )
    @action(detail=True, methods=["post"], url_path="revoke-tokens")
    def revoke_tokens(self, request, pk=None):
        issuer = self.get_object()
        data = _valid(s.RevokeTokensRequestSerializer, request.data)
        result = flows.revoke_tokens(issuer, data.get("subject"), dry_run=data["dry_run"], user=_user(request))
        return Response(result.as_dict())

    @extend_schema(
        summary="The keys this console trusts for the issuer",
        description="From its JWKS endpoint (fetched if not cached, as a token validation would) or its "
                    "certificates. A JWKS that cannot be read is reported in `error` with no keys.",
        responses={200: s.IssuerKeysSerializer, **_problems(*_AUTH_ERRORS, 404)},
    )
    @action(detail=True, methods=["get"])
    def keys(self, request, pk=None):
        issuer = self.get_object()
        try:
            if issuer.jwks_uri:
                keys, error = key_sources.jwks_keys(issuer), None
            else:
                keys, error = key_sources.pem_keys(issuer), None
        except key_sources.KeySourceError as exc:
            keys, error = [], exc.detail
        return Response(_keys_body(issuer, keys, error))

    @extend_schema(
        summary="Fetch the issuer's JWKS now",
        description="Refetches the JWKS endpoint and replaces the cached keys. 409 when the endpoint "
                    "cannot be read (the cached keys are kept) or the issuer uses certificates.",
        request=None,
        responses={200: s.IssuerKeysSerializer, **_problems(*_AUTH_ERRORS, 404, 409)},
    )
    @action(detail=True, methods=["post"], url_path="keys/refresh")
    def refresh_keys(self, request, pk=None):
        issuer = self.get_object()
        if not issuer.jwks_uri:
            raise Conflict("This issuer uses certificates: there is no JWKS to refresh.")
        try:
            keys = flows.refresh_issuer_keys(issuer)
        except key_sources.KeySourceError as exc:
            raise Conflict(exc.detail) from None
        return Response(_keys_body(issuer, keys, None))

    @extend_schema(
        summary="Add a certificate to the issuer",
        description="For the issuer's next key, before it switches (PEM text, or base64 DER). Only for "
                    "issuers that use certificates; a certificate already registered is refused.",
        request=s.CertificateRequestSerializer,
        responses={201: s.CertificateSerializer, **_problems(400, *_AUTH_ERRORS, 404)},
    )
    @action(detail=True, methods=["post"], url_path="certificates")
    def add_certificate(self, request, pk=None):
        issuer = self.get_object()
        data = _valid(s.CertificateRequestSerializer, request.data)
        with transaction.atomic():
            cert = flows.add_certificate(issuer, data["certificate"])
            _record(request, issuer, CHANGE, f"Added certificate {cert.fingerprint}")
        return Response(s.CertificateSerializer(cert).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Remove a certificate from the issuer",
        description="By its SHA-256 fingerprint. The issuer's last certificate cannot be removed (400).",
        request=None,
        responses={204: None, **_problems(400, *_AUTH_ERRORS, 404)},
    )
    @action(detail=True, methods=["delete"], url_path=r"certificates/(?P<fingerprint>[0-9A-F:]{95})")
    def remove_certificate(self, request, pk=None, fingerprint=None):
        issuer = self.get_object()
        cert = issuer.certificates.filter(fingerprint=fingerprint).first()
        if cert is None:
            raise NotFound("The issuer has no certificate with this fingerprint.")
        with transaction.atomic():
            _record(request, issuer, CHANGE, f"Removed certificate {cert.fingerprint}")
            flows.remove_certificate(cert)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def perform_destroy(self, instance):
        with transaction.atomic():
            _record(self.request, instance, DELETION, "Deleted")
            flows.delete_trusted_token_issuer(instance)


def _record(request, obj, action, message):
    """The History entry of a management request's change, by whoever performs it (acting_user)."""
    flows.history(acting_user(request), obj, action, message)


def _record_change(request, obj, data):
    """A change's History entry naming the fields the request set (as the console's change form does)."""
    if data:
        _record(request, obj, CHANGE, [{"changed": {"fields": sorted(data)}}])


def _user(request):
    """The user a management request acts for (its LogEntry's author), or None for a client's own token."""
    user = getattr(request, "user", None)
    return user if getattr(user, "is_authenticated", False) else None


def _keys_body(issuer, keys, error):
    now = time.time()
    allowed = set(issuer.allowed_algorithms)
    return s.IssuerKeysSerializer({
        "id": issuer.pk,
        "key_source": issuer.key_source,
        "jwks_uri": issuer.jwks_uri,
        "keys_fetched_at": issuer.keys_fetched_at,
        "key_fetch_error": issuer.key_fetch_error,
        "key_fetch_failed_at": issuer.key_fetch_failed_at,
        "error": error,
        "keys": [
            {
                "kid": key.kid,
                "algorithms": sorted(key.algorithms),
                "usable_algorithms": sorted(key.algorithms & allowed),
                "description": key.description,
                "source": key.source,
                "not_before": key.not_before,
                "not_after": key.not_after,
                "current": key.valid_at(now),
            }
            for key in keys
        ],
    }).data


@extend_schema_view(
    list=extend_schema(
        summary="List applications", parameters=[ApplicationFilterSerializer],
        responses={200: s.ApplicationSerializer(many=True), **_problems(400, *_AUTH_ERRORS)},
    ),
    create=extend_schema(
        summary="Create an application",
        description="The response carries `client_secret` once; it cannot be read again (regenerate it instead). "
                    "Public clients (single-page applications) get none (`null`). Giving the `console:manage` "
                    "scope is a grant: it needs `exchange.grant_management_scope` and every permission named in "
                    "`service_account_permissions` (403 otherwise).",
        request=s.ApplicationCreateSerializer,
        responses={201: s.ApplicationWithSecretSerializer, **_problems(400, *_AUTH_ERRORS)},
        examples=[
            OpenApiExample("Token exchange", request_only=True, value={
                "name": "Orders service", "application_type": "traditional",
                "allowed_grant_types": ["token_exchange", "refresh_token"],
            }),
            OpenApiExample("CI job", request_only=True, value={
                "name": "CI", "allowed_grant_types": ["client_credentials"], "allowed_scopes": "console:manage",
                "service_account_permissions": ["exchange.view_trustedtokenissuer", "exchange.view_application"],
            }),
        ],
    ),
    retrieve=extend_schema(
        summary="Get an application",
        responses={200: s.ApplicationSerializer, **_problems(*_AUTH_ERRORS, 404)},
    ),
    partial_update=extend_schema(
        summary="Change an application",
        request=s.ApplicationUpdateSerializer,
        responses={200: s.ApplicationSerializer, **_problems(400, *_AUTH_ERRORS, 404)},
    ),
    destroy=extend_schema(
        summary="Delete an application",
        description="Its tokens are deleted with it. An application cannot delete itself (409): use "
                    "other credentials than its own token.",
        responses={204: None, **_problems(*_AUTH_ERRORS, 404, 409)},
    ),
)
class ApplicationViewSet(
    ManagementMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Application.objects.all()
    serializer_class = s.ApplicationSerializer
    permission_model = Application
    permission_actions = {"regenerate_secret": "change"}

    def get_queryset(self):
        queryset = super().get_queryset().order_by("pk")
        if self.action == "list":
            queryset = _filtered(queryset, ApplicationFilterSerializer, self.request,
                                 {"name": "name__icontains", "client_id": "client_id",
                                  "application_type": "application_type"})
        return queryset

    def create(self, request):
        data = _valid(s.ApplicationCreateSerializer, request.data)
        with transaction.atomic():
            application, secret = flows.create_application(
                name=data.pop("name"),
                application_type=data.pop("application_type", Application.Type.STANDARD),
                grant_types=data.pop("allowed_grant_types", ()),
                scopes=data.pop("allowed_scopes", ""),
                actor=acting_user(request),
                **data,
            )
            _record(request, application, ADDITION, [{"added": {}}])
        body = s.ApplicationSerializer(application).data
        body["client_secret"] = secret
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{application.pk}")
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    def perform_destroy(self, instance):
        token = self.request.auth
        if getattr(token, "application_id", None) == instance.pk:
            raise Conflict("This is the application whose token authenticates this request; "
                           "delete it with other credentials.")
        flows.delete_application(instance, actor=acting_user(self.request))

    def partial_update(self, request, pk=None):
        application = self.get_object()
        data = _valid(s.ApplicationUpdateSerializer, request.data, partial=True)
        with transaction.atomic():
            application = flows.update_application(application, actor=acting_user(request), **data)
            _record_change(request, application, data)
        return Response(s.ApplicationSerializer(application).data)

    @extend_schema(
        methods=["GET"], summary="Get the application's allowed grant types and token lifetime",
        responses={200: s.ProtocolSerializer, **_problems(*_AUTH_ERRORS, 404)},
    )
    @extend_schema(
        methods=["PUT"], summary="Replace the application's allowed grant types and token lifetime",
        description="Token exchange is refused (400) for single-page applications: they are public clients. "
                    "An absent or null `access_token_lifetime` means the server default.",
        request=s.ProtocolSerializer,
        responses={200: s.ProtocolSerializer, **_problems(400, *_AUTH_ERRORS, 404)},
        examples=[OpenApiExample("Enable token exchange", request_only=True, value={
            "allowed_grant_types": ["token_exchange", "refresh_token"], "access_token_lifetime": 900,
        })],
    )
    @action(detail=True, methods=["get", "put"])
    def protocol(self, request, pk=None):
        application = self.get_object()
        if request.method == "PUT":
            serializer = s.ProtocolSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            bound = {key: value for key, value in serializer.validated_data.items() if key == "bound_to_subject_token"}
            with transaction.atomic():
                application = flows.update_application(
                    application, actor=acting_user(request),
                    allowed_grant_types=serializer.validated_data["allowed_grant_types"],
                    access_token_lifetime=serializer.validated_data.get("access_token_lifetime"),
                    **bound,
                )
                _record_change(request, application, ["allowed_grant_types", "access_token_lifetime", *bound])
        return Response(s.ProtocolSerializer(application).data)

    @extend_schema(
        summary="Give the application a new client secret",
        description="Returns the new secret once; the previous one and every token of the application stop "
                    "working at once. Public clients have no secret (400). For an application with the "
                    "`console:manage` scope, whoever gets the secret gets its authority: this needs "
                    "`exchange.grant_management_scope` and its service account's permissions (403 otherwise).",
        request=None,
        responses={200: s.SecretSerializer, **_problems(400, *_AUTH_ERRORS, 404)},
    )
    @action(detail=True, methods=["post"], url_path="regenerate-secret")
    def regenerate_secret(self, request, pk=None):
        application = self.get_object()
        secret = flows.regenerate_secret(application, actor=acting_user(request))
        return Response({"client_id": application.client_id, "client_secret": secret})


class UserFilterSerializer(serializers.Serializer):
    search = serializers.CharField(required=False, allow_blank=True, max_length=255,
                                   help_text="Usernames, emails or linked external subjects containing this.")
    is_active = s.QueryBooleanField(required=False, allow_null=True, default=None)


def _user_body(user):
    return {
        "id": user.pk, "username": user.get_username(), "email": getattr(user, "email", ""),
        "is_active": user.is_active, "is_staff": user.is_staff, "local_subject": accounts.local_subject(user),
        "lookup_attribute": user.local_account.lookup_attribute, "role_scopes": sorted(accounts.scopes_for_user(user)),
        "linked_identities": s.LinkedIdentitySerializer(
            user.linked_identities.select_related("trusted_issuer", "user"), many=True).data,
    }


@extend_schema_view(
    list=extend_schema(
        summary="List local users", parameters=[UserFilterSerializer],
        responses={200: s.LocalUserSerializer(many=True), **_problems(400, *_AUTH_ERRORS)},
    ),
    retrieve=extend_schema(
        summary="Get a local user", responses={200: s.LocalUserSerializer, **_problems(*_AUTH_ERRORS, 404)},
    ),
    partial_update=extend_schema(
        summary="Disable or enable a local user, or set their custom lookup attribute",
        description="`is_active: false` disables the user and revokes their live tokens; exchanges for their linked "
                    "identities are then refused. Staff, superusers and service accounts are not managed here (400).",
        request=s.LocalUserUpdateSerializer,
        responses={200: s.LocalUserSerializer, **_problems(400, *_AUTH_ERRORS, 404)},
        examples=[OpenApiExample("Disable", request_only=True, value={"is_active": False})],
    ),
)
class LocalUserViewSet(ManagementMixin, viewsets.GenericViewSet):
    """Local users: Django's users, with their local subject, roles' scopes and linked identities."""

    permission_model = get_user_model()
    serializer_class = s.LocalUserSerializer

    def get_queryset(self):
        queryset = get_user_model().objects.select_related("local_account").order_by("pk")
        if self.action == "list":
            query = UserFilterSerializer(data=self.request.query_params.dict())
            query.is_valid(raise_exception=True)
            search = query.validated_data.get("search")
            if search:
                queryset = queryset.filter(Q(username__icontains=search) | Q(email__icontains=search)
                                           | Q(linked_identities__subject__icontains=search)).distinct()
            if query.validated_data.get("is_active") is not None:
                queryset = queryset.filter(is_active=query.validated_data["is_active"])
        return queryset

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([_user_body(user) for user in page])

    def retrieve(self, request, pk=None):
        return Response(_user_body(self.get_object()))

    def partial_update(self, request, pk=None):
        user = self.get_object()
        data = _valid(s.LocalUserUpdateSerializer, request.data, partial=True)
        if "lookup_attribute" in data:
            flows.set_lookup_attribute(user, data["lookup_attribute"], actor=acting_user(request))
        if "is_active" in data and data["is_active"] != user.is_active:
            flows.set_user_active(user, data["is_active"], actor=acting_user(request))
        user.refresh_from_db()
        return Response(_user_body(get_user_model().objects.select_related("local_account").get(pk=user.pk)))


class LinkFilterSerializer(serializers.Serializer):
    trusted_issuer = serializers.IntegerField(required=False, min_value=1, max_value=_MAX_ID)
    user = serializers.IntegerField(required=False, min_value=1, max_value=_MAX_ID)
    subject = serializers.CharField(required=False, max_length=255, trim_whitespace=False,
                                    help_text="The exact external subject.")


@extend_schema_view(
    list=extend_schema(
        summary="List linked identities", parameters=[LinkFilterSerializer],
        responses={200: s.LinkedIdentitySerializer(many=True), **_problems(400, *_AUTH_ERRORS)},
    ),
    create=extend_schema(
        summary="Link an external identity to a local user",
        description="Exchanges of (`trusted_issuer`, `subject`) by applications that use linked accounts are then "
                    "for the local user. Refused (400) for staff, superusers and service accounts, and for an "
                    "identity already linked.",
        request=s.LinkedIdentityCreateSerializer,
        responses={201: s.LinkedIdentitySerializer, **_problems(400, *_AUTH_ERRORS)},
        examples=[OpenApiExample("Link", request_only=True, value={"trusted_issuer": 1, "subject": "248289761001",
                                                                   "user": 7})],
    ),
    retrieve=extend_schema(
        summary="Get a linked identity", responses={200: s.LinkedIdentitySerializer, **_problems(*_AUTH_ERRORS, 404)},
    ),
    destroy=extend_schema(
        summary="Remove a link",
        description="The live tokens exchanged through it are revoked; the next exchange of that identity is for the "
                    "external identity (or refused, for applications that require a linked local account).",
        responses={204: None, **_problems(*_AUTH_ERRORS, 404)},
    ),
)
class LinkedIdentityViewSet(ManagementMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                            mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = s.LinkedIdentitySerializer
    permission_model = LinkedIdentity

    def get_queryset(self):
        queryset = LinkedIdentity.objects.select_related("trusted_issuer", "user").order_by("pk")
        if self.action == "list":
            queryset = _filtered(queryset, LinkFilterSerializer, self.request,
                                 {"trusted_issuer": "trusted_issuer", "user": "user", "subject": "subject"})
        return queryset

    def create(self, request):
        data = _valid(s.LinkedIdentityCreateSerializer, request.data)
        trusted = TrustedTokenIssuer.objects.filter(pk=data["trusted_issuer"]).first()
        user = get_user_model().objects.filter(pk=data["user"]).first()
        if trusted is None:
            raise ValidationError({"trusted_issuer": ["No trusted token issuer has this id."]})
        if user is None:
            raise ValidationError({"user": ["No local user has this id."]})
        link = flows.link_identity(trusted, data["subject"], user, actor=acting_user(request))
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{link.pk}")
        return Response(s.LinkedIdentitySerializer(link).data, status=status.HTTP_201_CREATED,
                        headers={"Location": location})

    def perform_destroy(self, instance):
        flows.unlink_identity(instance, actor=acting_user(self.request))


@extend_schema_view(
    list=extend_schema(summary="List roles (groups) and their scopes",
                       responses={200: s.RoleSerializer(many=True), **_problems(400, *_AUTH_ERRORS)}),
    retrieve=extend_schema(summary="Get a role's scopes", responses={200: s.RoleSerializer, **_problems(*_AUTH_ERRORS, 404)}),
    partial_update=extend_schema(
        summary="Set a role's scopes",
        description="A linked local user's exchanged tokens carry at most the scopes of their roles (and of the "
                    "application). Only registered scopes (the scope registry); never `console:manage`.",
        request=s.RoleSerializer, responses={200: s.RoleSerializer, **_problems(400, *_AUTH_ERRORS, 404)},
        examples=[OpenApiExample("Scopes", request_only=True, value={"scopes": "openid profile"})],
    ),
)
class RoleViewSet(ManagementMixin, viewsets.GenericViewSet):
    serializer_class = s.RoleSerializer
    permission_model = Group

    def get_queryset(self):
        return Group.objects.order_by("name", "pk")

    @staticmethod
    def _body(group):
        row = RoleScopes.objects.filter(group=group).first()
        return {"id": group.pk, "name": group.name, "scopes": row.scopes if row else ""}

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([self._body(group) for group in page])

    def retrieve(self, request, pk=None):
        return Response(self._body(self.get_object()))

    def partial_update(self, request, pk=None):
        group = self.get_object()
        data = _valid(s.RoleSerializer, request.data, partial=True)
        if "scopes" in data:
            flows.set_role_scopes(group, data["scopes"], actor=acting_user(request))
        return Response(self._body(group))


class ScopeFilterSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=100, trim_whitespace=False,
                                 help_text="The exact scope name.")


@extend_schema_view(
    list=extend_schema(
        summary="List the registered scopes", parameters=[ScopeFilterSerializer],
        description="The scope registry: the scopes applications may be allowed (`allowed_scopes`) and that "
                    "discovery lists in `scopes_supported` (all but `console:manage`).",
        responses={200: s.ScopeSerializer(many=True), **_problems(400, *_AUTH_ERRORS)},
    ),
    create=extend_schema(
        summary="Register a scope",
        description="`name`: as clients request it, 1 to 100 printable ASCII characters without spaces, quotes or "
                    "backslashes (RFC 6749 §3.3), unique.",
        request=s.ScopeCreateSerializer,
        responses={201: s.ScopeSerializer, **_problems(400, *_AUTH_ERRORS)},
        examples=[OpenApiExample("A resource scope", request_only=True,
                                 value={"name": "orders:read", "description": "Read the orders API"})],
    ),
    retrieve=extend_schema(
        summary="Get a scope", responses={200: s.ScopeSerializer, **_problems(*_AUTH_ERRORS, 404)},
    ),
    partial_update=extend_schema(
        summary="Change a scope's description", description="The name never changes: applications and tokens carry it.",
        request=s.ScopeUpdateSerializer, responses={200: s.ScopeSerializer, **_problems(400, *_AUTH_ERRORS, 404)},
    ),
    destroy=extend_schema(
        summary="Delete a scope",
        description="Refused (409) for a protected scope (needed by the server: `openid`, `console:manage`) and "
                    "for a scope that an application still allows or a role (linked accounts) still grants: remove "
                    "it from those applications and roles first. "
                    "Tokens already issued with it keep it until they expire.",
        responses={204: None, **_problems(*_AUTH_ERRORS, 404, 409)},
    ),
)
class ScopeViewSet(
    ManagementMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Scope.objects.all()
    serializer_class = s.ScopeSerializer
    permission_model = Scope

    def get_queryset(self):
        queryset = super().get_queryset().order_by("name", "pk")
        if self.action == "list":
            queryset = _filtered(queryset, ScopeFilterSerializer, self.request, {"name": "name"})
        return queryset

    def create(self, request):
        data = _valid(s.ScopeCreateSerializer, request.data)
        scope = flows.create_scope(name=data["name"], description=data.get("description", ""),
                                   user=acting_user(request))
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{scope.pk}")
        return Response(s.ScopeSerializer(scope).data, status=status.HTTP_201_CREATED, headers={"Location": location})

    def partial_update(self, request, pk=None):
        scope = self.get_object()
        data = _valid(s.ScopeUpdateSerializer, request.data, partial=True)
        if "description" in data:
            scope = flows.update_scope(scope, description=data["description"], user=acting_user(request))
        return Response(s.ScopeSerializer(scope).data)

    def perform_destroy(self, instance):
        try:
            flows.delete_scope(instance, user=acting_user(self.request))
        except DjangoValidationError as exc:
            raise Conflict(flows.first_error(exc).removeprefix("name: ")) from None


def _renderable(value):
    """Parsed token JSON the strict JSON renderer accepts: a number beyond the float range (``1e400``
    parses as infinity, which JSON cannot carry) is shown as the string "Infinity" or "-Infinity"."""
    if value is None:
        return None
    return json.loads(json.dumps(value), parse_constant=str)


class TokenValidationView(APIView):
    """Check a subject token as the token endpoint would, step by step; nothing is issued or consumed."""

    permission_classes = [ManagementPermission]
    permission_model = TrustedTokenIssuer
    permission_actions = {None: "view"}

    @extend_schema(
        summary="Explain whether a subject token would be accepted",
        description="Runs the token endpoint's subject-token validation (the same code) and reports each "
                    "step. Nothing is issued, no audit event is written and the token's jti is not "
                    "consumed, so the token can still be exchanged afterwards. A rejected token is a 200 "
                    "with `valid: false`.",
        request=s.TokenValidationRequestSerializer,
        responses={200: s.TokenValidationSerializer, **_problems(400, *_AUTH_ERRORS)},
    )
    def post(self, request):
        serializer = s.TokenValidationRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = explain_subject_token(serializer.validated_data["subject_token"],
                                       token_type=serializer.validated_data.get("subject_token_type"),
                                       role=serializer.validated_data["role"])
        body = report.as_dict()
        body["header"] = _renderable(report.header)
        body["claims"] = _renderable(report.claims)
        body["mapped_claims"] = _renderable(report.mapped_claims)
        return Response(s.TokenValidationSerializer(body).data)


@csrf_exempt  # answers every method with a 404 and changes nothing
def not_found(request, *args, **kwargs):
    """Any other path under the API: a problem-details 404 rather than an HTML page."""
    return JsonResponse(
        {"type": "about:blank", "title": "Not Found", "status": 404,
         "detail": "No API resource at this path.", "code": "not_found"},
        status=404, content_type=PROBLEM_JSON,
    )
