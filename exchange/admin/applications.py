"""Applications: their list, New Application, the page with tabs, the secret's regeneration, *Try it out*."""

import base64
import json
from urllib.parse import quote_plus

import jwt
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from .. import flows, grant, signing
from ..conf import project_settings
from ..models import Application
from ..protocol import ACCESS_TOKEN_TYPE, JWT_TYPE, TOKEN_EXCHANGE
from . import forms
from .base import ConsoleModelAdmin

SECRET_SESSION_KEY = "console:new_secret:%s"
APPLICATION_TYPE_HELP = {
    Application.Type.STANDARD: "An OAuth 2.0 / OpenID Connect client of any kind that keeps a secret.",
    Application.Type.MOBILE: "A native app for phones and tablets.",
    Application.Type.TRADITIONAL: "A server-rendered web application that keeps a client secret.",
    Application.Type.SPA: "A JavaScript app in the browser: a public client without a secret.",
}


class ApplicationAdmin(ConsoleModelAdmin):
    list_display = ("name", "application_type", "client_id", "grant_types")
    list_filter = ("application_type",)
    search_fields = ("name", "client_id")

    tabs = (("general", "General"), ("protocol", "Protocol"), ("try", "Try it out"))
    detail_template = "admin/exchange/application/detail.html"
    sensitive_parameters = ("client_secret", "subject_token")
    console_name, object_label = "Applications", "application"
    add_label = "New Application"

    def tab_views(self):
        return {"general": self.general_tab, "protocol": self.protocol_tab, "try": self.try_tab}

    def detail_context(self, request, application):
        # A new secret is shown once, on the page the creation or regeneration leads to.
        return {"new_secret": request.session.pop(SECRET_SESSION_KEY % application.pk, None)}

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

    def delete_object(self, obj):
        flows.delete_application(obj)

    def deletion_consequence(self, obj):
        return "Its client ID and secret stop working at once, and so do the access tokens issued to it."

    def add_view(self, request, form_url="", extra_context=None):
        """New Application: a name and a type; the secret is shown once on the application's page."""
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
                    self.log_addition(request, application, [{"added": {}}])
                    request.session[SECRET_SESSION_KEY % application.pk] = secret
                    messages.success(request, f"Application “{application.name}” created.")
                    return HttpResponseRedirect(self.url("change", application.pk))
        else:
            form = forms.ApplicationCreateForm(initial={"application_type": Application.Type.STANDARD})
        types = [(value, label, APPLICATION_TYPE_HELP[value]) for value, label in Application.Type.choices]
        return self.render_page(request, "admin/exchange/application/add.html", "New Application",
                                form=form, types=types)

    def general_tab(self, request, application):
        if request.method != "POST":
            return {"form": forms.ApplicationGeneralForm(instance=application)}
        form = forms.ApplicationGeneralForm(request.POST, instance=Application.objects.get(pk=application.pk))
        saved = self.save_tab(
            request, application, form, "general", "Application updated.",
            lambda data: flows.update_application(
                application, actor=request.user, name=data["name"], allowed_scopes=data["allowed_scopes"],
                resource_server=data["resource_server"],
                service_account_permissions=data["service_account_permissions"],
            ),
        )
        return saved or {"form": form}

    def protocol_tab(self, request, application):
        initial = {
            "allowed_grant_types": application.allowed_grant_types,
            "access_token_lifetime": application.access_token_lifetime,
            "bound_to_subject_token": application.bound_to_subject_token,
            "allowed_audiences": "\n".join(application.allowed_audiences or []),
            "linked_accounts": application.linked_accounts,
            "allow_delegation": application.allow_delegation,
            "actor_issuers": list(application.actor_issuers.values_list("pk", flat=True)),
            "redirect_uris": "\n".join(application.redirect_uris.split()),
            "skip_authorization": application.skip_authorization,
        }
        if request.method == "POST":
            # The current values as initial too: History names the fields that changed.
            form = forms.ProtocolForm(request.POST, application=application, initial=initial)
            saved = self.save_tab(
                request, application, form, "protocol", "Application updated.",
                lambda data: flows.update_application(
                    Application.objects.get(pk=application.pk), actor=request.user,
                    allowed_grant_types=data["allowed_grant_types"],
                    access_token_lifetime=data["access_token_lifetime"],
                    bound_to_subject_token=data["bound_to_subject_token"],
                    allowed_audiences=data["allowed_audiences"],
                    linked_accounts=data["linked_accounts"],
                    allow_delegation=data["allow_delegation"], actor_issuers=list(data["actor_issuers"]),
                    redirect_uris=data["redirect_uris"], skip_authorization=data["skip_authorization"],
                ),
            )
            if saved:
                return saved
        else:
            form = forms.ProtocolForm(application=application, initial=initial)
        checked = form["allowed_grant_types"].value() or []
        grants = [
            {"value": value, "label": label, "checked": value in checked,
             "disabled": value == TOKEN_EXCHANGE and form.token_exchange_disabled}
            for value, label in Application.GrantType.choices
        ]
        linked_issuers = application.trusted_issuers.order_by("name")
        return {"form": form, "grants": grants, "spa_reason": form.SPA_REASON, "linked_issuers": linked_issuers}

    def try_tab(self, request, application):
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
        """A new client secret (after a confirmation page), shown once; written to the application's History."""
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
                self.log_change(request, application, "Client secret regenerated.")
                messages.success(request, "Client secret regenerated. The previous secret no longer works.")
            return HttpResponseRedirect(self.url("change", application.pk))
        return self.render_page(request, "admin/exchange/application/regenerate_confirm.html",
                                f"Regenerate the client secret of {application.name}?", original=application)


def send_exchange(request, application, client_secret, subject_token):
    """Run a token exchange through the token endpoint's own function (``grant.exchange``).

    The same checks as the endpoint, with the client authenticated by HTTP Basic as a client
    would. The endpoint's client-authentication throttle is not involved: a failed try never
    counts against the administrator's address. Returns the status, the JSON answer and, on
    success, the issued token's header and claims verified with this server's published keys.
    """
    form = QueryDict(mutable=True)
    form.update({
        "grant_type": TOKEN_EXCHANGE, "subject_token": subject_token,
        "subject_token_type": JWT_TYPE, "requested_token_type": ACCESS_TOKEN_TYPE,
    })
    credentials = f"{quote_plus(application.client_id)}:{quote_plus(client_secret)}".encode()
    response = grant.exchange(
        form, authorization="Basic " + base64.b64encode(credentials).decode(),
        client_address=request.META.get("REMOTE_ADDR", ""), http_request=None,
    )
    answer = json.loads(response.content)  # grant.exchange answers JSON, success or refusal
    result = {"status": response.status_code, "answer": json.dumps(answer, indent=2), "ok": response.status_code == 200}
    if result["ok"]:
        token = answer["access_token"]
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
