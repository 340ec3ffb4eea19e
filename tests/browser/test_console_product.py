"""The console as one product (issue 18): every page a menu reaches is the console's own, the home
page is an operator's dashboard, key health survives a reload, the wizard finishes once."""

import datetime
import re
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from exchange import flows
from exchange.models import ExchangeEvent, TrustedTokenIssuer

from ..factories import certificate_pem, mint, private_key
from ..utils import basic_auth, exchange_body
from .conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.live]

#: What a stock Django admin page says that a console page never does.
STOCK_PHRASES = ("Token exchange administration", "Django administration", "Site administration",
                 "Coming later", "Select trusted token issuer to change")
#: Django's app names: never in a page's title, heading or breadcrumb (a permission picker may list them).
APP_NAMES = ("Authentication and Authorization", "Token exchange", "Django OAuth Toolkit")
#: Links a walk does not follow: signing out, and the stock password/user forms' own sub-pages.
SKIP = re.compile(r"/logout/|/password/|\?(?!tab=|new=1$)|/static/|#")


def assert_console_page(page, path):
    """The console's header, a breadcrumb that starts at Home in the console's names, no stock wording."""
    expect(page.locator("#site-name")).to_contain_text("Identity Console")
    expect(page.locator(".console-nav")).to_be_visible()
    crumbs = page.locator(".breadcrumbs")
    expect(crumbs).to_have_count(1)
    assert crumbs.inner_text().startswith("Home"), (path, crumbs.inner_text())
    text = page.locator("body").inner_text()
    for phrase in STOCK_PHRASES:
        assert phrase not in text, (path, phrase)
    chrome = " ".join([page.title(), crumbs.inner_text(), page.locator("h1").first.inner_text()])
    for name in APP_NAMES:
        assert name not in chrome, (path, name)
    assert not re.search(r"\b[A-Za-z]+ #\d+", page.title() + page.locator("h1").first.inner_text()), path
    assert not re.search(r"\b(a\.m\.|p\.m\.)", text), (path, "Django's default date format")


def slug(path):
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"


def exchange_through_server(base, application, key, issuer, **claims):
    token = mint(key, issuer, **claims)
    return requests.post(f"{base}/oauth2/token", data=exchange_body(token),
                         headers={"Authorization": basic_auth(application.client_id, application.raw_secret)},
                         timeout=10)


def test_every_page_a_menu_reaches_is_the_consoles_own(console, pem_issuer, jwks_issuer, make_application, rsa_key):
    page = console
    application = make_application(name="Walk app")
    assert exchange_through_server(page.base, application, rsa_key, pem_issuer.issuer).status_code == 200
    assert exchange_through_server(page.base, application, rsa_key, pem_issuer.issuer, aud="https://x.test").status_code == 400
    start = urlsplit(page.url).path
    # Home, and the header's own page (Change password) besides the menu's.
    seen, queue, failures = set(), [start, "/console/password_change/"], []
    while queue and len(seen) < 80:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        response = page.goto(page.base + path)
        assert response.ok, (path, response.status)
        try:
            assert_console_page(page, path)
        except AssertionError as exc:
            failures.append(f"{path}: {exc}")
        shoot(page, f"menu-{slug(path)}")
        hrefs = page.eval_on_selector_all(
            ".console-nav a, #content a[href]", "links => links.map(a => a.getAttribute('href'))")
        for href in hrefs:
            if href and href.startswith("?tab="):
                href = path.split("?")[0] + href
            if not href or not href.startswith("/console/") or SKIP.search(href):
                continue
            queue.append(href)
    assert not failures, "\n".join(failures)
    # Every area was reached: lists, object pages with tabs, records, confirmations, History.
    for expected in ("/console/exchange/trustedtokenissuer/", "/console/exchange/application/",
                     "/console/exchange/exchangeevent/", "/console/exchange/accesstoken/",
                     "/console/exchange/signingkey/", f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/delete/",
                     f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/history/",
                     f"/console/exchange/trustedtokenissuer/{jwks_issuer.pk}/change/?tab=certificates",
                     f"/console/exchange/application/{application.pk}/change/?tab=try",
                     "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/?new=1"):
        assert expected in seen, (expected, sorted(seen))
    assert any(re.fullmatch(r"/console/exchange/exchangeevent/\d+/change/", p) for p in seen)
    assert any(re.fullmatch(r"/console/exchange/accesstoken/\d+/change/", p) for p in seen)
    # The stock per-app index is not a page of its own.
    page.goto(page.base + "/console/exchange/")
    assert urlsplit(page.url).path == "/console/"
    # No 404 for the icon browsers ask for on their own.
    assert requests.get(page.base + "/favicon.ico", timeout=10).status_code == 200


def test_the_exchange_event_page_explains_and_is_read_only(console, pem_issuer, application, rsa_key):
    page = console
    exchange_through_server(page.base, application, rsa_key, pem_issuer.issuer, aud="https://elsewhere.test")
    event = ExchangeEvent.objects.get()
    page.goto(f"{page.base}/console/exchange/exchangeevent/")
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text("Rejected")
    expect(row).to_contain_text("The subject token is not intended for this server.")
    expect(row).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
    row.locator("a").first.click()
    assert urlsplit(page.url).path == f"/console/exchange/exchangeevent/{event.pk}/change/"
    note = page.get_by_test_id("record-note")
    expect(note).to_contain_text("The subject token is not intended for this server.")
    expect(note).to_contain_text("What to do:")
    record = page.get_by_test_id("record")
    for label in ("Time", "Application", "Trusted token issuer", "Subject (sub)", "Outcome"):
        expect(record).to_contain_text(label)
    expect(record).to_contain_text(application.name)
    expect(record).to_contain_text(pem_issuer.name)
    expect(page.get_by_role("link", name="History")).to_have_count(0)
    expect(page.get_by_role("link", name="Delete")).to_have_count(0)
    expect(page.locator("#content form[method=post]")).to_have_count(0)
    shoot(page, "product-event-page")


def test_home_shows_the_issuer_hourly_chart_top_causes_and_warnings(console, pem_issuer, rsa_key):
    page = console
    now = timezone.now()
    # Two issued and one rejected three hours ago, one rejected now, one issued twelve days ago.
    made = [ExchangeEvent.objects.create(outcome="issued", trusted_issuer=pem_issuer),
            ExchangeEvent.objects.create(outcome="issued", trusted_issuer=pem_issuer),
            ExchangeEvent.objects.create(outcome="rejected", cause="expired", trusted_issuer=pem_issuer)]
    ExchangeEvent.objects.filter(pk__in=[e.pk for e in made]).update(created=now - datetime.timedelta(hours=3))
    ExchangeEvent.objects.create(outcome="rejected", cause="expired", trusted_issuer=pem_issuer)
    old = ExchangeEvent.objects.create(outcome="issued", trusted_issuer=pem_issuer)
    ExchangeEvent.objects.filter(pk=old.pk).update(created=now - datetime.timedelta(days=12))
    # A certificate that expires in three days.
    flows.add_certificate(pem_issuer, certificate_pem(private_key("rsa", "soon"), days=4, common_name="Soon"))

    page.goto(page.base + "/console/")
    expect(page.get_by_test_id("console-issuer")).to_have_text(settings.CONSOLE_ISSUER)
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    hourly = page.locator("svg.console-timeline[data-unit=hour] g.bucket")
    expect(hourly).to_have_count(24)
    three_hours_ago = hourly.nth(20)
    expect(three_hours_ago).to_have_attribute("data-issued", "2")
    expect(three_hours_ago).to_have_attribute("data-rejected", "1")
    expect(hourly.nth(23)).to_have_attribute("data-rejected", "1")
    expect(page.locator("svg.console-timeline[data-unit=hour] rect.issued")).to_have_count(1)
    daily = page.locator("svg.console-timeline[data-unit=day] g.bucket")
    expect(daily).to_have_count(30)
    expect(daily.nth(17)).to_have_attribute("data-issued", "1")
    warnings = page.get_by_test_id("warnings")
    expect(warnings).to_contain_text(f"A certificate of {pem_issuer.name} expires")
    shoot(page, "product-dashboard")

    # The top cause links to its events.
    causes = page.get_by_test_id("top-causes")
    expect(causes).to_contain_text("The subject token has expired.")
    causes.get_by_role("link", name="2").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    expect(page.locator("#result_list")).to_contain_text("The subject token has expired.")
    shoot(page, "product-events-filtered")

    # The expiring certificate is flagged on the list and on the issuer's page too.
    page.goto(page.base + "/console/exchange/trustedtokenissuer/")
    expect(page.locator("#result_list")).to_contain_text(re.compile(r"Expires in \d days?"))
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=certificates")
    expect(page.get_by_test_id("certificate-warning")).to_contain_text(re.compile(r"Expires in \d days?"))
    expect(page.get_by_test_id("audience-note")).to_contain_text(settings.CONSOLE_ISSUER)
    expect(page.get_by_test_id("audience-note")).to_contain_text(pem_issuer.alias)
    shoot(page, "product-issuer-certificate-expiring")


def test_key_health_survives_a_reload(console, jwks_issuer, jwks_server):
    page = console
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/{jwks_issuer.pk}/change/?tab=certificates")
    page.get_by_role("button", name="Fetch keys now").click()
    expect(page.get_by_test_id("jwks-keys")).to_contain_text("k1")
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/{jwks_issuer.pk}/change/?tab=certificates")
    table = page.get_by_test_id("jwks-keys")
    expect(table).to_contain_text("k1")
    expect(table).to_contain_text("EC P-256")
    expect(table).to_contain_text("ES256")
    expect(table).to_contain_text("JWKS endpoint")
    expect(table).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
    health = page.get_by_test_id("key-health")
    expect(health).to_contain_text("ok")
    expect(health).to_contain_text("Next refetch")
    shoot(page, "product-key-health")
    # A failing endpoint shows on the page and on the home page.
    jwks_server.status = 500
    page.get_by_role("button", name="Fetch keys now").click()
    expect(page.get_by_test_id("key-health")).to_contain_text("Failing")
    expect(page.get_by_test_id("jwks-keys")).to_contain_text("k1")  # the last good keys stay listed
    page.goto(page.base + "/console/")
    expect(page.get_by_test_id("warnings")).to_contain_text(f"The JWKS endpoint of {jwks_issuer.name} failed")


def test_the_wizard_shows_the_certificate_on_paste_and_finishes_once(console, pem_issuer):
    page = console
    page.goto(page.base + "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/?new=1")
    expect(page.locator("[data-marker=required]")).to_have_count(2)  # name, issuer
    expect(page.locator("[data-marker=optional]")).to_have_count(1)  # alias
    assert page.get_by_label("Alias").get_attribute("placeholder") != settings.CONSOLE_ISSUER
    assert "oauth2/token" not in (page.get_by_label("Alias").get_attribute("placeholder") or "")
    # A clash names the issuer it clashes with.
    page.get_by_label("Trusted token issuer name").fill("Someone new")
    page.get_by_label("Issuer", exact=True).fill(pem_issuer.issuer)
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#id_issuer_errors")).to_contain_text(f"“{pem_issuer.name}”")
    shoot(page, "product-wizard-duplicate")
    page.get_by_label("Issuer", exact=True).fill("https://once.partner.test")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Use PEM certificate").check()
    page.get_by_label("PEM certificate", exact=True).fill(
        certificate_pem(private_key("rsa", "once"), common_name="Partner Once"))
    details = page.get_by_test_id("certificate-details")
    expect(details).to_contain_text("CN=Partner Once")  # shown on paste, before any button
    expect(details).to_contain_text("RSA 2048")
    expect(details).to_contain_text("SHA-256 fingerprint")
    shoot(page, "product-wizard-certificate-pasted")
    assert not TrustedTokenIssuer.objects.filter(issuer="https://once.partner.test").exists()
    expect(page.get_by_role("button", name="Finish")).to_have_count(1)
    page.get_by_role("button", name="Finish").click()
    expect(page.locator(".messagelist")).to_contain_text("Trusted token issuer “Someone new” created.")
    assert TrustedTokenIssuer.objects.get(issuer="https://once.partner.test").certificates.count() == 1
    shoot(page, "product-wizard-finished")
