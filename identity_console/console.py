"""The console: Django's admin site, dressed and named for administrators of this product.

Its sign-in is Django admin's own behind brute-force throttling (``ConsoleSite.login``): a
sign-in POST that does not sign in counts as a failure for its username and its address
(``exchange.throttling.CONSOLE_LOGIN``). Once ``CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS`` (10)
or ``CONSOLE_LOGIN_MAX_FAILURES_PER_USERNAME`` (50) failures fall in one window
(``CLIENT_AUTH_THROTTLE_WINDOW_SECONDS``), sign-in POSTs for that username or from that address
are answered 429 with ``Retry-After`` until the window ends, whether or not the password is
right, so the answers stop confirming guesses. One address alone cannot lock an administrator
out for others: its own, lower limit stops it first.
"""

import datetime
import time

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import UsernameField
from django.db.models import Count
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from exchange.protocol import TOKEN_EXCHANGE

#: The sign-in form's own cleaning of the username (strip, then NFKC when short enough to name a user).
_USERNAME = UsernameField(max_length=150)

#: Bars of the activity chart (server-rendered SVG: no script, no external assets).
CHART_ROW_HEIGHT = 26
CHART_LABEL_WIDTH = 190
CHART_BAR_WIDTH = 300


def exchange_activity(hours=24, now=None):
    """Exchange events of the last ``hours``: successes, then rejections by cause (most first)."""
    from exchange.models import ExchangeEvent
    from exchange.subject_token import CAUSES

    since = (now or timezone.now()) - datetime.timedelta(hours=hours)
    rows = (
        ExchangeEvent.objects.filter(created__gte=since)
        .values("outcome", "cause").annotate(count=Count("id")).order_by("-count", "cause")
    )
    issued = sum(r["count"] for r in rows if r["outcome"] == ExchangeEvent.Outcome.ISSUED)
    rejected = [r for r in rows if r["outcome"] == ExchangeEvent.Outcome.REJECTED]
    bars = [{"label": "Issued", "count": issued, "kind": "ok", "title": "Tokens issued"}]
    bars += [
        {"label": r["cause"] or "rejected", "count": r["count"], "kind": "bad",
         "title": CAUSES.get(r["cause"], r["cause"])}
        for r in rejected
    ]
    peak = max([b["count"] for b in bars] + [1])
    for index, bar in enumerate(bars):
        bar["y"] = index * CHART_ROW_HEIGHT
        bar["text_y"] = bar["y"] + CHART_ROW_HEIGHT // 2 + 5
        bar["width"] = max(2 if bar["count"] else 0, round(CHART_BAR_WIDTH * bar["count"] / peak))
        bar["count_x"] = CHART_LABEL_WIDTH + bar["width"] + 6
    return {
        "bars": bars,
        "issued": issued,
        "rejected": sum(r["count"] for r in rejected),
        "height": len(bars) * CHART_ROW_HEIGHT,
        "width": CHART_LABEL_WIDTH + CHART_BAR_WIDTH + 60,
        "label_width": CHART_LABEL_WIDTH,
        "bar_height": CHART_ROW_HEIGHT - 8,
        "hours": hours,
    }


class ConsoleSite(admin.AdminSite):
    site_header = "Identity Console"
    site_title = "Identity Console"
    index_title = "Console"
    index_template = "admin/console/dashboard.html"
    enable_nav_sidebar = False
    site_url = None  # the console is the site

    def index(self, request, extra_context=None):
        from exchange.models import Application, TrustedTokenIssuer

        context = {
            "issuer_count": TrustedTokenIssuer.objects.count(),
            "issuer_disabled_count": TrustedTokenIssuer.objects.filter(enabled=False).count(),
            "application_count": Application.objects.count(),
            "token_exchange_app_count": sum(
                1 for grants in Application.objects.values_list("allowed_grant_types", flat=True)
                if TOKEN_EXCHANGE in (grants or [])
            ),
            "activity": exchange_activity(),
            **(extra_context or {}),
        }
        return super().index(request, context)

    @method_decorator(sensitive_post_parameters())
    @method_decorator(login_not_required)
    def login(self, request, extra_context=None):
        from exchange import throttling

        if request.method != "POST":
            return super().login(request, extra_context)
        # Counted as the form reads it (stripped, NFKC): " root" and "ｒｏｏｔ" are root's guesses too.
        username = _USERNAME.to_python(request.POST.get("username") or "") or ""
        address, now, policy = request.META.get("REMOTE_ADDR", ""), time.time(), throttling.CONSOLE_LOGIN
        wait = throttling.retry_after(username, address, now=now, policy=policy)
        if wait:
            return self._sign_in_throttled(request, username, wait)
        # Counted before the (slow) password check and taken back when it passes: guesses sent in
        # parallel see each other's counts instead of all slipping past the limit together.
        throttling.record_failure(username, address, now=now, policy=policy)
        response = super().login(request, extra_context)
        if response.status_code == 302:  # signed in (a failure shows the form again)
            throttling.withdraw_failure(username, address, now=now, policy=policy)
        return response

    def _sign_in_throttled(self, request, username, wait):
        messages.error(request, f"Too many failed sign-ins. Try again in {wait} seconds.")
        context = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "form": AdminAuthenticationForm(request, initial={"username": username[:_USERNAME.max_length]}),
            REDIRECT_FIELD_NAME: (request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME)
                                  or reverse("admin:index", current_app=self.name)),
        }
        response = TemplateResponse(request, self.login_template or "admin/login.html", context, status=429)
        response["Retry-After"] = str(wait)
        add_never_cache_headers(response)
        return response
