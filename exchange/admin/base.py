"""What every console page shares: one page renderer, one tabbed object page, one way to save a tab.

Custom pages follow Django admin's habits: ``get_urls()`` puts them before the
model's own URLs, each wrapped in ``admin_view`` (login, CSRF, ``never_cache``),
rendered as ``TemplateResponse`` with the site's context and guarded by the
model permissions. Everything that changes data goes through ``exchange.flows``,
and every change is written to Django's ``LogEntry`` (the object's History page).
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from .forms import add_flow_errors


class ConsoleModelAdmin(admin.ModelAdmin):
    """A model's console pages: its list (Django's, in the console's names), one page per object with
    tabs, and the console's own deletion page (through ``delete_object``, a flow).

    Subclasses name their ``tabs`` ((key, label), …), the ``detail_template`` and
    ``tab_views()``: the explicit mapping from each tab key to the method that answers it.
    A tab method returns the template context, or a response (a redirect after a change).
    """

    tabs = ()
    detail_template = None
    #: POST parameters hidden from Django's error reports on the object page (``sensitive_post_parameters``).
    sensitive_parameters = ()
    #: The console's name of the list (title, menu, breadcrumbs) and of one object (messages).
    console_name = ""
    object_label = ""
    #: The list's primary button ("" for none) and the page it opens (a name for ``url``).
    add_label = ""
    add_page = "add"
    #: No bulk actions: a deletion is confirmed on the object's own page, one object at a time.
    actions = None

    def console_context(self):
        """What the console's templates need to name this model's pages (breadcrumbs, titles)."""
        return {"console_name": self.console_name or self.model._meta.verbose_name_plural.capitalize(),
                "console_list_url": self.url("changelist")}

    def changelist_view(self, request, extra_context=None):
        context = {**self.console_context(), **({"title": self.console_name} if self.console_name else {})}
        if self.add_label and self.has_add_permission(request):
            context.update(add_label=self.add_label, add_url=self.url(self.add_page))
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def history_view(self, request, object_id, extra_context=None):
        return super().history_view(request, object_id, {**self.console_context(), **(extra_context or {})})

    def delete_object(self, obj):
        """Delete ``obj`` through its flow (subclasses that allow deletion name it)."""
        raise PermissionDenied

    def delete_view(self, request, object_id, extra_context=None):
        """The console's deletion: a confirmation page, then the flow, a History entry and the list."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such object")
        if not self.has_delete_permission(request, obj):
            raise PermissionDenied
        if request.method == "POST":
            name = str(obj)
            self.log_deletions(request, self.model.objects.filter(pk=obj.pk))
            self.delete_object(obj)
            messages.success(request, f"The {self.object_label} “{name}” was deleted successfully.")
            return HttpResponseRedirect(self.url("changelist"))
        return self.render_page(request, "admin/console/delete_confirm.html", f"Delete {obj}?", original=obj,
                                consequence=self.deletion_consequence(obj))

    def deletion_consequence(self, obj):
        """One sentence on what the deletion breaks, shown on its confirmation page."""
        return ""

    def tab_views(self):
        """Tab key → the method answering it: ``method(request, obj)``."""
        raise NotImplementedError

    def detail_context(self, request, obj):
        """Context every tab of the object page shows (besides the tab's own)."""
        return {}

    def render_page(self, request, template, title, **context):
        """A console page: the site's context, the model's options, a title and the page's own context."""
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": title,
            "has_view_permission": self.has_view_permission(request), **self.console_context(),
            **context,
        })

    def url(self, name, *args):
        """The reversed URL of one of this model's console pages (``change``, ``templates``, …)."""
        opts = self.model._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=args,
                       current_app=self.admin_site.name)

    def redirect_tab(self, obj, tab):
        return HttpResponseRedirect(self.url("change", obj.pk) + "?tab=" + tab)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The object page: the tab named by ``?tab=`` (the first by default), answered by its method."""
        request.sensitive_post_parameters = self.sensitive_parameters
        obj = self.get_object(request, unquote(object_id))  # Django's lookup (get_queryset, to_field)
        if obj is None:
            raise Http404("No such object")
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        tab = request.GET.get("tab") or self.tabs[0][0]
        handler = self.tab_views().get(tab)
        if handler is None:
            raise Http404("No such tab")
        can_change = self.has_change_permission(request, obj)
        if request.method == "POST" and not can_change:
            raise PermissionDenied
        context = handler(request, obj)
        if isinstance(context, HttpResponse):
            return context
        return self.render_page(
            request, self.detail_template, obj.name,
            original=obj, tab=tab, tabs=self.tabs, can_change=can_change,
            has_delete_permission=self.has_delete_permission(request, obj),
            **self.detail_context(request, obj), **context,
        )

    def save_tab(self, request, obj, form, tab, done, save):
        """A tab's posted form: ``save(cleaned_data)`` runs the flow; then a LogEntry, a message, the tab again.

        Returns the redirect when saved, None when the form (now with the flow's errors) is shown again.
        """
        if not form.is_valid():
            return None
        try:
            save(form.cleaned_data)
        except ValidationError as exc:
            add_flow_errors(form, exc)
            return None
        self.log_change(request, obj, self.construct_change_message(request, form, None))
        messages.success(request, done)
        return self.redirect_tab(obj, tab)

    def log_related(self, request, obj, action, related):
        """History: an object belonging to ``obj`` was ``added`` or ``deleted`` (e.g. a certificate)."""
        self.log_change(request, obj, [{action: {"name": str(related._meta.verbose_name), "object": str(related)}}])



class RecordAdmin(ConsoleModelAdmin):
    """What the server writes (tokens, events, keys): its list and a read-only page per record.

    ``record_title(obj)`` names the page; ``record_rows(request, obj)`` gives its (label, value) rows;
    ``record_note(obj)`` an optional explanation shown above them.
    """

    record_template = "admin/console/record.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def record_title(self, obj):
        return str(obj)

    def record_rows(self, request, obj):
        raise NotImplementedError

    def record_note(self, obj):
        return None

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such object")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        if request.method == "POST":
            raise PermissionDenied
        return self.render_page(request, self.record_template, self.record_title(obj), original=obj,
                                rows=self.record_rows(request, obj), note=self.record_note(obj))
