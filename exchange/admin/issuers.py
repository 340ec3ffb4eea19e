"""Connections: trusted token issuers — their list, the New Connection wizard and the page with tabs."""

import datetime

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from .. import accounts, claim_mapping, flows, grant, key_sources
from ..conf import exchange_settings, project_settings
from ..models import Application, ExchangeEvent, IssuerCertificate, LinkedIdentity, TrustedTokenIssuer
from ..subject_token import CAUSES, explain_subject_token
from . import dashboard, forms
from .base import ConsoleModelAdmin
from .records import explain_cause, when

WIZARD_SESSION_KEY = "console:issuer_wizard"
WIZARD_TEMPLATE = "admin/exchange/trustedtokenissuer/wizard.html"
WIZARD_TITLE = "New trusted token issuer"
GENERAL_FIELDS = ("name", "issuer", "alias")


def _check_jwks(uri):
    """The wizard's "Check": the keys the JWKS endpoint serves, or the exact problem with it."""
    try:
        keys = key_sources.parse_jwks(key_sources.fetch_jwks(uri))
        if not keys:
            raise key_sources.KeySourceError("The JWKS holds no usable signing keys.")
    except key_sources.KeySourceError as exc:
        return {"jwks_problem": exc.detail}
    return {"jwks_keys": keys}


def _finish_errors(form, exc):
    """The creation's errors on step 2's form: step 1's fields named in sentences, the key source's on its field."""
    step1 = {f: e for f, e in exc.message_dict.items() if f in GENERAL_FIELDS}
    for field, errors in step1.items():
        form.add_error(None, f"General settings — {field}: {' '.join(errors)}")
    rest = {f: e for f, e in exc.message_dict.items() if f not in step1}
    if rest:
        key_field = "pem" if form.cleaned_data["mode"] == form.MODE_PEM else "jwks_uri"
        forms.add_flow_errors(form, ValidationError(rest), {"certificates": key_field})


def _seen(value):
    """A stored ISO time (known_keys) as a datetime, or None."""
    try:
        return datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def certificate_warning(not_after, now=None):
    """"Expired" or "Expires in N days" within CERTIFICATE_WARNING_DAYS, else "" (no expiry, or far off)."""
    if not_after is None:
        return ""
    now = now or timezone.now()
    if not_after <= now:
        return "Expired"
    left = not_after - now
    if left > datetime.timedelta(days=dashboard.CERTIFICATE_WARNING_DAYS):
        return ""
    days = left.days
    return "Expires today" if days == 0 else f"Expires in {days} day{'s' if days != 1 else ''}"


def fetch_failing(trusted):
    """Whether a JWKS issuer's last fetch failed and none has succeeded since (dashboard.failing_issuers, as a query)."""
    return bool(trusted.jwks_uri and trusted.key_fetch_error) and (
        trusted.keys_fetched_at is None
        or (trusted.key_fetch_failed_at is not None and trusted.key_fetch_failed_at > trusted.keys_fetched_at))


def key_health(trusted, now=None):
    """The Certificates tab's key health: the keys known (persisted at each fetch), the last fetch and
    its outcome, when the keys are next refetched, and each certificate's expiry warning."""
    now = now or timezone.now()
    keys = [
        {**k, "first_seen": _seen(k.get("first_seen")), "last_seen": _seen(k.get("last_seen"))}
        for k in trusted.known_keys or [] if isinstance(k, dict)
    ]
    failing = fetch_failing(trusted)
    next_fetch = None
    if trusted.keys_fetched_at:
        next_fetch = trusted.keys_fetched_at + datetime.timedelta(seconds=exchange_settings.JWKS_CACHE_SECONDS)
    certificates = [
        {"cert": cert, "warning": certificate_warning(cert.not_after, now)} for cert in trusted.certificates.all()
    ]
    return {"known_keys": keys, "fetch_failing": failing, "next_fetch": next_fetch, "next_fetch_due": (
        next_fetch is not None and next_fetch <= now), "certificates": certificates}


def _revoked_sentence(result):
    whose = f" of subject {result.subject}" if result.subject else ""
    return (f"Revoked {result.access_tokens} access token(s) and {result.refresh_tokens} refresh token(s)"
            f" issued from the tokens{whose}.")


class TrustedTokenIssuerAdmin(ConsoleModelAdmin):
    list_display = ("display_name", "issuer", "key_source_label", "status", "key_status")
    list_display_links = ("display_name",)
    list_filter = ("enabled",)
    search_fields = ("name", "issuer", "alias")

    tabs = (
        ("general", "General"), ("certificates", "Certificates"), ("validation", "Validation"),
        ("linking", "Linking"), ("claims", "Claim mapping"), ("test", "Test a token"), ("activity", "Activity"),
    )
    detail_template = "admin/exchange/trustedtokenissuer/detail.html"
    sensitive_parameters = ("token",)
    console_name, object_label = "Connections", "trusted token issuer"
    add_label, add_page = "New Connection", "templates"

    def tab_views(self):
        return {
            "general": self.general_tab, "certificates": self.certificates_tab,
            "validation": self.validation_tab, "linking": self.linking_tab, "claims": self.claims_tab,
            "test": self.test_tab, "activity": self.activity_tab,
        }

    @admin.display(description="Name", ordering="name")
    def display_name(self, obj):
        if obj.is_demo:
            badge = '<span class="console-badge bad">Demo: local key, not for production</span>'
            return format_html("{} " + badge, obj.name)
        return obj.name

    @admin.display(description="Key source")
    def key_source_label(self, obj):
        return "JWKS endpoint" if obj.jwks_uri else "PEM certificates"

    @admin.display(description="Keys")
    def key_status(self, obj):
        """JWKS: the last fetch's outcome; PEM: the soonest certificate expiry, warned within 30 days."""
        if not obj.jwks_uri:
            expiries = [c.not_after for c in obj.certificates.all() if c.not_after]
            if not expiries:
                return "—"
            warning = certificate_warning(min(expiries))
            if warning:
                return format_html('<span class="console-badge bad">{}</span> {}', warning, when(min(expiries)))
            return format_html('<span class="status-ok">valid until {}</span>', when(min(expiries)))
        if fetch_failing(obj):
            return format_html('<span class="console-badge bad">Fetch failing</span> {}', obj.key_fetch_error)
        if obj.keys_fetched_at:
            return format_html('<span class="status-ok">fetched {}</span>', when(obj.keys_fetched_at))
        return "not fetched yet"

    @admin.display(description="Status", ordering="enabled")
    def status(self, obj):
        return format_html('<span class="console-badge {}">{}</span>', "ok" if obj.enabled else "bad",
                           "Enabled" if obj.enabled else "Disabled")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("certificates")

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
            path("certificate/inspect/", view(self.inspect_view), name="exchange_trustedtokenissuer_inspect"),
            path("<int:object_id>/enabled/", view(self.toggle_view), name="exchange_trustedtokenissuer_toggle"),
            path("<int:object_id>/revoke-tokens/", view(self.revoke_tokens_view),
                 name="exchange_trustedtokenissuer_revoke_tokens"),
            *super().get_urls(),
        ]

    def delete_object(self, obj):
        flows.delete_trusted_token_issuer(obj)

    def deletion_consequence(self, obj):
        return (f"The token endpoint will refuse every token from {obj.issuer}, and the access tokens "
                "exchanged for its tokens stop working.")

    def add_view(self, request, form_url="", extra_context=None):
        # Django's add form is replaced by the template cards and the wizard.
        return HttpResponseRedirect(self.url("templates"))

    # -- New Connection: template cards, then the two-step wizard ------------------

    def _require_add(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied

    def templates_view(self, request):
        self._require_add(request)
        return self.render_page(request, "admin/exchange/trustedtokenissuer/templates.html", "New Connection")

    def _wizard(self, request):
        return request.session.get(WIZARD_SESSION_KEY) or {"general": {}, "certificate": {}}

    def _save_wizard(self, request, state):
        request.session[WIZARD_SESSION_KEY] = state
        request.session.modified = True

    def _render_wizard(self, request, **context):
        return self.render_page(request, WIZARD_TEMPLATE, WIZARD_TITLE, **context)

    def wizard_general_view(self, request):
        """Step 1: name, issuer, alias. What was typed is kept, valid or not: Previous/Next never lose input."""
        self._require_add(request)
        if request.method == "GET" and "new" in request.GET:
            request.session.pop(WIZARD_SESSION_KEY, None)
        state = self._wizard(request)
        if request.method == "POST":
            form = forms.IssuerGeneralForm(request.POST)
            state["general"] = {k: request.POST.get(k, "") for k in GENERAL_FIELDS}
            state["general_done"] = form.is_valid()
            self._save_wizard(request, state)
            if state["general_done"]:
                return HttpResponseRedirect(self.url("wizard_certificate"))
        elif state["general"]:
            # Coming back (Previous, or after a failed Finish): show what was typed, and any problem with it.
            form = forms.IssuerGeneralForm(state["general"])
            form.is_valid()
        else:
            form = forms.IssuerGeneralForm()
        return self._render_wizard(request, step=1, form=form)

    def wizard_validate_view(self, request):
        """Step 1's errors as JSON, for inline validation while typing (the same form as Next)."""
        self._require_add(request)
        if request.method != "POST":
            return JsonResponse({"error": "POST only"}, status=405)
        form = forms.IssuerGeneralForm(request.POST)
        form.is_valid()
        return JsonResponse({"errors": {field: list(errors) for field, errors in form.errors.items()}})

    def inspect_view(self, request):
        """A pasted or uploaded certificate's details (or its problem) as an HTML fragment in JSON, shown as
        soon as it is pasted or chosen (console.js); the same checks as Finish and Add certificate."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        if request.method != "POST":
            return JsonResponse({"error": "POST only"}, status=405)
        form = forms.AddCertificateForm(request.POST, request.FILES)
        if not form.is_valid():
            return JsonResponse({"ok": False, "errors": [str(e) for e in form.errors.get("pem", [])]})
        html = render_to_string("admin/exchange/trustedtokenissuer/certificate_details.html",
                                {"certificate": form.info}, request=request)
        return JsonResponse({"ok": True, "html": html, "pem": form.info.pem})

    def detail_context(self, request, obj):
        return {"console_issuer": project_settings.CONSOLE_ISSUER}

    def wizard_certificate_view(self, request):
        """Step 2: the key source. Previous, Check (JWKS) or Finish (create, once a certificate was shown)."""
        self._require_add(request)
        state = self._wizard(request)
        if not state.get("general_done"):
            messages.info(request, "Complete the general settings first.")
            return HttpResponseRedirect(self.url("wizard_general"))
        context = {"step": 2, "general": state["general"]}
        if request.method != "POST":
            form = forms.IssuerCertificateForm(initial=state.get("certificate") or {"mode": "jwks"})
            return self._render_wizard(request, form=form, **context)
        form = forms.IssuerCertificateForm(request.POST, request.FILES)
        valid = form.is_valid()
        self._remember_certificate(request, state, form)
        action = request.POST.get("action", "finish")
        if action == "previous":
            return HttpResponseRedirect(self.url("wizard_general"))
        if action == "discover":
            return self._wizard_discover(request, state, context)
        if valid:
            response = self._wizard_action(request, state, form, action, context)
            if response is not None:
                return response
        return self._render_wizard(request, form=form, **context)

    def _wizard_discover(self, request, state, context):
        """Discover: the JWKS URL and algorithms from the issuer's OpenID configuration, into step 2's form."""
        data = request.POST.copy()
        try:
            found = flows.discovered_issuer_settings(state["general"]["issuer"], data.get("preset", ""))
        except ValidationError as exc:
            context["discovery_problem"] = " ".join(exc.message_dict.get("issuer", exc.messages))
        else:
            data["mode"], data["jwks_uri"] = "jwks", found["jwks_uri"]
            state["discovered"] = found
            context["discovered"] = found
        form = forms.IssuerCertificateForm(data)
        form.is_valid()
        self._remember_certificate(request, state, form)
        return self._render_wizard(request, form=form, **context)

    def _remember_certificate(self, request, state, form):
        """Keep step 2's input in the session (form.data holds the converted PEM when a file was uploaded)."""
        state["certificate"] = {k: form.data.get(k, "") for k in ("mode", "jwks_uri", "pem", *form.condition_fields)}
        if getattr(form, "info", None) is not None:
            state["certificate"]["pem"] = form.info.pem
        self._save_wizard(request, state)

    def _wizard_action(self, request, state, form, action, context):
        """A valid step 2: check the JWKS, show the certificate, or finish (one Finish creates the issuer).

        A response, or None to show the page again (with the keys found or the certificate's details)."""
        pem_mode = form.cleaned_data["mode"] == form.MODE_PEM
        if pem_mode:
            context["certificate"] = form.info  # shown again when the Finish is refused
        if action == "finish":
            return self._wizard_finish(request, state, form)
        if action == "check" and not pem_mode:
            context.update(_check_jwks(form.cleaned_data["jwks_uri"]))
        return None

    def _wizard_finish(self, request, state, form):
        """Create the issuer (one flow, one LogEntry); None, with the errors on the form, when it is refused."""
        general, pem_mode = state["general"], form.cleaned_data["mode"] == form.MODE_PEM
        discovered = state.get("discovered") or {}
        options = {}
        if not pem_mode and discovered.get("jwks_uri") == form.cleaned_data["jwks_uri"]:
            options["allowed_algorithms"] = discovered["allowed_algorithms"]  # what Discover found and showed
        try:
            trusted = flows.create_trusted_token_issuer(
                name=general["name"], issuer=general["issuer"], alias=general.get("alias", ""),
                jwks_uri="" if pem_mode else form.cleaned_data["jwks_uri"],
                certificates=[form.info.pem] if pem_mode else [],
                condition=form.cleaned_data.get("condition", ""), preset=form.cleaned_data.get("preset", ""),
                **options,
            )
        except ValidationError as exc:
            _finish_errors(form, exc)
            return None
        self.log_addition(request, trusted, [{"added": {}}])
        request.session.pop(WIZARD_SESSION_KEY, None)
        messages.success(request, f"Trusted token issuer “{trusted.name}” created.")
        return HttpResponseRedirect(self.url("change", trusted.pk))

    # -- The issuer page's tabs ---------------------------------------------------------

    def _settings_tab(self, request, trusted, form_class, tab, done):
        """A tab that edits some of the issuer's fields through flows.update_trusted_token_issuer."""
        if request.method != "POST":
            return form_class(instance=trusted)
        form = form_class(request.POST, instance=TrustedTokenIssuer.objects.get(pk=trusted.pk))
        return self.save_tab(
            request, trusted, form, tab, done,
            lambda data: flows.update_trusted_token_issuer(trusted, **{f: data[f] for f in form.Meta.fields}),
        ) or form

    def general_tab(self, request, trusted):
        form = self._settings_tab(request, trusted, forms.IssuerGeneralForm, "general", "Trusted token issuer updated.")
        return form if isinstance(form, HttpResponseRedirect) else {"form": form}

    def certificates_tab(self, request, trusted):
        actions = {"remove": self._remove_certificate, "add": self._add_certificate,
                   "jwks": self._update_jwks, "check": self._fetch_keys}
        action = actions.get(request.POST.get("action")) if request.method == "POST" else None
        context = {"add_form": forms.AddCertificateForm(), "jwks_form": forms.JwksUriForm(instance=trusted)}
        if action is not None:
            answer = action(request, trusted)
            if isinstance(answer, HttpResponseRedirect):
                return answer
            context.update(answer)
            trusted.refresh_from_db()  # a fetch just recorded its outcome and keys
        return {**context, **key_health(trusted)}

    def _remove_certificate(self, request, trusted):
        cert = get_object_or_404(IssuerCertificate, pk=request.POST.get("certificate"), trusted_issuer=trusted)
        try:
            flows.remove_certificate(cert)
        except ValidationError as exc:
            messages.error(request, flows.first_error(exc).removeprefix("certificates: "))
        else:
            self.log_related(request, trusted, "deleted", cert)
            messages.success(request, "Certificate removed.")
        return self.redirect_tab(trusted, "certificates")

    def _add_certificate(self, request, trusted):
        form = forms.AddCertificateForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                cert = flows.add_certificate(trusted, form.info.pem)
            except ValidationError as exc:
                forms.add_flow_errors(form, exc, {"certificates": "pem"})
            else:
                self.log_related(request, trusted, "added", cert)
                messages.success(request, "Certificate added.")
                return self.redirect_tab(trusted, "certificates")
        return {"add_form": form}

    def _update_jwks(self, request, trusted):
        form = forms.JwksUriForm(request.POST, instance=TrustedTokenIssuer.objects.get(pk=trusted.pk))
        saved = self.save_tab(
            request, trusted, form, "certificates", "JWKS endpoint updated.",
            lambda data: flows.update_trusted_token_issuer(trusted, jwks_uri=data["jwks_uri"]),
        )
        return saved or {"jwks_form": form}

    def _fetch_keys(self, request, trusted):
        if not trusted.jwks_uri:
            return {}
        try:
            keys = flows.refresh_issuer_keys(trusted)
        except key_sources.KeySourceError as exc:
            return {"jwks_problem": exc.detail}
        return {"jwks_keys": keys, "jwks_fetched": len(keys)}

    def validation_tab(self, request, trusted):
        form = self._settings_tab(request, trusted, forms.IssuerValidationForm, "validation",
                                  "Validation settings updated.")
        if isinstance(form, HttpResponseRedirect):
            return form
        defaults = {
            "allowed_algorithms": ", ".join(exchange_settings.DEFAULT_ALLOWED_ALGORITHMS),
            "clock_skew": exchange_settings.DEFAULT_CLOCK_SKEW_SECONDS,
            "max_token_age": exchange_settings.DEFAULT_MAX_TOKEN_AGE_SECONDS,
        }
        return {"form": form, "defaults": defaults}

    def linking_tab(self, request, trusted):
        """Implicit account linking's settings, and the identities of this issuer linked to local users."""
        action = request.POST.get("action") if request.method == "POST" else None
        link_form = forms.LinkIdentityForm()
        if action == "link":
            link_form = forms.LinkIdentityForm(request.POST)
            if link_form.is_valid():
                try:
                    link = flows.link_identity(trusted, link_form.cleaned_data["subject"], link_form.cleaned_data["username"],
                                        actor=request.user)
                except ValidationError as exc:
                    forms.add_flow_errors(link_form, exc, {"user": "username"})
                else:
                    self.log_related(request, trusted, "added", link)
                    messages.success(request, "Identity linked.")
                    return self.redirect_tab(trusted, "linking")
        elif action == "unlink":
            link = get_object_or_404(LinkedIdentity, pk=request.POST.get("link"), trusted_issuer=trusted)
            flows.unlink_identity(link, actor=request.user)
            self.log_related(request, trusted, "deleted", link)
            messages.success(request, "Link removed; the tokens exchanged through it were revoked.")
            return self.redirect_tab(trusted, "linking")
        if action in (None, "link"):
            form = forms.IssuerLinkingForm(instance=trusted)
        else:
            form = self._settings_tab(request, trusted, forms.IssuerLinkingForm, "linking", "Linking settings updated.")
            if isinstance(form, HttpResponseRedirect):
                return form
        links = trusted.linked_identities.select_related("user").order_by("subject")[:200]
        return {"form": form, "link_form": link_form, "links": links, "trusted_lookups": accounts.lookup_descriptions(trusted)}

    def claims_tab(self, request, trusted):
        """The claims of this issuer's tokens carried into issued tokens (claim_mapping.py), through the flow."""
        if request.method != "POST":
            form = forms.ClaimMappingsForm(mappings=trusted.claim_mappings)
        else:
            form = forms.ClaimMappingsForm(request.POST, mappings=trusted.claim_mappings)
            saved = self.save_tab(
                request, trusted, form, "claims", "Claim mapping updated.",
                lambda data: flows.update_trusted_token_issuer(trusted, claim_mappings=data["claim_mappings"]),
            )
            if saved:
                return saved
        return {"form": form, "claim_types": claim_mapping.TYPES, "limits": {
            "mappings": claim_mapping.MAX_MAPPINGS, "string": claim_mapping.MAX_STRING_LENGTH,
            "items": claim_mapping.MAX_LIST_ITEMS, "total": claim_mapping.MAX_TOTAL_BYTES,
        }, "reserved": sorted(claim_mapping.RESERVED_TARGETS)}

    def test_tab(self, request, trusted):
        report = delegation_refusal = role = None
        if request.method == "POST":
            form = forms.TestTokenForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                role, application = data["role"] or "subject", data["application"]
                report = explain_subject_token(data["token"], token_type=data["token_type"] or None, role=role,
                                               client=application)
                if role == "actor" and application is not None:
                    delegation_refusal = grant.client_may_delegate(application)
        else:
            form = forms.TestTokenForm(initial={"role": "subject"})
        other_issuer = report is not None and report.issuer is not None and report.issuer.pk != trusted.pk
        linking = None
        if report is not None and report.ok and role == "subject":
            # The grant's linking step, as an application using linked accounts would meet it (a subject
            # token only: an actor token's sub is never resolved to a local user).
            linking = accounts.explain(report.issuer, report.claims, Application.LinkedAccounts.USE)
        return {"form": form, "report": report, "other_issuer": other_issuer, "causes": CAUSES,
                "delegation_refusal": delegation_refusal, "linking": linking}

    def activity_tab(self, request, trusted):
        if request.method == "POST":
            raise PermissionDenied
        events = list(ExchangeEvent.objects.filter(trusted_issuer=trusted).select_related("application")[:50])
        for event in events:
            event.explanation = explain_cause(event.cause)[0]
        return {"events": events}

    def toggle_view(self, request, object_id):
        """Disable or enable (after a confirmation page); written to the issuer's History."""
        trusted = get_object_or_404(TrustedTokenIssuer, pk=object_id)
        if not self.has_change_permission(request, trusted):
            raise PermissionDenied
        if request.method == "POST":
            revoked = flows.set_issuer_enabled(trusted, not trusted.enabled, user=request.user,
                                               revoke=request.POST.get("revoke_tokens") == "on")
            self.log_change(request, trusted, "Enabled." if trusted.enabled else "Disabled.")
            messages.success(request, f"Trusted token issuer {'enabled' if trusted.enabled else 'disabled'}."
                             + (f" {_revoked_sentence(revoked)}" if revoked else ""))
            return HttpResponseRedirect(self.url("change", trusted.pk))
        live = flows.revoke_tokens(trusted, dry_run=True) if trusted.enabled else None
        return self.render_page(
            request, "admin/exchange/trustedtokenissuer/toggle_confirm.html",
            ("Disable" if trusted.enabled else "Enable") + f" {trusted.name}?", original=trusted, live=live,
        )

    def revoke_tokens_view(self, request, object_id):
        """Revocation by provenance: count (the subject search), then revoke after a confirmation."""
        trusted = get_object_or_404(TrustedTokenIssuer, pk=object_id)
        if not self.has_change_permission(request, trusted):
            raise PermissionDenied
        form = forms.RevokeTokensForm(request.POST if request.method == "POST" else request.GET or None)
        live = None
        if form.is_bound and form.is_valid():
            subject = form.cleaned_data["subject"]
            if request.method == "POST":
                result = flows.revoke_tokens(trusted, subject, user=request.user)
                messages.success(request, _revoked_sentence(result))
                return HttpResponseRedirect(self.url("change", trusted.pk))
            live = flows.revoke_tokens(trusted, subject, dry_run=True)
        return self.render_page(
            request, "admin/exchange/trustedtokenissuer/revoke_tokens.html", f"Revoke tokens issued from {trusted.name}",
            original=trusted, form=form, live=live,
        )
