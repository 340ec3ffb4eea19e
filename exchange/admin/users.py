"""Users: the local users (Django's users), their linked external identities, and roles' scopes on Groups.

Django's own user and group forms stay (password, permissions, groups); this page adds what local
users have here: search by username, email or linked external subject; *Disable*/*Enable*
(flows.set_user_active, which also revokes a disabled user's tokens); the user's linked identities
with *Remove* (flows.unlink_identity). Signing in to the console stays Django admin's: only active
staff may, so a local user never reaches the console. A group's *Scopes* are the role's scopes
(flows.set_role_scopes): a linked local user's exchanged tokens carry at most those.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from .. import accounts, flows
from ..models import LinkedIdentity, RoleScopes


class LocalUserAdmin(UserAdmin):
    list_display = ("username", "email", "status", "kind", "linked_identities_count")
    list_filter = ("is_active", "is_staff", "groups")
    search_fields = ("username", "email", "first_name", "last_name", "linked_identities__subject")
    list_select_related = ("service_application",)
    change_form_template = "admin/exchange/user/change_form.html"
    actions = None

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("linked_identities")

    @admin.display(description="Status", boolean=False, ordering="is_active")
    def status(self, obj):
        return "Enabled" if obj.is_active else "Disabled"

    @admin.display(description="Kind")
    def kind(self, obj):
        if obj.is_superuser:
            return "Superuser"
        if obj.is_staff:
            return "Console administrator"
        if hasattr(obj, "service_application"):
            return "Service account"
        return "Local user"

    @admin.display(description="Linked identities")
    def linked_identities_count(self, obj):
        return len(obj.linked_identities.all())

    def get_urls(self):
        return [
            path("<path:object_id>/status/", self.admin_site.admin_view(self.status_view), name="auth_user_status"),
            path("<path:object_id>/unlink/", self.admin_site.admin_view(self.unlink_view), name="auth_user_unlink"),
            *super().get_urls(),
        ]

    def _user_or_404(self, request, object_id):
        if request.method != "POST":
            return None
        user = self.get_object(request, object_id)
        if user is None:
            raise Http404("No such user")
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        return user

    def _back(self, user):
        return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk], current_app=self.admin_site.name))

    def status_view(self, request, object_id):
        """Disable or enable a local user (POST ``active`` = 1 or 0)."""
        user = self._user_or_404(request, object_id)
        if user is None:
            return HttpResponseNotAllowed(["POST"])
        try:
            flows.set_user_active(user, request.POST.get("active") == "1", actor=request.user)
        except ValidationError as exc:
            messages.error(request, flows.first_error(exc).removeprefix("is_active: "))
        else:
            messages.success(request, f"The user “{user.get_username()}” was "
                                      f"{'enabled' if user.is_active else 'disabled; their tokens were revoked'}.")
        return self._back(user)

    def unlink_view(self, request, object_id):
        """Remove one of the user's linked identities (POST ``link``)."""
        user = self._user_or_404(request, object_id)
        if user is None:
            return HttpResponseNotAllowed(["POST"])
        link = get_object_or_404(LinkedIdentity, pk=request.POST.get("link"), user=user)
        flows.unlink_identity(link, actor=request.user)
        messages.success(request, "Link removed; the tokens exchanged through it were revoked.")
        return self._back(user)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        user = self.get_object(request, object_id)
        context = {}
        if user is not None:
            context.update(
                linked_identities=user.linked_identities.select_related("trusted_issuer").order_by("trusted_issuer__name",
                                                                                                  "subject"),
                local_subject=accounts.local_subject(user),
                role_scopes=sorted(accounts.scopes_for_user(user)),
                manageable=accounts.linkable_problem(user) is None and user.pk != request.user.pk,
            )
        return super().change_view(request, object_id, form_url, {**context, **(extra_context or {})})


class RoleGroupForm(forms.ModelForm):
    scopes = forms.CharField(
        label="Scopes", required=False,
        help_text="Space-separated scopes this role holds: a linked local user's exchanged tokens carry at most "
                  "their roles' scopes (and the application's).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            row = RoleScopes.objects.filter(group=self.instance).first()
            self.fields["scopes"].initial = row.scopes if row else ""

    def clean_scopes(self):
        try:
            return flows.clean_role_scopes(self.cleaned_data["scopes"])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["scopes"]) from None


class RoleGroupAdmin(GroupAdmin):
    form = RoleGroupForm
    fields = ("name", "scopes", "permissions")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        flows.set_role_scopes(form.instance, form.cleaned_data["scopes"], actor=request.user)
