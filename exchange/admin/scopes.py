"""Scopes: the scope registry's list, New Scope, the page of one scope (its description) and its deletion."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect

from .. import flows
from ..models import Scope
from . import forms
from .base import ConsoleModelAdmin


class ScopeAdmin(ConsoleModelAdmin):
    list_display = ("name", "description", "protected_label")
    search_fields = ("name", "description")

    tabs = (("general", "General"),)
    detail_template = "admin/exchange/scope/detail.html"
    console_name, object_label = "Scopes", "scope"
    add_label = "New Scope"

    def tab_views(self):
        return {"general": self.general_tab}

    @admin.display(description="Protected")
    def protected_label(self, obj):
        return "Needed by the server" if obj.protected else "—"

    def detail_context(self, request, scope):
        return {"applications": flows.applications_allowing(scope)}

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.protected)

    def add_view(self, request, form_url="", extra_context=None):
        """New Scope: its name (as clients request it) and a description."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = forms.ScopeForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                scope = flows.create_scope(name=form.cleaned_data["name"],
                                           description=form.cleaned_data["description"], user=request.user)
            except ValidationError as exc:
                forms.add_flow_errors(form, exc)
            else:
                messages.success(request, f"Scope “{scope.name}” registered.")
                return HttpResponseRedirect(self.url("change", scope.pk))
        return self.render_page(request, "admin/exchange/scope/add.html", "New Scope", form=form)

    def general_tab(self, request, scope):
        if request.method != "POST":
            return {"form": forms.ScopeDescriptionForm(instance=scope)}
        form = forms.ScopeDescriptionForm(request.POST, instance=Scope.objects.get(pk=scope.pk))
        if form.is_valid():
            try:
                flows.update_scope(scope, description=form.cleaned_data["description"], user=request.user)
            except ValidationError as exc:
                forms.add_flow_errors(form, exc)
            else:
                messages.success(request, "Scope updated.")
                return self.redirect_tab(scope, "general")
        return {"form": form}

    def delete_view(self, request, object_id, extra_context=None):
        """Deletion through flows.delete_scope, which refuses a protected scope or one still allowed somewhere."""
        scope = self.get_object(request, unquote(object_id))
        if scope is None:
            raise Http404("No such object")
        if not super().has_delete_permission(request, scope):
            raise PermissionDenied
        if request.method == "POST":
            try:
                flows.delete_scope(scope, user=request.user)
            except ValidationError as exc:
                messages.error(request, flows.first_error(exc).removeprefix("name: "))
                return self.redirect_tab(scope, "general")
            messages.success(request, f"The scope “{scope.name}” was deleted successfully.")
            return HttpResponseRedirect(self.url("changelist"))
        return self.render_page(request, "admin/console/delete_confirm.html", f"Delete {scope}?", original=scope,
                                consequence=self.deletion_consequence(scope))

    def deletion_consequence(self, scope):
        return ("Clients can no longer request it. A scope that an application still allows, or that the "
                "server needs, is not deleted.")
