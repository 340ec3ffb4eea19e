"""What the server writes: tokens, signing keys and exchange events. The console reads them; it never destroys them.

As django-oauth-toolkit's own admin does: tokens are never raw-deleted, they are revoked with an
action that calls DOT's revoke path (which keeps the refresh-token tombstones reuse protection
needs). Signing keys are read-only: the one way to change them is *Rotate signing key*, which runs
the same rotation as ``rotate_signing_key``, so the active key can never be removed or edited.
Exchange events are the audit trail: only ``prune_audit`` deletes them. Every revocation and
rotation writes a ``LogEntry``.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path
from django.utils.translation import ngettext
from oauth2_provider import admin as dot_admin
from oauth2_provider.models import revoke_access_token

from ..models import AccessToken
from ..signing import RotationError, rotate_signing_key


class ReadOnlyRecordAdmin(admin.ModelAdmin):
    """Rows the server writes: listed and viewed, never added, edited or deleted here."""

    def has_revoke_permission(self, request):
        """Revoking or rotating needs the model's change permission (which no edit form uses here)."""
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AccessTokenAdmin(ReadOnlyRecordAdmin, dot_admin.AccessTokenAdmin):
    list_display = ("jti", "masked_token", "application", "subject", "trusted_issuer", "expires")
    list_filter = ("application",)
    # Never the token itself (it would land in ?q= and access logs).
    search_fields = ("jti", "subject", "application__client_id", "application__name")
    readonly_fields = [f.name for f in AccessToken._meta.fields if f.name not in ("token",)]
    exclude = ("token",)
    actions = ("revoke_tokens",)

    @admin.action(description="Revoke selected access tokens", permissions=["revoke"])
    def revoke_tokens(self, request, queryset):
        """DOT's revoke path per token (its refresh token too), each with a LogEntry written before the row goes."""
        revoked = 0
        for token in queryset:
            self.log_change(request, token, "Revoked.")
            revoke_access_token(token)
            revoked += 1
        self.message_user(request, ngettext("Revoked %d access token.", "Revoked %d access tokens.", revoked) % revoked)


class RefreshTokenAdmin(ReadOnlyRecordAdmin, dot_admin.RefreshTokenAdmin):
    list_display = ("pk", "masked_token", "application", "subject", "trusted_issuer", "created", "revoked")
    list_filter = ("application", "revoked")
    search_fields = ("subject", "application__client_id", "application__name")
    exclude = ("token",)
    actions = ("revoke_tokens",)

    @admin.action(description="Revoke selected refresh tokens", permissions=["revoke"])
    def revoke_tokens(self, request, queryset):
        """``RefreshToken.revoke()`` per live token (its access token goes, the row stays as a tombstone)."""
        revoked = 0
        for token in queryset.filter(revoked__isnull=True):
            token.revoke()
            self.log_change(request, token, "Revoked.")
            revoked += 1
        self.message_user(request, ngettext("Revoked %d refresh token.", "Revoked %d refresh tokens.", revoked) % revoked)


class SigningKeyAdmin(ReadOnlyRecordAdmin):
    list_display = ("kid", "algorithm", "active", "created", "activate_at", "retire_after", "retired_at")
    exclude = ("private_pem",)
    actions = None

    def get_urls(self):
        opts = self.model._meta
        rotate = path("rotate/", self.admin_site.admin_view(self.rotate_view),
                      name=f"{opts.app_label}_{opts.model_name}_rotate")
        return [rotate, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"can_rotate": self.has_revoke_permission(request), **(extra_context or {})})

    def rotate_view(self, request):
        """POST: the next key, by the rotation ``rotate_signing_key`` runs; History on the new and superseded keys."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        try:
            key, superseded = rotate_signing_key()
        except RotationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.log_addition(request, key, "Created by rotation.")
            for row in superseded:
                until = f"{row.retire_after:%Y-%m-%d %H:%M:%S} UTC" if row.retire_after else "retired"
                self.log_change(request, row, f"Superseded by {key.kid}; published until {until}.")
            signs_from = key.activate_at or key.created
            self.message_user(request, f"New signing key {key.kid} published; it signs from {signs_from:%Y-%m-%d %H:%M:%S} UTC.")
        return HttpResponseRedirect("../")


class ExchangeEventAdmin(ReadOnlyRecordAdmin):
    list_display = ("created", "outcome", "cause", "trusted_issuer", "application", "subject")
    list_filter = ("outcome", "cause", "trusted_issuer")
    search_fields = ("subject", "subject_jti", "issued_jti")
    actions = None
