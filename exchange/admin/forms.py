"""Console forms: what administrators type, checked by the models' and flows' own rules.

Forms only shape input (and keep what was typed); the rules themselves — unique
names, no stray whitespace, JWKS URL policy, certificate checks, which
application may use which grant — live on the models and in ``flows``.
"""

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .. import certificates, claim_mapping, conditions, flows, presets, service_accounts
from ..conf import ASYMMETRIC_ALGORITHMS
from ..models import Application, Scope, TrustedTokenIssuer, validate_jwks_uri
from ..subject_token import SUBJECT_TOKEN_TYPES, storable

PEM_FILE_TYPES = ".pem,.crt,.cer,.der"


def add_flow_errors(form, exc, field_map=None):
    """Put a flows ValidationError on the form's fields (unknown fields become non-field errors)."""
    field_map = field_map or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.error_dict.items():
        target = field_map.get(field, field)
        form.add_error(target if target in form.fields else None, errors)


class _NoStripMixin:
    """Keep leading/trailing whitespace so the model can say it is there (instead of hiding it)."""

    no_strip = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.no_strip:
            if name in self.fields:
                self.fields[name].strip = False


class IssuerGeneralForm(_NoStripMixin, forms.ModelForm):
    """Wizard step 1 and the General tab: name, issuer, alias (unique, no stray whitespace)."""

    no_strip = ("name", "issuer", "alias")

    class Meta:
        model = TrustedTokenIssuer
        fields = ("name", "issuer", "alias")
        widgets = {
            "name": forms.TextInput(attrs={"placeholder": "Enter a name for the trusted token issuer"}),
            "issuer": forms.TextInput(attrs={"placeholder": "https://idp.example.com"}),
            "alias": forms.TextInput(attrs={"placeholder": "Optional: another aud value this issuer uses for this console"}),
        }

    #: The unique fields, and how a clash is told: naming the trusted token issuer it clashes with.
    CLASHES = {
        "name": "A trusted token issuer named “{value}” already exists.",
        "issuer": "The issuer {value} already exists: it is the trusted token issuer “{other}”.",
    }

    def validate_unique(self):
        """Unique name and issuer, each clash naming the issuer it clashes with (not Django's generic sentence)."""
        for field, sentence in self.CLASHES.items():
            value = self.cleaned_data.get(field)
            if not value or field in self._errors:
                continue
            other = TrustedTokenIssuer.objects.filter(**{field: value}).exclude(pk=self.instance.pk).first()
            if other is not None:
                self.add_error(field, ValidationError(sentence.format(value=value, other=other.name), code="unique"))


class CertificateInputMixin(forms.Form):
    """A PEM certificate pasted or a PEM/DER file uploaded; cleaned to ``info`` (CertificateInfo)."""

    pem = forms.CharField(
        label=_("PEM certificate"), required=False, strip=False, max_length=certificates.MAX_CERTIFICATE_INPUT,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 64, "spellcheck": "false",
                                     "placeholder": "-----BEGIN CERTIFICATE-----"}),
        help_text=_("Paste the certificate, or upload a file below."),
    )
    pem_file = forms.FileField(
        label=_("Certificate file"), required=False,
        widget=forms.ClearableFileInput(attrs={"accept": PEM_FILE_TYPES}),
        help_text=_("A .pem, .crt, .cer or .der file; DER files are converted to PEM for you."),
    )

    def clean_certificate(self):
        """Turn the upload or the pasted text into PEM (kept in the form) and inspect it."""
        upload = self.cleaned_data.get("pem_file")
        text = self.cleaned_data.get("pem") or ""
        try:
            if upload is not None:
                if upload.size > certificates.MAX_CERTIFICATE_INPUT:
                    raise ValidationError(_("The file is too large for a certificate."), code="too_large")
                pem = flows.certificate_to_pem(upload.read())
                # Show the converted PEM in the text box: the upload itself is not kept between requests.
                self.data = self.data.copy()
                self.data[self.add_prefix("pem")] = pem
                self.cleaned_data["pem"] = pem
            elif text.strip():
                pem = flows.certificate_to_pem(text)
            else:
                raise ValidationError(_("Paste a PEM certificate or upload a certificate file."), code="required")
            info = certificates.inspect_pem(pem)
        except certificates.CertificateError as exc:
            raise ValidationError(str(exc), code="bad_certificate") from None
        except ValidationError as exc:
            raise ValidationError(exc.messages, code="bad_certificate") from None
        self.cleaned_data["pem"] = info.pem
        return info


class ConditionFieldsMixin(forms.Form):
    """The admission condition: a guided clause (claim equals / is one of / starts with) or the expert field.

    The guided clause writes the expression (conditions.guided_condition) when the expert field is
    empty; the model validates whatever results (compiles, within the cost bound, required for presets).
    """

    preset = forms.ChoiceField(
        label=_("Shared issuer preset"), choices=presets.CHOICES, required=False,
        help_text=_("GitHub Actions, GitLab.com, Terraform Cloud and Kubernetes issuers sign for every "
                    "customer of the platform: with a preset, a condition is required."),
    )
    guided_claim = forms.CharField(
        label=_("Condition: claim"), required=False, max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "repository_owner_id"}),
    )
    guided_operator = forms.ChoiceField(
        label=_("Condition: operator"), choices=list(conditions.GUIDED_OPERATORS.items()), required=False,
    )
    guided_values = forms.CharField(
        label=_("Condition: value"), required=False, max_length=conditions.MAX_LENGTH, strip=False,
        help_text=_("For is one of, separate the values with commas."),
    )
    condition = forms.CharField(
        label=_("Admission condition (CEL)"), required=False, strip=False, max_length=conditions.MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 64, "spellcheck": "false",
                                     "placeholder": 'claims.repository_owner_id == "123456"'}),
        help_text=_("Expert: a CEL expression over the verified claims; a token is exchanged only when it is "
                    "true. Left empty, the guided clause above writes it."),
    )

    condition_fields = ("preset", "guided_claim", "guided_operator", "guided_values", "condition")

    def clean(self):
        cleaned = super().clean()
        claim = (cleaned.get("guided_claim") or "").strip()
        expression = cleaned.get("condition") or ""
        if claim and expression.strip():
            self.add_error("condition", _("Use the guided clause or the expression, not both."))
        elif claim:
            operator = cleaned.get("guided_operator") or "equals"
            raw = cleaned.get("guided_values") or ""
            values = [v.strip() for v in raw.split(",")] if operator == "one_of" else [raw.strip()]
            try:
                cleaned["condition"] = conditions.guided_condition([(claim, operator, values)])
            except conditions.ConditionError as exc:
                self.add_error("guided_claim", str(exc))
        return cleaned


class IssuerCertificateForm(ConditionFieldsMixin, CertificateInputMixin):
    """Wizard step 2: a JWKS endpoint or a PEM certificate."""

    MODE_JWKS = "jwks"
    MODE_PEM = "pem"

    mode = forms.ChoiceField(
        label=_("Mode of certificate configuration"),
        choices=[(MODE_JWKS, _("JWKS endpoint")), (MODE_PEM, _("Use PEM certificate"))],
        initial=MODE_JWKS, widget=forms.RadioSelect,
    )
    jwks_uri = forms.CharField(
        label=_("JWKS endpoint URL"), required=False, strip=False, max_length=2048,
        widget=forms.URLInput(attrs={"placeholder": "https://idp.example.com/.well-known/jwks.json", "size": 60}),
        help_text=_("The console uses this URL to obtain the keys that verify tokens from this issuer."),
    )

    field_order = ("mode", "jwks_uri", "pem", "pem_file")

    def clean_jwks_uri(self):
        value = self.cleaned_data["jwks_uri"]
        if self.data.get(self.add_prefix("mode")) != self.MODE_JWKS:
            return ""
        if not value:
            raise ValidationError(_("Enter the JWKS endpoint URL."), code="required")
        if value != value.strip():
            raise ValidationError(_("Remove the leading or trailing whitespace."), code="whitespace")
        forms.URLField(assume_scheme="https").clean(value)
        validate_jwks_uri(value)
        return value

    def clean(self):
        cleaned = super().clean()
        self.info = None
        if cleaned.get("mode") == self.MODE_PEM:
            try:
                self.info = self.clean_certificate()
            except ValidationError as exc:
                self.add_error("pem", exc)
        return cleaned


class AddCertificateForm(CertificateInputMixin):
    """Certificates tab: one more certificate (e.g. the issuer's next key)."""

    def clean(self):
        cleaned = super().clean()
        try:
            self.info = self.clean_certificate()
        except ValidationError as exc:
            self.info = None
            self.add_error("pem", exc)
        return cleaned


class JwksUriForm(_NoStripMixin, forms.ModelForm):
    no_strip = ("jwks_uri",)
    jwks_uri = forms.URLField(
        label=_("JWKS endpoint URL"), max_length=2048, assume_scheme="https",
        widget=forms.URLInput(attrs={"size": 60}),
    )

    class Meta:
        model = TrustedTokenIssuer
        fields = ("jwks_uri",)


class IssuerValidationForm(ConditionFieldsMixin, forms.ModelForm):
    """Validation tab: algorithms, clock skew, maximum token age, replay protection, admission condition."""

    allowed_algorithms = forms.MultipleChoiceField(
        label=_("Allowed signing algorithms"), choices=[(a, a) for a in ASYMMETRIC_ALGORITHMS],
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Tokens signed with any other algorithm are refused. none and HMAC are never accepted."),
    )

    class Meta:
        model = TrustedTokenIssuer
        fields = ("allowed_algorithms", "clock_skew", "max_token_age", "reject_replayed_jti", "require_jti",
                  "required_type", "condition", "preset", "applications")
        widgets = {"applications": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["applications"].queryset = Application.objects.order_by("name")
        self.fields["applications"].label = _("Linked applications")


class IssuerLinkingForm(forms.ModelForm):
    """Linking tab: implicit account linking's lookup attributes."""

    class Meta:
        model = TrustedTokenIssuer
        fields = ("link_lookup_primary", "link_lookup_secondary", "link_custom_claim")


class LinkIdentityForm(forms.Form):
    """Link an external identity of this issuer to a local user (by username)."""

    subject = forms.CharField(label=_("External subject (sub)"), max_length=255, strip=False,
                              help_text=_("The sub of the issuer's tokens for this person, exactly."))
    username = forms.CharField(label=_("Local user (username)"), max_length=150)

    def clean_username(self):
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: self.cleaned_data["username"]}).first()
        if user is None:
            raise ValidationError(_("No local user has this username."), code="no_user")
        return user


class ClaimMappingsForm(forms.Form):
    """Claim mapping tab: one row per mapping (source, target, type, required); empty rows are ignored.

    Only shapes the rows into the list the model validates (claim_mapping.validate_mappings): the
    rules — reserved targets, sizes, names — are the model's, as for the API and the commands.
    """

    EXTRA_ROWS = 3

    def __init__(self, data=None, *, mappings=()):
        mappings = list(mappings or [])
        if data is not None:
            try:
                rows = int(data.get("rows", ""))
            except ValueError:
                rows = 0
        else:
            rows = len(mappings) + self.EXTRA_ROWS
        self.row_count = max(1, min(rows, claim_mapping.MAX_MAPPINGS))
        initial = {}
        for index, mapping in enumerate(mappings[:self.row_count]):
            initial.update({f"source_{index}": mapping["source"], f"target_{index}": mapping["target"],
                            f"type_{index}": mapping["type"], f"required_{index}": mapping.get("required", False)})
        super().__init__(data, initial=initial)
        types = [("", "—")] + list(claim_mapping.TYPES.items())
        for index in range(self.row_count):
            self.fields[f"source_{index}"] = forms.CharField(
                label=_("Source claim %(n)s") % {"n": index + 1}, required=False, strip=False,
                max_length=claim_mapping.MAX_NAME_LENGTH * 2)
            self.fields[f"target_{index}"] = forms.CharField(
                label=_("Target claim %(n)s") % {"n": index + 1}, required=False, strip=False,
                max_length=claim_mapping.MAX_NAME_LENGTH * 2)
            self.fields[f"type_{index}"] = forms.ChoiceField(
                label=_("Type %(n)s") % {"n": index + 1}, required=False, choices=types)
            self.fields[f"required_{index}"] = forms.BooleanField(
                label=_("Required %(n)s") % {"n": index + 1}, required=False)

    def rows(self):
        """(source, target, type, required) bound fields per row, for the template."""
        return [(self[f"source_{i}"], self[f"target_{i}"], self[f"type_{i}"], self[f"required_{i}"])
                for i in range(self.row_count)]

    def clean(self):
        data = super().clean()
        mappings = []
        for index in range(self.row_count):
            source, target = data.get(f"source_{index}", ""), data.get(f"target_{index}", "")
            kind, required = data.get(f"type_{index}", ""), data.get(f"required_{index}", False)
            if not source and not target and not kind:
                continue
            mappings.append({"source": source, "target": target, "type": kind, "required": required})
        data["claim_mappings"] = mappings
        return data


class ScopeForm(_NoStripMixin, forms.ModelForm):
    """New Scope: the name clients request (the model checks its syntax and uniqueness) and a description."""

    no_strip = ("name",)

    class Meta:
        model = Scope
        fields = ("name", "description")

    def validate_unique(self):
        pass  # the flow reports it, with the model's message


class ScopeDescriptionForm(forms.ModelForm):
    """A scope's page: only its description changes (the name is what applications and tokens carry)."""

    class Meta:
        model = Scope
        fields = ("description",)


class RevokeTokensForm(forms.Form):
    """Revocation by provenance: every subject's tokens, or one external subject's."""

    subject = forms.CharField(
        label=_("External subject (sub)"), required=False, max_length=255, strip=False,
        help_text=_("The sub of the issuer's tokens, exactly. Empty: the tokens of every subject."),
    )

    def clean_subject(self):
        subject = self.cleaned_data["subject"]
        if subject and not storable(subject):
            raise ValidationError(_("Give the subject (sub) as issued."), code="subject")
        return subject or None


class TestTokenForm(forms.Form):
    token = forms.CharField(
        label=_("Subject token (JWT)"),
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "spellcheck": "false", "placeholder": "eyJ..."}),
        help_text=_("Checked with the same code as the token endpoint. Nothing is issued and the jti is not consumed."),
    )
    token_type = forms.ChoiceField(
        label=_("Sent as (subject_token_type)"), required=False,
        choices=[("", _("Not declared"))] + [(urn, urn) for urn in SUBJECT_TOKEN_TYPES],
        help_text=_("The type a client would declare: an ID token sent as an access token is refused."),
    )
    role = forms.ChoiceField(
        label=_("Presented as"), required=False, widget=forms.RadioSelect,
        choices=[("subject", _("Subject token")), ("actor", _("Actor token (delegation)"))],
        help_text=_("An actor token is checked by the same steps; with an application, its issuer must be one "
                    "the application accepts actor tokens from."),
    )
    application = forms.ModelChoiceField(
        label=_("For application"), required=False, queryset=Application.objects.order_by("name"),
        empty_label=_("Any (no application's policy)"),
        help_text=_("Also check the application's policy: its linked issuers for a subject token, its actor "
                    "token issuers and delegation setting for an actor token."),
    )


class ApplicationCreateForm(_NoStripMixin, forms.ModelForm):
    no_strip = ("name",)

    class Meta:
        model = Application
        fields = ("name", "application_type")
        widgets = {"application_type": forms.RadioSelect}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].required = True

    def clean_name(self):
        name = self.cleaned_data["name"]
        if name != name.strip():
            raise ValidationError(_("Remove the leading or trailing whitespace."), code="whitespace")
        return name

    def _post_clean(self):
        pass  # validated by flows.create_application in the view


class ApplicationGeneralForm(ApplicationCreateForm):
    """General tab. Adding console:manage or changing the service account's permissions is a grant:
    the flow refuses it (403) unless the signed-in user holds exchange.grant_management_scope and
    every permission given."""

    service_account_permissions = forms.MultipleChoiceField(
        label=_("Service account permissions"), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("With the console:manage scope, the application's bearer tokens act as its service account "
                    "and may do what these permissions allow. You can give only permissions you hold."),
    )

    class Meta:
        model = Application
        fields = ("name", "allowed_scopes", "resource_server")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["service_account_permissions"]
        field.choices = service_accounts.grantable_permissions()
        if self.instance.pk and service_accounts.has_management_scope(self.instance):
            field.initial = service_accounts.permission_names(self.instance.service_user)


class _KeptWhenAbsentChoiceField(forms.ChoiceField):
    """A choice that a form post without it leaves as it was (neither changed nor in History)."""

    def has_changed(self, initial, data):
        return data not in (None, "") and super().has_changed(initial, data)


class ProtocolForm(forms.Form):
    """Protocol tab: allowed grant types, redirect URLs and consent (Code), the access-token lifetime, audiences."""

    allowed_grant_types = forms.MultipleChoiceField(
        label=_("Allowed grant types"), required=False, choices=Application.GrantType.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    access_token_lifetime = forms.IntegerField(
        label=_("Access token lifetime (seconds)"), required=False, min_value=1,
        help_text=_("Empty: the server default."),
    )
    bound_to_subject_token = forms.BooleanField(
        label=_("Never outlive the subject token"), required=False,
        help_text=_("An exchanged token, its refresh token and the tokens refreshed from it expire no later "
                    "than the subject token: when a user's session ends at the issuer, so does their access here."),
    )
    linked_accounts = _KeptWhenAbsentChoiceField(
        label=_("Attribute resolution for linked accounts"), choices=Application.LinkedAccounts.choices,
        initial=Application.LinkedAccounts.DISABLED, required=False,  # not sent: unchanged
        help_text=_("Disabled: exchanged tokens are for the external identity. Use linked local account: for the "
                    "local user the external identity is linked to, when it is (their local subject, their roles' "
                    "scopes). Require linked local account: as Use, and an exchange without a link is refused."),
    )
    allowed_audiences = forms.CharField(
        label=_("Allowed audiences"), required=False, strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "spellcheck": "false"}),
        help_text=_("One per line: the values a token request may name in audience or resource. "
                    "Empty: requests may name none, and issued tokens are for this application (aud = client ID)."),
    )
    allow_delegation = forms.BooleanField(
        label=_("Allow delegation (actor tokens)"), required=False,
        help_text=_("Accept an actor_token beside the subject token (RFC 8693 delegation): the issued token names "
                    "the actor in its act claim. Off: requests with an actor_token are refused."),
    )
    actor_issuers = forms.ModelMultipleChoiceField(
        label=_("Actor token issuers"), required=False, queryset=TrustedTokenIssuer.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The trusted token issuers whose tokens this application may present as actor tokens. "
                    "None chosen: no actor token is accepted."),
    )

    redirect_uris = forms.CharField(
        label=_("Authorized redirect URLs"), required=False, strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "spellcheck": "false"}),
        help_text=_("One per line: where the Code grant may send users back after they sign in. A request's "
                    "redirect_uri must equal one of them exactly."),
    )
    skip_authorization = forms.BooleanField(
        label=_("First-party application: skip the consent page"), required=False,
        help_text=_("Users who sign in are sent back without being asked to allow the requested scopes. "
                    "Only for applications of this organization."),
    )

    def clean_redirect_uris(self):
        return " ".join(line.strip() for line in self.cleaned_data["redirect_uris"].splitlines() if line.strip())

    def clean_allowed_audiences(self):
        return [line.strip() for line in self.cleaned_data["allowed_audiences"].splitlines() if line.strip()]

    def clean_linked_accounts(self):
        return self.cleaned_data["linked_accounts"] or self.initial.get("linked_accounts") or \
            Application.LinkedAccounts.DISABLED

    SPA_REASON = _(
        "Token Exchange is not available for single-page applications: they are public clients "
        "and cannot authenticate to the token endpoint."
    )

    def __init__(self, *args, application, **kwargs):
        super().__init__(*args, **kwargs)
        self.application = application
        self.fields["actor_issuers"].queryset = TrustedTokenIssuer.objects.order_by("name")
        # Shown, but disabled, for single-page applications; the model refuses it in any case.
        self.token_exchange_disabled = application.application_type == Application.Type.SPA


class TryItOutForm(forms.Form):
    client_secret = forms.CharField(
        label=_("Client secret"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text=_("The token endpoint authenticates the application; the secret is not stored by this page."),
    )
    subject_token = forms.CharField(
        label=_("Subject token (JWT)"),
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80, "spellcheck": "false", "placeholder": "eyJ..."}),
    )
