"""The acceptance story in a real browser: both certificate modes, an application, an exchange."""

import base64
import json
import re
import shutil
import subprocess
import time

import jwt
import pytest
import requests
from playwright.sync_api import expect

from exchange.models import Application, TrustedTokenIssuer

from ..factories import certificate_der, certificate_pem, mint, private_key
from ..utils import basic_auth, exchange_body
from .conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.live]


def no_horizontal_scroll(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def fill_general(page, name, issuer, alias=""):
    page.get_by_label("Trusted token issuer name").fill(name)
    page.get_by_label("Issuer", exact=True).fill(issuer)
    page.get_by_label("Alias").fill(alias)


def create_application(page, name, type_label, screenshot=None):
    page.get_by_role("link", name="Applications", exact=True).first.click()
    page.get_by_role("link", name="New Application").click()
    page.get_by_label(type_label).check()
    page.get_by_label("Name").fill(name)
    if screenshot:
        shoot(page, screenshot)
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".messagelist")).to_contain_text(f"Application “{name}” created.")
    client_id = page.locator("#client-id").inner_text()
    shown = page.locator("#client-secret")
    return client_id, shown.inner_text() if shown.count() else None  # public clients have no secret


def test_jwks_issuer_standard_app_and_exchange(console, jwks_server):
    page = console
    key = private_key("ec", "browser-jwks")
    jwks_server.serve_keys((key, "browser-k1"))

    # Home → Connections → New Connection → Trusted Token Issuer → Create.
    expect(page.get_by_test_id("issuer-count")).to_have_text("0")
    shoot(page, "00-dashboard")
    page.get_by_role("link", name="Connections", exact=True).first.click()
    page.get_by_role("link", name="New Connection").click()
    expect(page.get_by_text("Coming later")).to_have_count(0)  # no placeholder cards (issue 18)
    shoot(page, "01-new-connection-templates")
    page.get_by_role("link", name="Create").click()

    # Step 1: an inline error first (stray whitespace), then valid input.
    fill_general(page, "Partner JWKS", "https://jwks.partner.test ")
    page.get_by_role("button", name="Next").click()
    expect(page.locator(".errorlist")).to_contain_text("Remove the leading or trailing whitespace.")
    shoot(page, "02-wizard-general-error")
    fill_general(page, "Partner JWKS", "https://jwks.partner.test", "console-alias")
    shoot(page, "03-wizard-general")
    page.get_by_role("button", name="Next").click()

    # Step 2: JWKS endpoint and Check.
    expect(page.get_by_role("heading", name="Certificate")).to_be_visible()
    page.get_by_label("JWKS endpoint", exact=True).check()
    page.get_by_label("JWKS endpoint URL").fill(jwks_server.url)
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.get_by_test_id("jwks-keys")).to_contain_text("browser-k1")
    expect(page.get_by_test_id("jwks-keys")).to_contain_text("ES256")
    shoot(page, "04-wizard-certificate-jwks-checked")
    # Previous keeps what was typed, both ways.
    page.get_by_role("button", name="Previous").click()
    expect(page.get_by_label("Alias")).to_have_value("console-alias")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("JWKS endpoint URL")).to_have_value(jwks_server.url)
    assert not TrustedTokenIssuer.objects.exists()  # nothing saved before Finish
    page.get_by_role("button", name="Finish").click()
    expect(page.locator(".messagelist")).to_contain_text("Trusted token issuer “Partner JWKS” created.")
    shoot(page, "05-issuer-created")

    # A Standard-based application, secret shown once, Token Exchange enabled on Protocol.
    client_id, secret = create_application(page, "Browser app", "Standard-based OIDC", "05a-new-application")
    shoot(page, "06-application-created-secret")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=page.base)
    page.get_by_test_id("new-secret").get_by_role("button", name="Copy").click()
    expect(page.get_by_test_id("new-secret").get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    # Shown once: the next visit of the page no longer has it.
    page.get_by_role("link", name="General").click()
    expect(page.get_by_test_id("new-secret")).to_have_count(0)
    page.get_by_role("link", name="Protocol").click()
    page.get_by_label("Token Exchange").check()
    page.get_by_label("Refresh Token").check()
    page.get_by_role("button", name="Update").click()
    expect(page.locator(".messagelist")).to_contain_text("Application updated.")
    expect(page.get_by_label("Token Exchange")).to_be_checked()
    shoot(page, "07-application-protocol")

    # The token endpoint accepts an exchange for that issuer and application.
    token = mint(key, "https://jwks.partner.test", kid="browser-k1", sub="carol", aud="console-alias")
    response = requests.post(
        f"{page.base}/oauth2/token", data=exchange_body(token),
        headers={"Authorization": basic_auth(client_id, secret)}, timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["sub"] == "carol"
    assert "refresh_token" in body
    replay = requests.post(
        f"{page.base}/oauth2/token", data=exchange_body(token),
        headers={"Authorization": basic_auth(client_id, secret)}, timeout=10,
    )
    assert replay.json()["error_description"] == "The subject token has already been used."

    # Try it out: the curl command, then a Send through the token endpoint.
    page.get_by_role("link", name="Try it out").click()
    expect(page.get_by_test_id("curl")).to_contain_text(f"{page.base}/oauth2/token")
    expect(page.get_by_test_id("curl")).to_contain_text(client_id)
    if shutil.which("curl"):
        # The page's command, placeholders filled in, run as printed.
        command = page.get_by_test_id("curl").inner_text()
        command = command.replace(f"<base64({client_id}:<client_secret>)>",
                                  base64.b64encode(f"{client_id}:{secret}".encode()).decode())
        command = command.replace("<jwt_token>", mint(key, "https://jwks.partner.test", kid="browser-k1",
                                                      sub="erin", aud="console-alias"))
        output = subprocess.run(["bash", "-c", command + " --silent"], capture_output=True, text=True,
                                timeout=30, check=True).stdout
        assert json.loads(output)["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token", output
    page.get_by_label("Client secret").fill(secret)
    page.get_by_label("Subject token (JWT)").fill(
        mint(key, "https://jwks.partner.test", kid="browser-k1", sub="dave", aud="console-alias"))
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("try-result")).to_contain_text("HTTP 200")
    expect(page.get_by_test_id("issued-claims")).to_contain_text('"sub": "dave"')
    shoot(page, "08-try-it-out")
    page.get_by_role("button", name="Send").click()  # the secret field is empty again
    expect(page.locator(".errorlist").first).to_contain_text("This field is required.")

    # The issuer's Activity tab and the dashboard count the exchanges.
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/{TrustedTokenIssuer.objects.get().pk}/change/?tab=activity")
    expect(page.get_by_test_id("activity")).to_contain_text("carol")
    page.get_by_role("link", name="Home").first.click()
    expect(page.get_by_test_id("activity-chart")).to_contain_text("Issued")
    expect(page.get_by_test_id("top-causes")).to_contain_text("replayed")
    shoot(page, "09-dashboard-activity")


def test_pem_paste_and_der_upload(console, tmp_path):
    page = console
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/new/")
    page.get_by_role("link", name="Create").click()
    # Keyboard only: type, Tab, type, Enter.
    page.get_by_label("Trusted token issuer name").focus()
    page.keyboard.type("Partner PEM")
    page.keyboard.press("Tab")
    page.keyboard.type("https://pem.partner.test")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Certificate")).to_be_visible()

    # Pasted PEM: a non-certificate first, then the real one; details before saving.
    page.get_by_label("Use PEM certificate").check()
    expect(page.get_by_label("JWKS endpoint URL")).to_be_hidden()
    page.get_by_label("PEM certificate", exact=True).fill("not a certificate")
    page.get_by_role("button", name="Finish").click()
    expect(page.locator(".errorlist")).to_contain_text("neither a PEM certificate nor base64 DER")
    shoot(page, "10-wizard-pem-error")
    key = private_key("rsa", "browser-pem")
    page.get_by_label("PEM certificate", exact=True).fill(certificate_pem(key, common_name="Partner Signing"))
    # The details appear on paste; one Finish creates (issue 18: the seed's flow).
    details = page.get_by_test_id("certificate-details")
    expect(details).to_contain_text("CN=Partner Signing")
    expect(details).to_contain_text("RSA 2048")
    shoot(page, "11-wizard-pem-review")
    assert not TrustedTokenIssuer.objects.exists()
    page.get_by_role("button", name="Finish").click()
    expect(page.locator(".messagelist")).to_contain_text("Trusted token issuer “Partner PEM” created.")
    trusted = TrustedTokenIssuer.objects.get(name="Partner PEM")
    assert trusted.certificates.get().subject == "CN=Partner Signing"

    # A DER file uploaded (.cer): converted to PEM for the user.
    der = tmp_path / "partner.cer"
    der.write_bytes(certificate_der(private_key("ec", "browser-der"), common_name="Partner DER"))
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/new/trusted-token-issuer/?new=1")
    # Inline validation: leaving a field shows its problem before Next.
    page.get_by_label("Trusted token issuer name").fill("Partner PEM")
    page.get_by_label("Trusted token issuer name").press("Tab")
    expect(page.locator("#id_name_errors")).to_contain_text("already exists")
    shoot(page, "12a-wizard-inline-validation")
    page.get_by_label("Trusted token issuer name").fill("Partner DER")
    page.get_by_label("Trusted token issuer name").press("Tab")
    expect(page.locator("#id_name_errors")).to_have_count(0)
    fill_general(page, "Partner DER", "https://der.partner.test")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Use PEM certificate").check()
    page.get_by_label("Certificate file").set_input_files(str(der))
    page.get_by_role("button", name="Check certificate").click()
    expect(page.get_by_test_id("certificate-details")).to_contain_text("CN=Partner DER")
    expect(page.get_by_test_id("certificate-details")).to_contain_text("EC P-256")
    expect(page.get_by_label("PEM certificate", exact=True)).to_have_value(
        re.compile(r"^-----BEGIN CERTIFICATE-----"))
    shoot(page, "12-wizard-der-converted")
    page.get_by_role("button", name="Finish").click()
    expect(page.locator(".messagelist")).to_contain_text("Trusted token issuer “Partner DER” created.")
    page.get_by_role("link", name="Certificates").click()
    expect(page.get_by_test_id("certificates")).to_contain_text("CN=Partner DER")
    shoot(page, "13-issuer-certificates")
    assert TrustedTokenIssuer.objects.get(name="Partner DER").certificates.get().key_description == "EC P-256"

    # The Connections list shows both, with their key source.
    page.get_by_role("link", name="Connections", exact=True).first.click()
    expect(page.locator("#result_list")).to_contain_text("Partner DER")
    expect(page.locator("#result_list")).to_contain_text("PEM certificates")


def test_single_page_app_cannot_enable_token_exchange(console):
    page = console
    _, secret = create_application(page, "Browser SPA", "Single-page")
    assert secret is None
    page.get_by_role("link", name="Protocol").click()
    checkbox = page.get_by_label("Token Exchange")
    expect(checkbox).to_be_disabled()
    expect(page.get_by_text("Token Exchange is not available for single-page applications")).to_be_visible()
    page.get_by_label("Refresh Token").check()
    page.get_by_role("button", name="Update").click()
    expect(page.locator(".messagelist")).to_contain_text("Application updated.")
    assert Application.objects.get(name="Browser SPA").allowed_grant_types == ["refresh_token"]
    shoot(page, "14-spa-protocol")
    # 800 px wide: same page, no horizontal scrolling.
    page.set_viewport_size({"width": 800, "height": 900})
    assert no_horizontal_scroll(page)
    shoot(page, "15-spa-protocol-800px")


def test_test_a_token_explains_expired_and_wrong_audience(console, pem_issuer, rsa_key):
    page = console
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/")
    page.get_by_role("link", name="Test a token").click()
    now = int(time.time())
    page.get_by_label("Subject token (JWT)").fill(mint(rsa_key, pem_issuer.issuer, exp=now - 600, iat=now - 900))
    page.get_by_role("button", name="Test").click()
    report = page.get_by_test_id("token-report")
    expect(report).to_contain_text("Rejected (expired): The subject token has expired.")
    expect(report.locator('tr[data-check="signature"]')).to_contain_text("pass")
    expect(report.locator('tr[data-check="expiry"]')).to_contain_text("fail")
    expect(report.locator('tr[data-check="expiry"]')).to_contain_text(re.compile(r"expired 60\d s ago"))
    shoot(page, "16-test-token-expired")

    page.get_by_label("Subject token (JWT)").fill(mint(rsa_key, pem_issuer.issuer, aud="https://elsewhere.test"))
    page.get_by_role("button", name="Test").click()
    expect(report).to_contain_text("Rejected (audience_mismatch): The subject token is not intended for this server.")
    expect(report.locator('tr[data-check="audience"]')).to_contain_text("fail")
    expect(report.locator('tr[data-check="expiry"]')).to_contain_text("pass")
    shoot(page, "17-test-token-wrong-audience")

    # Disable (with confirmation): the same check now says the issuer is disabled.
    page.get_by_role("link", name="Disable").click()
    expect(page.get_by_text("the token endpoint refuses every token")).to_be_visible()
    page.get_by_role("button", name="Yes, disable").click()
    expect(page.locator(".messagelist")).to_contain_text("Trusted token issuer disabled.")
    expect(page.locator("h1")).to_contain_text("Disabled")
    page.get_by_role("link", name="Test a token").click()
    page.get_by_label("Subject token (JWT)").fill(mint(rsa_key, pem_issuer.issuer))
    page.get_by_role("button", name="Test").click()
    expect(report).to_contain_text("Rejected (issuer_disabled)")
    page.get_by_role("link", name="Enable").click()
    page.get_by_role("button", name="Yes, enable").click()
    expect(page.locator("h1")).to_contain_text("Enabled")

    # 800 px: the issuer page and the dashboard still fit.
    page.set_viewport_size({"width": 800, "height": 900})
    assert no_horizontal_scroll(page)
    page.get_by_role("link", name="Home").first.click()
    expect(page.get_by_test_id("issuer-count")).to_have_text("1")  # the dashboard has loaded
    assert no_horizontal_scroll(page)
    shoot(page, "18-dashboard-800px")


def test_link_an_issuer_to_one_application_and_require_a_type(console, pem_issuer, rsa_key, make_application):
    """Validation tab: link the issuer to one application and require at+jwt; the other application's
    Try it out is then refused with the fixed sentence, and the linked one needs the type."""
    page = console
    linked, other = make_application(name="Linked portal"), make_application(name="Other portal")
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/")
    page.get_by_role("link", name="Validation").click()
    page.get_by_label("Linked portal").check()
    page.get_by_label("Required token type (typ)").fill("at+jwt")
    shoot(page, "19-issuer-links-and-type")
    page.get_by_role("button", name="Update").click()
    expect(page.locator(".messagelist")).to_contain_text("Validation settings updated.")
    expect(page.get_by_label("Linked portal")).to_be_checked()
    expect(page.get_by_label("Other portal")).not_to_be_checked()
    pem_issuer.refresh_from_db()
    assert list(pem_issuer.applications.all()) == [linked] and pem_issuer.required_type == "at+jwt"

    def try_it_out(application, token):
        page.goto(f"{page.base}/console/exchange/application/{application.pk}/change/?tab=try")
        page.get_by_label("Client secret").fill(application.raw_secret)
        page.get_by_label("Subject token").fill(token)
        page.get_by_role("button", name="Send").click()
        return page.get_by_test_id("try-result")

    typed = lambda: mint(rsa_key, pem_issuer.issuer, headers={"typ": "at+jwt"})  # noqa: E731
    expect(try_it_out(other, typed())).to_contain_text("The subject token's issuer is not trusted for this client.")
    shoot(page, "20-try-it-out-issuer-not-linked")
    expect(try_it_out(linked, mint(rsa_key, pem_issuer.issuer))).to_contain_text(
        "The subject token's type (typ) is not accepted.")
    expect(try_it_out(linked, typed())).to_contain_text("token issued")


def test_delete_issuer_with_confirmation(console, pem_issuer):
    page = console
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/")
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_text("Are you sure")).to_be_visible()
    assert TrustedTokenIssuer.objects.filter(pk=pem_issuer.pk).exists()
    page.get_by_role("button", name="Yes, I’m sure").click()
    expect(page.locator(".messagelist")).to_contain_text("was deleted successfully")
    assert not TrustedTokenIssuer.objects.exists()


@pytest.mark.parametrize("width", [1280, 800])
def test_pages_fit_the_width(console, width, pem_issuer, jwks_issuer, make_application):
    page = console
    app = make_application(name="Fit app")
    page.set_viewport_size({"width": width, "height": 900})
    paths = [
        "/console/", "/console/exchange/trustedtokenissuer/", "/console/exchange/trustedtokenissuer/new/",
        "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/?new=1",
        "/console/exchange/application/", "/console/exchange/application/add/",
        *(f"/console/exchange/trustedtokenissuer/{i.pk}/change/?tab={tab}" for i in (pem_issuer, jwks_issuer)
          for tab in ("general", "certificates", "validation", "test", "activity")),
        *(f"/console/exchange/application/{app.pk}/change/?tab={tab}" for tab in ("general", "protocol", "try")),
    ]
    too_wide = []
    for path in paths:
        page.goto(page.base + path)
        if not no_horizontal_scroll(page):
            too_wide.append(path)
    assert not too_wide, f"horizontal scrolling at {width} px: {too_wide}"
    # The wizard's second step too.
    page.goto(page.base + "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/?new=1")
    fill_general(page, "Fit", "https://fit.test")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Certificate")).to_be_visible()
    assert no_horizontal_scroll(page)
    shoot(page, f"19-wizard-certificate-{width}px")
