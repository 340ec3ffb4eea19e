"""Console pages for trusted token issuers, applications, signing keys and exchange activity."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model

from . import flows
from .models import ExchangeEvent, IssuerCertificate, SigningKey, TrustedTokenIssuer

Application = get_application_model()


class IssuerCertificateInline(admin.TabularInline):
    model = IssuerCertificate
    extra = 0
    fields = ("pem", "subject", "not_after", "key_description", "fingerprint")
    readonly_fields = ("subject", "not_after", "key_description", "fingerprint")


@admin.register(TrustedTokenIssuer)
class TrustedTokenIssuerAdmin(admin.ModelAdmin):
    list_display = ("name", "issuer", "key_source", "enabled", "key_status")
    list_filter = ("enabled",)
    search_fields = ("name", "issuer", "alias")
    inlines = [IssuerCertificateInline]
    readonly_fields = ("keys_fetched_at", "key_fetch_error", "key_fetch_failed_at", "created", "updated")
    fieldsets = (
        (None, {"fields": ("name", "issuer", "alias", "enabled")}),
        ("Certificate", {"fields": ("jwks_uri",)}),
        ("Validation", {"fields": ("allowed_algorithms", "clock_skew", "max_token_age", "reject_replayed_jti", "require_jti")}),
        ("Key health", {"fields": ("keys_fetched_at", "key_fetch_error", "key_fetch_failed_at", "created", "updated")}),
    )

    @admin.display(description="Key fetch")
    def key_status(self, obj):
        if not obj.jwks_uri:
            return "certificates"
        if obj.key_fetch_error and (obj.keys_fetched_at is None or obj.key_fetch_failed_at > obj.keys_fetched_at):
            return format_html('<span class="errornote">{}</span>', obj.key_fetch_error)
        return "ok" if obj.keys_fetched_at else "not fetched yet"


# DOT registers its own admin for the (swapped) Application model; ours replaces it.
for model in (Application, get_access_token_model(), get_refresh_token_model()):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ("name", "application_type", "client_id", "grant_types")
    list_filter = ("application_type",)
    search_fields = ("name", "client_id")
    fields = ("name", "application_type", "client_id", "allowed_grant_types", "allowed_scopes",
              "allowed_audiences", "access_token_lifetime")
    readonly_fields = ("client_id",)

    @admin.display(description="Allowed grant types")
    def grant_types(self, obj):
        labels = dict(Application.GrantType.choices)
        return ", ".join(str(labels.get(g, g)) for g in obj.allowed_grant_types)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        try:
            created, secret = flows.create_application(
                name=obj.name, application_type=obj.application_type,
                grant_types=obj.allowed_grant_types, scopes=obj.allowed_scopes,
                allowed_audiences=obj.allowed_audiences, access_token_lifetime=obj.access_token_lifetime,
            )
        except ValidationError as exc:
            messages.error(request, flows.first_error(exc))
            return
        obj.pk = created.pk
        obj.client_id = created.client_id
        messages.warning(
            request,
            format_html("Client secret (shown once, copy it now): <code>{}</code>", secret),
        )


@admin.register(get_access_token_model())
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ("jti", "application", "subject", "trusted_issuer", "expires")
    list_filter = ("application",)
    search_fields = ("jti", "subject")
    readonly_fields = [f.name for f in get_access_token_model()._meta.fields if f.name not in ("token",)]
    exclude = ("token",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    list_display = ("kid", "algorithm", "active", "created", "retire_after")
    exclude = ("private_pem",)
    readonly_fields = ("kid", "algorithm", "created")

    def has_add_permission(self, request):
        return False


@admin.register(ExchangeEvent)
class ExchangeEventAdmin(admin.ModelAdmin):
    list_display = ("created", "outcome", "cause", "trusted_issuer", "application", "subject")
    list_filter = ("outcome", "cause", "trusted_issuer")
    search_fields = ("subject", "subject_jti", "issued_jti")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
