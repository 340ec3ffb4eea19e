"""The console: Django's admin site, dressed and named for administrators of this product.

Its sign-in is Django admin's own behind brute-force throttling (``ConsoleSite.login``): a
sign-in POST that does not sign in counts as a failure for its username and its address
(``exchange.throttling.CONSOLE_LOGIN``). Once ``CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS`` (10)
or ``CONSOLE_LOGIN_MAX_FAILURES_PER_USERNAME`` (50) failures fall in one window
(``CLIENT_AUTH_THROTTLE_WINDOW_SECONDS``), sign-in POSTs for that username or from that address
are answered 429 with ``Retry-After`` until the window ends, whether or not the password is
right, so the answers stop confirming guesses. One address alone cannot lock an administrator
out for others: its own, lower limit stops it first.

The pages themselves live in the app (``exchange.admin``); the home page's data comes from
``exchange.admin.dashboard``.
"""

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from exchange import throttling

class ConsoleSite(admin.AdminSite):
    site_header = "Identity Console"
    site_title = "Identity Console"
    index_title = "Console"
    index_template = "admin/console/dashboard.html"
    enable_nav_sidebar = False
    site_url = None  # the console is the site

    def index(self, request, extra_context=None):
        # Imported here to break a real cycle: exchange.admin registers its pages on admin.site, and
        # admin.site's set-up imports this module (the project's default_site).
        from exchange.admin import dashboard

        return super().index(request, {**dashboard.summary(), "title": "Home", **(extra_context or {})})

    def app_index(self, request, app_label, extra_context=None):
        # Django's per-app model list is not a console page: its links are on the home page.
        return HttpResponseRedirect(reverse("admin:index", current_app=self.name))

    @method_decorator(sensitive_post_parameters())
    @method_decorator(login_not_required)
    def login(self, request, extra_context=None):
        if request.method != "POST":
            return super().login(request, extra_context)
        username = throttling.sign_in_name(request.POST.get("username"))
        wait, response = throttling.throttled_sign_in(
            username, request.META.get("REMOTE_ADDR", ""), lambda: super(ConsoleSite, self).login(request, extra_context),
            signed_in=lambda response: response.status_code == 302,  # a failure shows the form again
        )
        if wait:
            return self._sign_in_throttled(request, username, wait)
        return response

    def _sign_in_throttled(self, request, username, wait):
        messages.error(request, f"Too many failed sign-ins. Try again in {wait} seconds.")
        context = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "form": AdminAuthenticationForm(request, initial={"username": username[:150]}),
            REDIRECT_FIELD_NAME: (request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME)
                                  or reverse("admin:index", current_app=self.name)),
        }
        response = TemplateResponse(request, self.login_template or "admin/login.html", context, status=429)
        response["Retry-After"] = str(wait)
        add_never_cache_headers(response)
        return response
