"""What the server writes, read-only: exchange events (with each cause explained), tokens, signing keys.

The console reads these records and never destroys them (issue 13), as django-oauth-toolkit's own
admin does: tokens are never raw-deleted, they are revoked with an action that calls DOT's revoke
path (which keeps the refresh-token tombstones reuse protection needs); signing keys change only
by *Rotate signing key*, the rotation ``rotate_signing_key`` runs, so the active key can never be
removed or edited; exchange events, the audit trail, are deleted only by ``prune_audit``. Every
revocation and rotation writes a ``LogEntry``.
"""

import datetime

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import ngettext
from oauth2_provider.admin import mask_credential
from oauth2_provider.models import revoke_access_token

from ..models import ExchangeEvent
from ..signing import RotationError, rotate_signing_key
from ..accounts import CAUSES as LINK_CAUSES
from ..grant import DELEGATION_CAUSES
from ..subject_token import ACTOR_CAUSES, CAUSES
from .base import RecordAdmin

#: Days after which the signing key in use is due for rotation (``manage.py rotate_signing_key``).
KEY_ROTATION_DAYS = 90

#: What to do about each refusal cause, for the administrator reading the event.
REMEDIES = {
    "malformed": "The caller sent something that is not a signed JWT: check what it passes as subject_token.",
    "unsupported_header": "The token's header uses a parameter such as jku, x5u or crit: ask the issuer to sign "
                          "without it.",
    "unknown_issuer": "Register the token's iss as a trusted token issuer (Connections), or check its exact spelling "
                      "(scheme, trailing slash).",
    "issuer_disabled": "Enable the trusted token issuer if its tokens should be accepted again.",
    "issuer_not_allowed": "Link this application on the issuer's Validation tab, or remove the issuer's links.",
    "wrong_type": "Ask the issuer for tokens with the typ the issuer's Validation tab requires, or change it there.",
    "algorithm_not_allowed": "Allow the algorithm on the issuer's Validation tab if the issuer really signs with it.",
    "key_source_unavailable": "The issuer's JWKS endpoint could not be read: check it on the issuer's Certificates "
                              "tab (Fetch keys now).",
    "unknown_key": "The issuer signs with a key this console does not know: fetch the JWKS again, or add its new "
                   "certificate on the Certificates tab.",
    "certificate_expired": "Add the issuer's current certificate on its Certificates tab and remove the expired one.",
    "bad_signature": "The token was altered or signed with another key: check the issuer's registered keys.",
    "missing_claim": "Ask the issuer to include iss, sub, aud, exp and iat (and jti when required).",
    "invalid_claim": "A claim has the wrong type or an impossible value: ask the issuer to correct its tokens.",
    "expired": "The caller sent an expired token: it must exchange tokens soon after it receives them.",
    "not_yet_valid": "The token's nbf or iat is in the future: check the clocks of the issuer and of this server.",
    "too_old": "The token was issued longer ago than the issuer's maximum age (Validation tab) allows.",
    "audience_mismatch": "The token's aud must contain this console's issuer value (shown on the home page) "
                         "or the issuer's alias.",
    "replayed": "Each subject token can be exchanged once: the caller must get a fresh token for every exchange.",
    "replay_check_unavailable": "The shared cache is unreachable: check Redis (/readyz); the caller may retry.",
    "invalid_client": "The client ID or secret is wrong: regenerate the secret on the application's page if it "
                      "was lost.",
    "unauthorized_client": "Enable Token Exchange on the application's Protocol tab (never possible for "
                           "single-page applications).",
    "invalid_request": "The request lacks a parameter or uses an unsupported value: compare it with the "
                       "application's Try it out tab.",
    "invalid_target": "The requested audience or resource is not in the application's allowed audiences "
                      "(Protocol tab).",
    "invalid_scope": "The requested scope is not allowed for the application (General tab).",
    "lookup_attributes_missing": "The token carries none of the issuer's lookup attributes (Linking tab): ask the "
                                 "issuer to include them, or link the identity by hand.",
    "local_account_required": "The application requires a linked local account (Protocol tab): link the external "
                              "identity to a local user on the issuer's Linking tab, or choose Use instead of Require.",
    "local_user_disabled": "The linked local user is disabled: enable them on their Users page, or remove the link.",
    "local_user_not_linkable": "The linked local user is now staff, a superuser or a service account, who are never "
                               "linked: remove the link on their Users page.",
    "invalid_delegation_claim": "The token's act or may_act claim is malformed or too large: ask its issuer to "
                                "correct it.",
    "act_chain_too_deep": "The token has been delegated more times than this server accepts (5 actors).",
    "delegation_not_allowed": "Turn on Allow delegation on the application's Protocol tab if it should act for "
                              "its users.",
    "actor_issuer_not_allowed": "Choose the actor token's issuer under Actor token issuers on the application's "
                                "Protocol tab.",
    "actor_not_permitted": "The subject token's may_act names another party: the actor must be that party.",
    "actor_is_subject": "The caller sent the same token as subject and actor.",
    "actor_token_type_missing": "The caller must send actor_token_type with its actor_token (RFC 8693 §2.1).",
    "actor_token_missing": "The caller sent actor_token_type without an actor_token.",
    "actor_token_type_unsupported": "actor_token_type must be the jwt, access_token or id_token URN.",
    "scope_not_in_subject_token": "A delegated token gets only scopes the subject token holds: ask for fewer.",
    "actor_tokens_revoked": "The actor token issuer's tokens were revoked while this exchange was under way; "
                            "the caller may retry with a fresh actor token.",
    "actor_replayed": "The actor token's issuer rejects reused jti values: the actor needs a fresh token for each "
                      "exchange, or turn off Reject reused jti for that issuer.",
}

#: Plain sentences for the causes that are not about the subject token itself.
CLIENT_CAUSES = {
    "invalid_client": "The client could not be authenticated.",
    "unauthorized_client": "The application is not allowed to use token exchange.",
    "invalid_request": "The request was incomplete or used an unsupported parameter.",
    "invalid_target": "The requested audience or resource is not allowed for this application.",
    "invalid_scope": "The requested scope is not allowed for this application.",
}


def explain_cause(cause):
    """(what happened, what to do) in plain language for an event's cause code; ("", "") for none.

    An actor token's cause is ``actor_<cause>`` (delegation): its sentence names the actor token.
    """
    if not cause:
        return "", ""
    if cause.startswith("actor_") and cause.removeprefix("actor_") in ACTOR_CAUSES:
        base = cause.removeprefix("actor_")
        return (ACTOR_CAUSES[base], REMEDIES.get(cause) or REMEDIES.get(base, "Test the actor token on its issuer's "
                "Test a token tab (presented as an actor token) to see which check refuses it."))
    return (CAUSES.get(cause) or DELEGATION_CAUSES.get(cause) or CLIENT_CAUSES.get(cause) or LINK_CAUSES.get(cause)
            or "The exchange was refused.",
            REMEDIES.get(cause, "Test the token on the issuer's Test a token tab to see which check refuses it."))


def when(value):
    """A moment in the console's one format (2026-11-28 07:31:05 UTC); an em dash for none."""
    return date_format(timezone.localtime(value), "DATETIME_FORMAT") if value else "—"


def link(request, admin_name, obj, text=None):
    """A link to ``obj``'s console page, or its name alone for a user without access (an em dash for none)."""
    if obj is None:
        return "—"
    url = reverse(f"admin:{admin_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


def has_model_change_permission(admin_page, request):
    """Revoking tokens or rotating keys needs the model's change permission (which no edit form uses here)."""
    opts = admin_page.model._meta
    return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


class ExchangeEventAdmin(RecordAdmin):
    console_name, object_label = "Exchange events", "exchange event"
    list_display = ("when", "outcome_badge", "cause_text", "trusted_issuer", "application", "subject")
    list_display_links = ("when",)
    list_filter = ("outcome", "cause", "trusted_issuer")
    search_fields = ("subject", "subject_jti", "issued_jti", "actor_subject")
    list_select_related = ("trusted_issuer", "application")

    @admin.display(description="Time", ordering="created")
    def when(self, obj):
        return when(obj.created)

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_badge(self, obj):
        ok = obj.outcome == ExchangeEvent.Outcome.ISSUED
        return format_html('<span class="console-badge {}">{}</span>', "ok" if ok else "bad", obj.get_outcome_display())

    @admin.display(description="Cause")
    def cause_text(self, obj):
        return explain_cause(obj.cause)[0] or "—"

    def record_title(self, obj):
        return f"{obj.get_outcome_display()} exchange, {when(obj.created)}"

    def record_note(self, obj):
        what, todo = explain_cause(obj.cause)
        return {"ok": not obj.cause, "what": what or "An access token was issued.", "todo": todo, "cause": obj.cause}

    def record_rows(self, request, obj):
        return [
            ("Time", when(obj.created)),
            ("Outcome", obj.get_outcome_display()),
            ("Application", link(request, "exchange_application", obj.application) if obj.application
             else obj.client_id or "—"),
            ("Trusted token issuer", link(request, "exchange_trustedtokenissuer", obj.trusted_issuer)
             if obj.trusted_issuer else obj.issuer or "—"),
            ("Subject (sub)", obj.subject or "—"),
            ("Subject token jti", obj.subject_jti or "—"),
            *((("Actor (act)", obj.actor_subject or "—"),
               ("Actor token issuer", link(request, "exchange_trustedtokenissuer", obj.actor_trusted_issuer)
                if obj.actor_trusted_issuer else obj.actor_issuer or "—"),
               ("Actor token jti", obj.actor_jti or "—"))
              if obj.actor_subject or obj.actor_trusted_issuer_id or obj.actor_issuer else ()),
            ("Issued token jti", obj.issued_jti or "—"),
            ("Cause code", obj.cause or "—"),
            ("Request ID", obj.request_id or "—"),
        ]


class AccessTokenAdmin(RecordAdmin):
    console_name, object_label = "Access tokens", "access token"
    list_display = ("token_id", "masked_token", "application", "subject", "trusted_issuer", "expires_at")
    list_filter = ("application",)
    # Never the token itself (it would land in ?q= and access logs).
    search_fields = ("jti", "subject")
    list_select_related = ("application", "trusted_issuer")
    actions = ("revoke_tokens",)

    has_revoke_permission = has_model_change_permission

    @admin.display(description="Token")
    def masked_token(self, obj):
        return mask_credential(obj.token)

    @admin.action(description="Revoke selected access tokens", permissions=["revoke"])
    def revoke_tokens(self, request, queryset):
        """DOT's revoke path per token (its refresh token too), each with a LogEntry written before the row goes."""
        revoked = 0
        for token in queryset:
            self.log_change(request, token, "Revoked.")
            revoke_access_token(token)
            revoked += 1
        self.message_user(request, ngettext("Revoked %d access token.", "Revoked %d access tokens.", revoked) % revoked)

    @admin.display(description="Token ID (jti)", ordering="jti")
    def token_id(self, obj):
        return obj.jti or f"(no jti, row {obj.pk})"

    @admin.display(description="Expires", ordering="expires")
    def expires_at(self, obj):
        return when(obj.expires)

    def record_title(self, obj):
        return f"Access token {obj.jti}" if obj.jti else "Access token"

    def record_rows(self, request, obj):
        return [
            ("Token ID (jti)", obj.jti or "—"),
            ("Token", mask_credential(obj.token)),
            ("Application", link(request, "exchange_application", obj.application)),
            ("Subject (sub)", obj.subject or "—"),
            ("Trusted token issuer", link(request, "exchange_trustedtokenissuer", obj.trusted_issuer)),
            ("Scope", obj.scope or "—"),
            ("Issued", when(obj.created)),
            ("Expires", when(obj.expires)),
        ]


class RefreshTokenAdmin(RecordAdmin):
    console_name, object_label = "Refresh tokens", "refresh token"
    list_display = ("row", "masked_token", "application", "subject", "trusted_issuer", "created_at", "revoked_at")
    list_filter = ("application",)
    search_fields = ("subject",)
    list_select_related = ("application", "trusted_issuer")
    actions = ("revoke_tokens",)

    has_revoke_permission = has_model_change_permission

    @admin.display(description="Row", ordering="pk")
    def row(self, obj):
        return obj.pk

    @admin.display(description="Token")
    def masked_token(self, obj):
        return mask_credential(obj.token)

    @admin.display(description="Created", ordering="created")
    def created_at(self, obj):
        return when(obj.created)

    @admin.display(description="Revoked", ordering="revoked")
    def revoked_at(self, obj):
        return when(obj.revoked)

    @admin.action(description="Revoke selected refresh tokens", permissions=["revoke"])
    def revoke_tokens(self, request, queryset):
        """``RefreshToken.revoke()`` per live token: its access token goes, the row stays as a tombstone."""
        revoked = 0
        for token in queryset.filter(revoked__isnull=True):
            token.revoke()
            self.log_change(request, token, "Revoked.")
            revoked += 1
        self.message_user(request, ngettext("Revoked %d refresh token.", "Revoked %d refresh tokens.", revoked) % revoked)

    def record_title(self, obj):
        return f"Refresh token {obj.pk}"

    def record_rows(self, request, obj):
        return [
            ("Token", mask_credential(obj.token)),
            ("Application", link(request, "exchange_application", obj.application)),
            ("Subject (sub)", obj.subject or "—"),
            ("Trusted token issuer", link(request, "exchange_trustedtokenissuer", obj.trusted_issuer)),
            ("Created", when(obj.created)),
            ("Revoked", when(obj.revoked)),
        ]


class SigningKeyAdmin(RecordAdmin):
    console_name, object_label = "Signing keys", "signing key"
    list_display = ("kid", "algorithm", "state", "created_at", "retires")
    list_display_links = ("kid",)

    has_revoke_permission = has_model_change_permission

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
                self.log_change(request, row, f"Superseded by {key.kid}; published until {when(row.retire_after)}.")
            self.message_user(request, f"New signing key {key.kid} published; it signs from {when(key.activate_at or key.created)}.")
        return HttpResponseRedirect(self.url("changelist"))

    @admin.display(description="State")
    def state(self, obj):
        return key_state(obj)

    @admin.display(description="Created", ordering="created")
    def created_at(self, obj):
        return when(obj.created)

    @admin.display(description="Retires")
    def retires(self, obj):
        return when(obj.retire_after)

    def record_title(self, obj):
        return f"Signing key {obj.kid}"

    def record_note(self, obj):
        if rotation_due(obj):
            return {"ok": False, "what": f"This key has signed tokens for more than {KEY_ROTATION_DAYS} days.",
                    "todo": "Rotate it (Rotate signing key on the list of keys, or manage.py rotate_signing_key): it publishes the next key now and signs with it "
                            "after the publish-ahead delay."}
        return None

    def record_rows(self, request, obj):
        return [
            ("Key ID (kid)", obj.kid), ("Algorithm", obj.algorithm), ("State", key_state(obj)),
            ("Created", when(obj.created)), ("Signs from", when(obj.activate_at or obj.created)),
            ("Retires", when(obj.retire_after)), ("Retired", when(obj.retired_at)),
        ]


def key_state(key, now=None):
    """A signing key's state in words: signs new tokens, published ahead, superseded or retired.

    A rotation publishes the next key with ``activate_at`` and gives every older key a ``retire_after``.
    """
    now = now or timezone.now()
    if key.retired_at or not key.active:
        return "Retired"
    if key.activate_at and key.activate_at > now:
        return "Published ahead"
    if key.retire_after:
        return "Superseded, published until it retires"
    return "Signs new tokens"


def rotation_due(key, now=None):
    """Whether the key that signs new tokens has done so for more than ``KEY_ROTATION_DAYS``."""
    now = now or timezone.now()
    if key_state(key, now) != "Signs new tokens":
        return False
    return (key.activate_at or key.created) < now - datetime.timedelta(days=KEY_ROTATION_DAYS)
