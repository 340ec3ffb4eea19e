"""Console pages for trusted token issuers (Connections), applications, signing keys and exchange activity.

Custom pages follow Django admin's habits: ``get_urls()`` puts them before the
model's own URLs, each wrapped in ``admin_view`` (login, CSRF, ``never_cache``),
rendered as ``TemplateResponse`` with the site's context and guarded by the
model permissions. Everything that changes data goes through ``exchange.flows``.
"""

import base64
import json
from urllib.parse import quote_plus, urlencode

import jwt
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.test.client import RequestFactory
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model

from . import flows, forms, key_sources, signing
from .conf import project_settings
from .protocol import ACCESS_TOKEN_TYPE, JWT_TYPE, TOKEN_EXCHANGE
from .models import ExchangeEvent, IssuerCertificate, SigningKey, TrustedTokenIssuer
from .subject_token import CAUSES, explain_subject_token

Application = get_application_model()

WIZARD_SESSION_KEY = "console:issuer_wizard"
SECRET_SESSION_KEY = "console:new_secret:%s"
ISSUER_TABS = (
    ("general", "General"), ("certificates", "Certificates"), ("validation", "Validation"),
    ("test", "Test a token"), ("activity", "Activity"),
)
APPLICATION_TABS = (("general", "General"), ("protocol", "Protocol"), ("try", "Try it out"))
APPLICATION_TYPE_HELP = {
    Application.Type.STANDARD: "An OAuth 2.0 / OpenID Connect client of any kind that keeps a secret.",
    Application.Type.MOBILE: "A native app for phones and tablets.",
    Application.Type.TRADITIONAL: "A server-rendered web application that keeps a client secret.",
    Application.Type.SPA: "A JavaScript app in the browser: a public client without a secret.",
}


def _tab(request, tabs):
    tab = request.GET.get("tab") or tabs[0][0]
    if tab not in dict(tabs):
        raise Http404("No such tab")
    return tab


class ConsoleModelAdmin(admin.ModelAdmin):
    def render_page(self, request, template, title, **context):
        opts = self.model._meta
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request), "opts": opts, "title": title,
            "has_view_permission": self.has_view_permission(request),
            **context,
        })

    def url(self, name, *args):
        opts = self.model._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=args,
                       current_app=self.admin_site.name)


@admin.register(TrustedTokenIssuer)
class TrustedTokenIssuerAdmin(ConsoleModelAdmin):
    list_display = ("name", "issuer", "key_source_label", "enabled", "key_status")
    list_display_links = ("name",)
    list_filter = ("enabled",)
    search_fields = ("name", "issuer", "alias")

    @admin.display(description="Key source")
    def key_source_label(self, obj):
        return "JWKS endpoint" if obj.jwks_uri else "PEM certificates"

    @admin.display(description="Last key fetch")
    def key_status(self, obj):
        if not obj.jwks_uri:
            return "—"
        if obj.key_fetch_error and (obj.keys_fetched_at is None or obj.key_fetch_failed_at > obj.keys_fetched_at):
            return format_html('<span class="status-bad">{}</span>', obj.key_fetch_error)
        if obj.keys_fetched_at:
            return format_html('<span class="status-ok">ok, {}</span>', obj.keys_fetched_at.strftime("%Y-%m-%d %H:%M UTC"))
        return "not fetched yet"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("new/", view(self.templates_view), name="exchange_trustedtokenissuer_templates"),
            path("new/trusted-token-issuer/", view(self.wizard_general_view),
                 name="exchange_trustedtokenissuer_wizard_general"),
            path("new/trusted-token-issuer/validate/", view(self.wizard_validate_view),
                 name="exchange_trustedtokenissuer_wizard_validate"),
            path("new/trusted-token-issuer/certificate/", view(self.wizard_certificate_view),
                 name="exchange_trustedtokenissuer_wizard_certificate"),
            path("<int:object_id>/enabled/", view(self.toggle_view), name="exchange_trustedtokenissuer_toggle"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Connections", **(extra_context or {})})

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(self.url("templates"))

    # -- New Connection: template cards, then the two-step wizard ------------------

    def templates_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        return self.render_page(request, "admin/exchange/trustedtokenissuer/templates.html", "New Connection")

    def _wizard(self, request):
        return request.session.get(WIZARD_SESSION_KEY) or {"general": {}, "certificate": {}}

    def _save_wizard(self, request, state):
        request.session[WIZARD_SESSION_KEY] = state
        request.session.modified = True

    def wizard_general_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "GET" and "new" in request.GET:
            request.session.pop(WIZARD_SESSION_KEY, None)
        state = self._wizard(request)
        if request.method == "POST":
            form = forms.IssuerGeneralForm(request.POST)
            # Keep what was typed, valid or not: Previous/Next never lose input.
            state["general"] = {k: request.POST.get(k, "") for k in ("name", "issuer", "alias")}
            state["general_done"] = form.is_valid()
            self._save_wizard(request, state)
            if form.is_valid():
                return HttpResponseRedirect(self.url("wizard_certificate"))
        elif state["general"]:
            # Coming back (Previous, or after a failed Finish): show what was typed, and any problem with it.
            form = forms.IssuerGeneralForm(state["general"])
            form.is_valid()
        else:
            form = forms.IssuerGeneralForm()
        return self.render_page(
            request, "admin/exchange/trustedtokenissuer/wizard.html", "New trusted token issuer",
            step=1, form=form,
        )

    def wizard_validate_view(self, request):
        """Step 1's errors as JSON, for inline validation while typing (the same form as Next)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return JsonResponse({"error": "POST only"}, status=405)
        form = forms.IssuerGeneralForm(request.POST)
        form.is_valid()
        return JsonResponse({"errors": {field: list(errors) for field, errors in form.errors.items()}})

    def wizard_certificate_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        state = self._wizard(request)
        general = state.get("general") or {}
        if not state.get("general_done"):
            messages.info(request, "Complete the general settings first.")
            return HttpResponseRedirect(self.url("wizard_general"))
        context = {"step": 2, "general": general}
        if request.method != "POST":
            form = forms.IssuerCertificateForm(initial=state.get("certificate") or {"mode": "jwks"})
            return self.render_page(request, "admin/exchange/trustedtokenissuer/wizard.html",
                                    "New trusted token issuer", form=form, **context)

        action = request.POST.get("action", "finish")
        form = forms.IssuerCertificateForm(request.POST, request.FILES)
        valid = form.is_valid()
        # form.data holds the converted PEM when a file was uploaded.
        state["certificate"] = {k: form.data.get(k, "") for k in ("mode", "jwks_uri", "pem")}
        if getattr(form, "info", None) is not None:
            state["certificate"]["pem"] = form.info.pem
        self._save_wizard(request, state)
        if action == "previous":
            return HttpResponseRedirect(self.url("wizard_general"))
        mode = form.cleaned_data.get("mode") if valid else request.POST.get("mode")
        newly_shown = False
        if valid and mode == form.MODE_PEM:
            context["certificate"] = form.info
            newly_shown = state.get("reviewed") != form.info.fingerprint
            state["reviewed"] = form.info.fingerprint
            self._save_wizard(request, state)
        if action == "check" and valid and mode == form.MODE_JWKS:
            try:
                keys = key_sources.parse_jwks(key_sources.fetch_jwks(form.cleaned_data["jwks_uri"]))
                if not keys:
                    raise key_sources.KeySourceError("The JWKS holds no usable signing keys.")
                context["jwks_keys"] = keys
            except key_sources.KeySourceError as exc:
                context["jwks_problem"] = exc.detail
        elif action == "finish" and valid:
            # A certificate is saved only after its details were shown once.
            if newly_shown:
                context["review_notice"] = True
            else:
                try:
                    trusted = flows.create_trusted_token_issuer(
                        name=general["name"], issuer=general["issuer"], alias=general.get("alias", ""),
                        jwks_uri=form.cleaned_data["jwks_uri"] if mode == form.MODE_JWKS else "",
                        certificates=[form.info.pem] if mode == form.MODE_PEM else [],
                    )
                except ValidationError as exc:
                    step1 = {f: e for f, e in exc.message_dict.items() if f in ("name", "issuer", "alias")}
                    for field, errors in step1.items():
                        form.add_error(None, f"General settings — {field}: {' '.join(errors)}")
                    rest = {f: e for f, e in exc.message_dict.items() if f not in step1}
                    if rest:
                        forms.add_flow_errors(
                            form, ValidationError(rest),
                            {"certificates": "pem" if mode == form.MODE_PEM else "jwks_uri"},
                        )
                else:
                    request.session.pop(WIZARD_SESSION_KEY, None)
                    messages.success(request, f"Trusted token issuer “{trusted.name}” created.")
                    return HttpResponseRedirect(self.url("change", trusted.pk))
        return self.render_page(request, "admin/exchange/trustedtokenissuer/wizard.html",
                                "New trusted token issuer", form=form, **context)

    # -- The issuer page with tabs --------------------------------------------------

    @method_decorator(sensitive_post_parameters("token"))
    def change_view(self, request, object_id, form_url="", extra_context=None):
        trusted = get_object_or_404(TrustedTokenIssuer, pk=object_id)
        if not self.has_view_permission(request, trusted):
            raise PermissionDenied
        tab = _tab(request, ISSUER_TABS)
        can_change = self.has_change_permission(request, trusted)
        if request.method == "POST" and not can_change:
            raise PermissionDenied
        handler = getattr(self, f"_issuer_{tab}")
        context = handler(request, trusted)
        if isinstance(context, HttpResponseRedirect):
            return context
        return self.render_page(
            request, "admin/exchange/trustedtokenissuer/detail.html", trusted.name,
            original=trusted, tab=tab, tabs=ISSUER_TABS, can_change=can_change,
            has_delete_permission=self.has_delete_permission(request, trusted), **context,
        )

    def _redirect_tab(self, trusted, tab):
        return HttpResponseRedirect(self.url("change", trusted.pk) + "?tab=" + tab)

    def _issuer_settings_form(self, request, trusted, form_class, tab, done):
        """A tab that edits some of the issuer's fields through flows.update_trusted_token_issuer."""
        if request.method != "POST":
            return form_class(instance=trusted)
        form = form_class(request.POST, instance=TrustedTokenIssuer.objects.get(pk=trusted.pk))
        if form.is_valid():
            try:
                flows.update_trusted_token_issuer(trusted, **{f: form.cleaned_data[f] for f in form.Meta.fields})
            except ValidationError as exc:
                forms.add_flow_errors(form, exc)
            else:
                messages.success(request, done)
                return self._redirect_tab(trusted, tab)
        return form

    def _issuer_general(self, request, trusted):
        form = self._issuer_settings_form(request, trusted, forms.IssuerGeneralForm, "general",
                                          "Trusted token issuer updated.")
        return form if isinstance(form, HttpResponseRedirect) else {"form": form}

    def _issuer_certificates(self, request, trusted):
        add_form = forms.AddCertificateForm()
        jwks_form = forms.JwksUriForm(instance=trusted)
        context = {}
        if request.method == "POST":
            action = request.POST.get("action")
            if action == "remove":
                cert = get_object_or_404(IssuerCertificate, pk=request.POST.get("certificate"), trusted_issuer=trusted)
                try:
                    flows.remove_certificate(cert)
                except ValidationError as exc:
                    messages.error(request, flows.first_error(exc).removeprefix("certificates: "))
                else:
                    key_sources.clear_caches()
                    messages.success(request, "Certificate removed.")
                return self._redirect_tab(trusted, "certificates")
            if action == "add":
                add_form = forms.AddCertificateForm(request.POST, request.FILES)
                if add_form.is_valid():
                    try:
                        flows.add_certificate(trusted, add_form.info.pem)
                    except ValidationError as exc:
                        forms.add_flow_errors(add_form, exc, {"certificates": "pem"})
                    else:
                        key_sources.clear_caches()
                        messages.success(request, "Certificate added.")
                        return self._redirect_tab(trusted, "certificates")
            elif action == "jwks":
                jwks_form = forms.JwksUriForm(request.POST, instance=TrustedTokenIssuer.objects.get(pk=trusted.pk))
                if jwks_form.is_valid():
                    try:
                        flows.update_trusted_token_issuer(trusted, jwks_uri=jwks_form.cleaned_data["jwks_uri"])
                    except ValidationError as exc:
                        forms.add_flow_errors(jwks_form, exc)
                    else:
                        messages.success(request, "JWKS endpoint updated.")
                        return self._redirect_tab(trusted, "certificates")
            elif action == "check" and trusted.jwks_uri:
                try:
                    context["jwks_keys"] = key_sources.refresh_jwks(trusted)
                except key_sources.KeySourceError as exc:
                    context["jwks_problem"] = exc.detail
        return {"add_form": add_form, "jwks_form": jwks_form, "certificates": trusted.certificates.all(), **context}

    def _issuer_validation(self, request, trusted):
        form = self._issuer_settings_form(request, trusted, forms.IssuerValidationForm, "validation",
                                          "Validation settings updated.")
        if isinstance(form, HttpResponseRedirect):
            return form
        from .conf import exchange_settings

        defaults = {
            "allowed_algorithms": ", ".join(exchange_settings.DEFAULT_ALLOWED_ALGORITHMS),
            "clock_skew": exchange_settings.DEFAULT_CLOCK_SKEW_SECONDS,
            "max_token_age": exchange_settings.DEFAULT_MAX_TOKEN_AGE_SECONDS,
        }
        return {"form": form, "defaults": defaults}

    def _issuer_test(self, request, trusted):
        report = None
        if request.method == "POST":
            form = forms.TestTokenForm(request.POST)
            if form.is_valid():
                report = explain_subject_token(form.cleaned_data["token"])
        else:
            form = forms.TestTokenForm()
        other_issuer = report is not None and report.issuer is not None and report.issuer.pk != trusted.pk
        return {"form": form, "report": report, "other_issuer": other_issuer, "causes": CAUSES}

    def _issuer_activity(self, request, trusted):
        if request.method == "POST":
            raise PermissionDenied
        events = ExchangeEvent.objects.filter(trusted_issuer=trusted).select_related("application")[:50]
        return {"events": events, "causes": CAUSES}

    def toggle_view(self, request, object_id):
        trusted = get_object_or_404(TrustedTokenIssuer, pk=object_id)
        if not self.has_change_permission(request, trusted):
            raise PermissionDenied
        if request.method == "POST":
            flows.set_issuer_enabled(trusted, not trusted.enabled)
            messages.success(request, f"Trusted token issuer {'enabled' if trusted.enabled else 'disabled'}.")
            return HttpResponseRedirect(self.url("change", trusted.pk))
        return self.render_page(
            request, "admin/exchange/trustedtokenissuer/toggle_confirm.html",
            ("Disable" if trusted.enabled else "Enable") + f" {trusted.name}?", original=trusted,
        )


# DOT registers its own admin for the (swapped) Application model; ours replaces it.
for model in (Application, get_access_token_model(), get_refresh_token_model()):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(Application)
class ApplicationAdmin(ConsoleModelAdmin):
    list_display = ("name", "application_type", "client_id", "grant_types")
    list_filter = ("application_type",)
    search_fields = ("name", "client_id")

    @admin.display(description="Allowed grant types")
    def grant_types(self, obj):
        labels = dict(Application.GrantType.choices)
        return ", ".join(str(labels.get(g, g)) for g in obj.allowed_grant_types) or "—"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/secret/", view(self.regenerate_view), name="exchange_application_regenerate"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Applications", **(extra_context or {})})

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = forms.ApplicationCreateForm(request.POST)
            if form.is_valid():
                try:
                    application, secret = flows.create_application(
                        name=form.cleaned_data["name"], application_type=form.cleaned_data["application_type"],
                    )
                except ValidationError as exc:
                    forms.add_flow_errors(form, exc)
                else:
                    request.session[SECRET_SESSION_KEY % application.pk] = secret
                    messages.success(request, f"Application “{application.name}” created.")
                    return HttpResponseRedirect(self.url("change", application.pk))
        else:
            form = forms.ApplicationCreateForm(initial={"application_type": Application.Type.STANDARD})
        types = [(value, label, APPLICATION_TYPE_HELP[value]) for value, label in Application.Type.choices]
        return self.render_page(request, "admin/exchange/application/add.html", "New Application",
                                form=form, types=types)

    @method_decorator(sensitive_post_parameters("client_secret", "subject_token"))
    def change_view(self, request, object_id, form_url="", extra_context=None):
        application = get_object_or_404(Application, pk=object_id)
        if not self.has_view_permission(request, application):
            raise PermissionDenied
        tab = _tab(request, APPLICATION_TABS)
        can_change = self.has_change_permission(request, application)
        if request.method == "POST" and not can_change:
            raise PermissionDenied
        context = getattr(self, f"_application_{tab}")(request, application)
        if isinstance(context, HttpResponseRedirect):
            return context
        return self.render_page(
            request, "admin/exchange/application/detail.html", application.name,
            original=application, tab=tab, tabs=APPLICATION_TABS, can_change=can_change,
            has_delete_permission=self.has_delete_permission(request, application),
            new_secret=request.session.pop(SECRET_SESSION_KEY % application.pk, None), **context,
        )

    def _redirect_tab(self, application, tab):
        return HttpResponseRedirect(self.url("change", application.pk) + "?tab=" + tab)

    def _application_general(self, request, application):
        if request.method == "POST":
            form = forms.ApplicationGeneralForm(request.POST, instance=Application.objects.get(pk=application.pk))
            if form.is_valid():
                try:
                    flows.update_application(
                        application, actor=request.user, name=form.cleaned_data["name"],
                        allowed_scopes=form.cleaned_data["allowed_scopes"],
                        resource_server=form.cleaned_data["resource_server"],
                        service_account_permissions=form.cleaned_data["service_account_permissions"],
                    )
                except ValidationError as exc:
                    forms.add_flow_errors(form, exc)
                else:
                    messages.success(request, "Application updated.")
                    return self._redirect_tab(application, "general")
        else:
            form = forms.ApplicationGeneralForm(instance=application)
        return {"form": form}

    def _application_protocol(self, request, application):
        if request.method == "POST":
            form = forms.ProtocolForm(request.POST, application=application)
            if form.is_valid():
                try:
                    flows.update_application(
                        Application.objects.get(pk=application.pk), actor=request.user,
                        allowed_grant_types=form.cleaned_data["allowed_grant_types"],
                        access_token_lifetime=form.cleaned_data["access_token_lifetime"],
                        allowed_audiences=form.cleaned_data["allowed_audiences"],
                    )
                except ValidationError as exc:
                    forms.add_flow_errors(form, exc)
                else:
                    messages.success(request, "Application updated.")
                    return self._redirect_tab(application, "protocol")
        else:
            form = forms.ProtocolForm(application=application, initial={
                "allowed_grant_types": application.allowed_grant_types,
                "access_token_lifetime": application.access_token_lifetime,
                "allowed_audiences": "\n".join(application.allowed_audiences or []),
            })
        checked = form["allowed_grant_types"].value() or []
        grants = [
            {"value": value, "label": label, "checked": value in checked,
             "disabled": value == TOKEN_EXCHANGE and form.token_exchange_disabled}
            for value, label in Application.GrantType.choices
        ]
        linked_issuers = application.trusted_issuers.order_by("name")
        return {"form": form, "grants": grants, "spa_reason": form.SPA_REASON, "linked_issuers": linked_issuers}

    def _application_try(self, request, application):
        token_url = request.build_absolute_uri(reverse("oauth2:token"))
        curl = "\n".join([
            f"curl --location '{token_url}' \\",
            "  --header 'Content-Type: application/x-www-form-urlencoded' \\",
            f"  --header 'Authorization: Basic <base64({application.client_id}:<client_secret>)>' \\",
            "  --data-urlencode 'subject_token=<jwt_token>' \\",
            f"  --data-urlencode 'subject_token_type={JWT_TYPE}' \\",
            f"  --data-urlencode 'requested_token_type={ACCESS_TOKEN_TYPE}' \\",
            f"  --data-urlencode 'grant_type={TOKEN_EXCHANGE}'",
        ])
        basic = f"printf '%s:%s' '{application.client_id}' '<client_secret>' | base64 -w0"
        context = {"curl": curl, "token_url": token_url, "basic": basic}
        if request.method == "POST":
            form = forms.TryItOutForm(request.POST)
            if form.is_valid():
                context["result"] = send_exchange(
                    request, application, form.cleaned_data["client_secret"], form.cleaned_data["subject_token"],
                )
        else:
            form = forms.TryItOutForm()
        return {"form": form, **context}

    def regenerate_view(self, request, object_id):
        application = get_object_or_404(Application, pk=object_id)
        if not self.has_change_permission(request, application):
            raise PermissionDenied
        if request.method == "POST":
            try:
                secret = flows.regenerate_secret(application, actor=request.user)
            except ValidationError as exc:  # a public client: it has no secret
                messages.error(request, flows.first_error(exc).removeprefix("client_secret: "))
            else:
                request.session[SECRET_SESSION_KEY % application.pk] = secret
                messages.success(request, "Client secret regenerated. The previous secret no longer works.")
            return HttpResponseRedirect(self.url("change", application.pk))
        return self.render_page(request, "admin/exchange/application/regenerate_confirm.html",
                                f"Regenerate the client secret of {application.name}?", original=application)


def send_exchange(request, application, client_secret, subject_token):
    """Run a token exchange through the real token endpoint (same view, grant and validation).

    Returns the status, the JSON answer and, on success, the issued token's
    header and claims verified with this server's published keys.
    """
    from .views import TokenView

    auth = base64.b64encode(f"{quote_plus(application.client_id)}:{quote_plus(client_secret)}".encode()).decode()
    body = urlencode({
        "grant_type": TOKEN_EXCHANGE, "subject_token": subject_token,
        "subject_token_type": JWT_TYPE, "requested_token_type": ACCESS_TOKEN_TYPE,
    })
    # An in-process request to the token endpoint's own view: nothing is re-implemented here.
    internal = RequestFactory().post(
        reverse("oauth2:token"), body, content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Basic {auth}", HTTP_HOST=request.get_host(),
        secure=request.is_secure(), REMOTE_ADDR=request.META.get("REMOTE_ADDR", "127.0.0.1"),
    )
    response = TokenView.as_view()(internal)
    try:
        answer = json.loads(response.content)
    except ValueError:
        answer = {"error": "server_error", "error_description": "The token endpoint did not answer JSON."}
    result = {"status": response.status_code, "answer": json.dumps(answer, indent=2), "ok": response.status_code == 200}
    if result["ok"]:
        token = answer.get("access_token", "")
        header = jwt.get_unverified_header(token)
        keys = jwt.PyJWKSet.from_dict(signing.published_jwks())
        key = next(k for k in keys.keys if k.key_id == header.get("kid"))
        claims = jwt.decode(token, key, algorithms=[header["alg"]], options={"verify_aud": False},
                            issuer=project_settings.CONSOLE_ISSUER)
        result["header"] = json.dumps(header, indent=2)
        result["claims"] = json.dumps(claims, indent=2)
    else:
        result["error"] = answer.get("error", "")
        result["error_description"] = answer.get("error_description", "")
    return result


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
