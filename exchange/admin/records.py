"""What the server writes: access tokens and exchange events (read-only), signing keys (not added here)."""

from django.contrib import admin

from ..models import AccessToken


class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ("jti", "application", "subject", "trusted_issuer", "expires")
    list_filter = ("application",)
    search_fields = ("jti", "subject")
    readonly_fields = [f.name for f in AccessToken._meta.fields if f.name not in ("token",)]
    exclude = ("token",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class SigningKeyAdmin(admin.ModelAdmin):
    list_display = ("kid", "algorithm", "active", "created", "retire_after")
    exclude = ("private_pem",)
    readonly_fields = ("kid", "algorithm", "created")

    def has_add_permission(self, request):
        return False


class ExchangeEventAdmin(admin.ModelAdmin):
    list_display = ("created", "outcome", "cause", "trusted_issuer", "application", "subject")
    list_filter = ("outcome", "cause", "trusted_issuer")
    search_fields = ("subject", "subject_jti", "issued_jti")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
