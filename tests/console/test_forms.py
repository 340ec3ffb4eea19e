"""Every console form's validation errors, through the console views (Django test client)."""

import datetime
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from exchange.models import TOKEN_EXCHANGE, Application, TrustedTokenIssuer

from ..factories import certificate_der, certificate_pem, mint, private_key

pytestmark = pytest.mark.django_db

WIZARD = "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/"
STEP2 = WIZARD + "certificate/"


def issuer_url(trusted, tab):
    return f"/console/exchange/trustedtokenissuer/{trusted.pk}/change/?tab={tab}"


def app_url(application, tab):
    return f"/console/exchange/application/{application.pk}/change/?tab={tab}"


def errors(response, field):
    form = response.context["form"]
    return form.errors.get(field, [])


def start_wizard(console_admin_client, name="Partner IdP", issuer="https://idp.partner.test", alias=""):
    console_admin_client.get(WIZARD + "?new=1")
    response = console_admin_client.post(WIZARD, {"name": name, "issuer": issuer, "alias": alias})
    assert response.status_code == HTTPStatus.FOUND, response.context["form"].errors
    assert response["Location"] == STEP2


# -- wizard step 1 ---------------------------------------------------------------

@pytest.mark.parametrize("data, field, message", [
    ({"name": "", "issuer": "https://x.test"}, "name", "This field is required."),
    ({"name": "X", "issuer": ""}, "issuer", "This field is required."),
    ({"name": " X", "issuer": "https://x.test"}, "name", "Remove the leading or trailing whitespace."),
    ({"name": "X", "issuer": "https://x.test "}, "issuer", "Remove the leading or trailing whitespace."),
    ({"name": "X", "issuer": "https://x.test", "alias": "a\t"}, "alias", "Remove the leading or trailing whitespace."),
    ({"name": "PEM issuer", "issuer": "https://x.test"}, "name", "already exists"),
    ({"name": "X", "issuer": "https://pem.issuer.test"}, "issuer", "already exists"),
    ({"name": "X" * 121, "issuer": "https://x.test"}, "name", "at most 120 characters"),
])
def test_wizard_general_errors(console_admin_client, pem_issuer, data, field, message):
    response = console_admin_client.post(WIZARD, data)
    assert response.status_code == HTTPStatus.OK
    assert any(message in e for e in errors(response, field)), response.context["form"].errors
    # What was typed stays in the form.
    assert response.context["form"][field].value() == data[field]


def test_step2_without_step1_goes_back(console_admin_client):
    console_admin_client.get(WIZARD + "?new=1")
    response = console_admin_client.get(STEP2)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == WIZARD


# -- wizard step 2 ---------------------------------------------------------------

@pytest.mark.parametrize("data, field, message", [
    ({"mode": "jwks", "jwks_uri": ""}, "jwks_uri", "Enter the JWKS endpoint URL."),
    ({"mode": "jwks", "jwks_uri": "not a url"}, "jwks_uri", "Enter a valid URL."),
    ({"mode": "jwks", "jwks_uri": " https://idp.test/jwks"}, "jwks_uri", "whitespace"),
    ({"mode": "jwks", "jwks_uri": "http://idp.example.com/jwks"}, "jwks_uri", "must use https"),
    ({"mode": "jwks", "jwks_uri": "https://u:p@idp.example.com/jwks"}, "jwks_uri", "credentials"),
    ({"mode": "pem", "pem": ""}, "pem", "Paste a PEM certificate or upload a certificate file."),
    ({"mode": "pem", "pem": "hello"}, "pem", "neither a PEM certificate nor base64 DER"),
    ({"mode": "pem", "pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}, "pem", "could not be parsed"),
    ({"mode": "other"}, "mode", "Select a valid choice."),
])
def test_wizard_certificate_errors(console_admin_client, data, field, message):
    start_wizard(console_admin_client)
    response = console_admin_client.post(STEP2, {**data, "action": "finish"})
    assert response.status_code == HTTPStatus.OK
    assert any(message in e for e in errors(response, field)), response.context["form"].errors
    assert not TrustedTokenIssuer.objects.filter(name="Partner IdP").exists()


def test_wizard_rejects_expired_certificate(console_admin_client):
    start_wizard(console_admin_client)
    expired = certificate_pem(private_key("rsa", "old"), days=2,
                              not_before=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10))
    response = console_admin_client.post(STEP2, {"mode": "pem", "pem": expired, "action": "finish"})
    assert any("The certificate expired on" in e for e in errors(response, "pem"))


def test_wizard_rejects_private_key_and_weak_key(console_admin_client):
    from cryptography.hazmat.primitives import serialization

    start_wizard(console_admin_client)
    key = private_key("rsa", "p")
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    response = console_admin_client.post(STEP2, {"mode": "pem", "pem": private, "action": "finish"})
    assert any("private key" in e for e in errors(response, "pem"))
    weak = certificate_pem(private_key("rsa1024", "weak"))
    response = console_admin_client.post(STEP2, {"mode": "pem", "pem": weak, "action": "finish"})
    assert any("at least 2048 bits" in e for e in errors(response, "pem"))


def test_wizard_rejects_non_certificate_upload(console_admin_client):
    start_wizard(console_admin_client)
    upload = SimpleUploadedFile("cert.der", b"\x30\x03garbage", content_type="application/octet-stream")
    response = console_admin_client.post(STEP2, {"mode": "pem", "pem_file": upload, "action": "finish"})
    assert any("neither a PEM nor a DER certificate" in e for e in errors(response, "pem"))


def test_wizard_der_upload_is_converted_and_shown_before_saving(console_admin_client):
    start_wizard(console_admin_client)
    key = private_key("rsa", "der")
    upload = SimpleUploadedFile("partner.cer", certificate_der(key, common_name="Partner CA"))
    response = console_admin_client.post(STEP2, {"mode": "pem", "pem_file": upload, "action": "inspect"})
    # Check certificate shows the details (subject, validity, key, fingerprint) and saves nothing.
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "CN=Partner CA" in html and "RSA 2048" in html and "SHA-256 fingerprint" in html
    assert "-----BEGIN CERTIFICATE-----" in response.context["form"]["pem"].value()
    assert not TrustedTokenIssuer.objects.exists()
    # One Finish with the converted PEM (kept in the text box) creates the issuer.
    pem = response.context["form"]["pem"].value()
    response = console_admin_client.post(STEP2, {"mode": "pem", "pem": pem, "action": "finish"}, follow=True)
    trusted = TrustedTokenIssuer.objects.get(name="Partner IdP")
    assert trusted.certificates.get().subject == "CN=Partner CA"
    assert "Trusted token issuer “Partner IdP” created." in [str(m) for m in response.context["messages"]]


def test_wizard_jwks_check_lists_keys_and_problems(console_admin_client, jwks_server):
    start_wizard(console_admin_client)
    jwks_server.serve_keys((private_key("ec", "j"), "key-1"))
    response = console_admin_client.post(STEP2, {"mode": "jwks", "jwks_uri": jwks_server.url, "action": "check"})
    assert [k.kid for k in response.context["jwks_keys"]] == ["key-1"]
    assert "ES256" in response.content.decode()
    jwks_server.body = b"<html>"
    response = console_admin_client.post(STEP2, {"mode": "jwks", "jwks_uri": jwks_server.url, "action": "check"})
    assert response.context["jwks_problem"] == "The JWKS response is not valid JSON."
    jwks_server.body = b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'
    response = console_admin_client.post(STEP2, {"mode": "jwks", "jwks_uri": jwks_server.url, "action": "check"})
    assert response.context["jwks_problem"] == "The JWKS holds no usable signing keys."
    assert not TrustedTokenIssuer.objects.exists()


def test_wizard_previous_keeps_everything(console_admin_client):
    start_wizard(console_admin_client, alias="console-alias")
    console_admin_client.post(STEP2, {"mode": "jwks", "jwks_uri": "https://idp.partner.test/jwks", "action": "previous"})
    response = console_admin_client.get(WIZARD)
    form = response.context["form"]
    assert (form["name"].value(), form["issuer"].value(), form["alias"].value()) == (
        "Partner IdP", "https://idp.partner.test", "console-alias")
    console_admin_client.post(WIZARD, {"name": "Partner IdP", "issuer": "https://idp.partner.test", "alias": "console-alias"})
    response = console_admin_client.get(STEP2)
    assert response.context["form"]["jwks_uri"].value() == "https://idp.partner.test/jwks"


def test_failed_finish_loses_nothing(console_admin_client):
    start_wizard(console_admin_client, name="Taken later", issuer="https://later.test")
    # Someone registers the same issuer value while the wizard is open.
    from exchange import flows

    flows.create_trusted_token_issuer(name="Other", issuer="https://later.test", jwks_uri="https://later.test/jwks")
    response = console_admin_client.post(STEP2, {"mode": "jwks", "jwks_uri": "https://later.test/keys", "action": "finish"})
    assert response.status_code == HTTPStatus.OK
    assert any("General settings — issuer" in e for e in response.context["form"].non_field_errors())
    assert response.context["form"]["jwks_uri"].value() == "https://later.test/keys"
    step1 = console_admin_client.get(WIZARD).context["form"]
    assert step1["name"].value() == "Taken later"
    assert any("already exists" in e for e in step1.errors["issuer"])


def test_wizard_jwks_finish_creates(console_admin_client):
    start_wizard(console_admin_client)
    response = console_admin_client.post(STEP2, {"mode": "jwks", "jwks_uri": "https://idp.partner.test/jwks",
                                         "action": "finish"})
    trusted = TrustedTokenIssuer.objects.get()
    assert response["Location"] == f"/console/exchange/trustedtokenissuer/{trusted.pk}/change/"
    assert trusted.jwks_uri == "https://idp.partner.test/jwks" and trusted.issuer == "https://idp.partner.test"
    # The wizard starts empty next time.
    assert console_admin_client.get(WIZARD).context["form"]["name"].value() is None


# -- issuer tabs -----------------------------------------------------------------

@pytest.mark.parametrize("data, field, message", [
    ({"name": "", "issuer": "https://pem.issuer.test"}, "name", "This field is required."),
    ({"name": "PEM issuer ", "issuer": "https://pem.issuer.test"}, "name", "whitespace"),
    ({"name": "JWKS issuer", "issuer": "https://pem.issuer.test"}, "name", "already exists"),
    ({"name": "PEM issuer", "issuer": "https://jwks.issuer.test"}, "issuer", "already exists"),
])
def test_issuer_general_tab_errors(console_admin_client, pem_issuer, jwks_issuer, data, field, message):
    response = console_admin_client.post(issuer_url(pem_issuer, "general"), data)
    assert response.status_code == HTTPStatus.OK
    assert any(message in e for e in errors(response, field))
    pem_issuer.refresh_from_db()
    assert pem_issuer.name == "PEM issuer"


def test_issuer_general_tab_updates(console_admin_client, pem_issuer):
    response = console_admin_client.post(issuer_url(pem_issuer, "general"),
                                 {"name": "Renamed", "issuer": "https://pem.issuer.test", "alias": ""}, follow=True)
    pem_issuer.refresh_from_db()
    assert (pem_issuer.name, pem_issuer.alias) == ("Renamed", "")
    assert "Trusted token issuer updated." in [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize("data, field, message", [
    ({"allowed_algorithms": [], "clock_skew": 60, "max_token_age": 3600}, "allowed_algorithms", "required"),
    ({"allowed_algorithms": ["HS256"], "clock_skew": 60, "max_token_age": 3600}, "allowed_algorithms", "valid choice"),
    ({"allowed_algorithms": ["RS256"], "clock_skew": -1, "max_token_age": 3600}, "clock_skew", "greater than or equal to 0"),
    ({"allowed_algorithms": ["RS256"], "clock_skew": 60, "max_token_age": ""}, "max_token_age", "required"),
])
def test_issuer_validation_tab_errors(console_admin_client, pem_issuer, data, field, message):
    response = console_admin_client.post(issuer_url(pem_issuer, "validation"), data)
    assert any(message in e for e in errors(response, field)), response.context["form"].errors


def test_issuer_validation_tab_updates_and_shows_defaults(console_admin_client, pem_issuer):
    response = console_admin_client.get(issuer_url(pem_issuer, "validation"))
    assert "Default: 60 s" in response.content.decode()
    console_admin_client.post(issuer_url(pem_issuer, "validation"), {
        "allowed_algorithms": ["RS256", "PS256"], "clock_skew": 5, "max_token_age": 600, "require_jti": "on",
    })
    pem_issuer.refresh_from_db()
    assert pem_issuer.allowed_algorithms == ["RS256", "PS256"]
    assert (pem_issuer.clock_skew, pem_issuer.max_token_age) == (5, 600)
    assert pem_issuer.require_jti and not pem_issuer.reject_replayed_jti


def test_certificates_tab_add_and_remove(console_admin_client, pem_issuer, rsa_key):
    url = issuer_url(pem_issuer, "certificates")
    response = console_admin_client.post(url, {"action": "add", "pem": pem_issuer.certificates.get().pem})
    assert any("already registered" in e for e in response.context["add_form"].errors["pem"])
    response = console_admin_client.post(url, {"action": "add", "pem": "nope"})
    assert response.context["add_form"].errors["pem"]
    only = pem_issuer.certificates.get()
    response = console_admin_client.post(url, {"action": "remove", "certificate": only.pk}, follow=True)
    assert "only certificate" in " ".join(str(m) for m in response.context["messages"])
    upload = SimpleUploadedFile("next.der", certificate_der(private_key("ec", "next")))
    response = console_admin_client.post(url, {"action": "add", "pem_file": upload}, follow=True)
    assert "Certificate added." in [str(m) for m in response.context["messages"]]
    console_admin_client.post(url, {"action": "remove", "certificate": only.pk})
    assert list(pem_issuer.certificates.values_list("key_description", flat=True)) == ["EC P-256"]


def test_certificates_tab_jwks_errors(console_admin_client, jwks_issuer):
    url = issuer_url(jwks_issuer, "certificates")
    response = console_admin_client.post(url, {"action": "jwks", "jwks_uri": ""})
    assert response.context["jwks_form"].errors["jwks_uri"]
    response = console_admin_client.post(url, {"action": "jwks", "jwks_uri": "http://idp.example.com/jwks"})
    assert any("https" in e for e in response.context["jwks_form"].errors["jwks_uri"])


def test_test_token_tab_requires_a_token(console_admin_client, pem_issuer):
    response = console_admin_client.post(issuer_url(pem_issuer, "test"), {"token": ""})
    assert errors(response, "token") == ["This field is required."]


def test_toggle_and_delete(console_admin_client, pem_issuer):
    url = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/enabled/"
    response = console_admin_client.post(url, follow=True)
    pem_issuer.refresh_from_db()
    assert not pem_issuer.enabled
    assert "Trusted token issuer disabled." in [str(m) for m in response.context["messages"]]
    console_admin_client.post(url)
    pem_issuer.refresh_from_db()
    assert pem_issuer.enabled
    response = console_admin_client.post(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not TrustedTokenIssuer.objects.exists()


def test_staff_without_change_permission_cannot_post(client, pem_issuer):
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_trustedtokenissuer"))
    client.force_login(user)
    assert client.get(issuer_url(pem_issuer, "general")).status_code == HTTPStatus.OK
    response = client.post(issuer_url(pem_issuer, "general"), {"name": "x", "issuer": "y"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert client.get(WIZARD).status_code == HTTPStatus.FORBIDDEN
    assert client.post(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/enabled/").status_code == 403


# -- applications ------------------------------------------------------------------

@pytest.mark.parametrize("data, field, message", [
    ({"name": "", "application_type": "standard"}, "name", "This field is required."),
    ({"name": " App", "application_type": "standard"}, "name", "whitespace"),
    ({"name": "App", "application_type": "desktop"}, "application_type", "valid choice"),
    ({"name": "App"}, "application_type", "required"),
])
def test_new_application_errors(console_admin_client, data, field, message):
    response = console_admin_client.post("/console/exchange/application/add/", data)
    assert response.status_code == HTTPStatus.OK
    assert any(message in e for e in errors(response, field)), response.context["form"].errors
    assert not Application.objects.exists()


@pytest.mark.parametrize("app_type", ["standard", "mobile", "traditional"])  # spa: no secret (security/test_management_plane)
def test_new_application_secret_shown_once(console_admin_client, app_type):
    response = console_admin_client.post("/console/exchange/application/add/", {"name": "App", "application_type": app_type})
    application = Application.objects.get()
    assert application.application_type == app_type
    page = console_admin_client.get(response["Location"])
    secret = page.context["new_secret"]
    assert secret and secret in page.content.decode()
    assert console_admin_client.get(response["Location"]).context["new_secret"] is None


@pytest.mark.parametrize("data, field, message", [
    ({"allowed_grant_types": ["password"]}, "allowed_grant_types", "valid choice"),
    ({"allowed_grant_types": [], "access_token_lifetime": "0"}, "access_token_lifetime", "greater than or equal to 1"),
    ({"allowed_grant_types": [], "access_token_lifetime": "abc"}, "access_token_lifetime", "whole number"),
])
def test_protocol_tab_errors(console_admin_client, application, data, field, message):
    response = console_admin_client.post(app_url(application, "protocol"), data)
    assert any(message in e for e in errors(response, field)), response.context["form"].errors


def test_protocol_tab_spa_cannot_enable_token_exchange(console_admin_client, make_application):
    spa = make_application(name="SPA", application_type="spa", grant_types=())
    page = console_admin_client.get(app_url(spa, "protocol")).content.decode()
    assert f'value="{TOKEN_EXCHANGE}" id="grant-0" disabled' in page
    assert "not available for single-page applications" in page
    response = console_admin_client.post(app_url(spa, "protocol"), {"allowed_grant_types": [TOKEN_EXCHANGE]})
    assert any("single-page" in e for e in errors(response, "allowed_grant_types"))
    spa.refresh_from_db()
    assert spa.allowed_grant_types == []


def test_protocol_tab_updates(console_admin_client, make_application):
    app = make_application(grant_types=())
    response = console_admin_client.post(app_url(app, "protocol"), {
        "allowed_grant_types": ["refresh_token", TOKEN_EXCHANGE], "access_token_lifetime": "900",
    }, follow=True)
    app.refresh_from_db()
    assert app.allowed_grant_types == [TOKEN_EXCHANGE, "refresh_token"]
    assert app.access_token_lifetime == 900
    assert "Application updated." in [str(m) for m in response.context["messages"]]


def test_protocol_tab_sets_allowed_audiences(console_admin_client, make_application, exchange, pem_issuer, rsa_key):
    app = make_application(name="Audiences")
    console_admin_client.post(app_url(app, "protocol"), {
        "allowed_grant_types": [TOKEN_EXCHANGE], "allowed_audiences": "https://api.example\r\n\r\n  https://b.example  \n",
    })
    app.refresh_from_db()
    assert app.allowed_audiences == ["https://api.example", "https://b.example"]
    assert "https://b.example" in console_admin_client.get(app_url(app, "protocol")).content.decode()
    assert exchange(mint(rsa_key, pem_issuer.issuer), app=app, audience="https://b.example").status_code == HTTPStatus.OK
    response = console_admin_client.post(app_url(app, "protocol"), {
        "allowed_grant_types": [TOKEN_EXCHANGE], "allowed_audiences": "https://a\nhttps://a",
    })
    assert any("distinct" in e for e in errors(response, "allowed_audiences"))


@pytest.mark.parametrize("data, field", [({"name": ""}, "name"), ({"name": "x "}, "name")])
def test_application_general_errors(console_admin_client, application, data, field):
    response = console_admin_client.post(app_url(application, "general"), data)
    assert errors(response, field)


def test_regenerate_secret(console_admin_client, application, exchange, pem_issuer, rsa_key):
    old = application.raw_secret
    response = console_admin_client.post(f"/console/exchange/application/{application.pk}/secret/", follow=True)
    new = response.context["new_secret"]
    assert new and new != old
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.UNAUTHORIZED
    application.raw_secret = new
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK


def test_try_it_out_errors(console_admin_client, application):
    response = console_admin_client.post(app_url(application, "try"), {"client_secret": "", "subject_token": ""})
    assert errors(response, "client_secret") == ["This field is required."]
    assert errors(response, "subject_token") == ["This field is required."]


@pytest.mark.parametrize("setup, problem", [
    (lambda s: setattr(s, "status", 500), "The JWKS endpoint answered HTTP 500."),
    (lambda s: setattr(s, "delay", 0.5), "The JWKS endpoint did not answer within the time limit."),
    (lambda s: setattr(s, "body", b'{"nokeys": []}'), 'The response is not a JWKS document (no "keys" list).'),
])
def test_wizard_jwks_check_reports_the_exact_problem(console_admin_client, jwks_server, settings, setup, problem):
    settings.TOKEN_EXCHANGE = {**settings.TOKEN_EXCHANGE, "JWKS_READ_TIMEOUT_MS": 150, "JWKS_TOTAL_TIMEOUT_MS": 300}
    start_wizard(console_admin_client)
    setup(jwks_server)
    response = console_admin_client.post(STEP2, {"mode": "jwks", "jwks_uri": jwks_server.url, "action": "check"})
    assert response.context["jwks_problem"] == problem
    assert "jwks_keys" not in response.context


def test_issuer_page_fetch_keys_now(console_admin_client, jwks_issuer, jwks_server):
    url = issuer_url(jwks_issuer, "certificates")
    response = console_admin_client.post(url, {"action": "check"})
    assert [k.kid for k in response.context["jwks_keys"]] == ["k1"]
    jwks_server.status = 404
    response = console_admin_client.post(url, {"action": "check"})
    assert response.context["jwks_problem"] == "The JWKS endpoint answered HTTP 404."
    jwks_issuer.refresh_from_db()
    assert jwks_issuer.key_fetch_error == "The JWKS endpoint answered HTTP 404."
    listing = console_admin_client.get("/console/exchange/trustedtokenissuer/").content.decode()
    assert "The JWKS endpoint answered HTTP 404." in listing


def test_wizard_inline_validation_endpoint(console_admin_client, pem_issuer):
    url = WIZARD + "validate/"
    assert console_admin_client.get(url).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    body = console_admin_client.post(url, {"name": "PEM issuer", "issuer": "https://new.test ", "alias": ""}).json()
    assert any("already exists" in e for e in body["errors"]["name"])
    assert body["errors"]["issuer"] == ["Remove the leading or trailing whitespace."]
    assert console_admin_client.post(url, {"name": "New", "issuer": "https://new.test"}).json() == {"errors": {}}
    assert not TrustedTokenIssuer.objects.filter(name="New").exists()


def test_issuer_validation_tab_links_applications_and_requires_a_type(console_admin_client, pem_issuer, make_application):
    linked, other = make_application(name="Linked app"), make_application(name="Other app")
    page = console_admin_client.get(issuer_url(pem_issuer, "validation")).content.decode()
    assert "Linked app" in page and "Other app" in page and "Required token type" in page
    console_admin_client.post(issuer_url(pem_issuer, "validation"), {
        "allowed_algorithms": ["RS256"], "clock_skew": 60, "max_token_age": 3600, "reject_replayed_jti": "on",
        "required_type": "at+jwt", "applications": [linked.pk],
    })
    pem_issuer.refresh_from_db()
    assert pem_issuer.required_type == "at+jwt"
    assert list(pem_issuer.applications.all()) == [linked]
    # Unticking every application removes the links again.
    console_admin_client.post(issuer_url(pem_issuer, "validation"), {
        "allowed_algorithms": ["RS256"], "clock_skew": 60, "max_token_age": 3600, "required_type": "",
    })
    pem_issuer.refresh_from_db()
    assert pem_issuer.required_type == "" and not pem_issuer.applications.exists()


def test_issuer_validation_tab_refuses_a_bad_type(console_admin_client, pem_issuer):
    response = console_admin_client.post(issuer_url(pem_issuer, "validation"), {
        "allowed_algorithms": ["RS256"], "clock_skew": 60, "max_token_age": 3600, "required_type": "at +jwt",
    })
    assert any("media type" in e for e in errors(response, "required_type"))


def test_protocol_tab_names_the_linked_issuers(console_admin_client, application, pem_issuer):
    page = console_admin_client.get(app_url(application, "protocol")).content.decode()
    assert "every issuer without links" in page
    pem_issuer.applications.add(application)
    page = console_admin_client.get(app_url(application, "protocol")).content.decode()
    assert f'trustedtokenissuer/{pem_issuer.pk}/change/?tab=validation">PEM issuer</a>' in page
