"""Linked accounts in a real browser: link on the issuer's Linking tab, then remove the link and disable
the user from the Users page (each asks first)."""

from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from exchange.models import LinkedIdentity

from .conftest import shoot


def test_link_remove_and_disable_through_the_console(console, pem_issuer):
    page = console
    user = get_user_model().objects.create_user("nora", email="nora@example.com")
    page.goto(f"{page.base}/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=linking")
    expect(page.get_by_test_id("linking-warning")).to_contain_text("take over a local account")
    page.get_by_label("External subject (sub)").fill("ext-nora")
    page.get_by_label("Local user (username)").fill("nora")
    page.get_by_role("button", name="Link", exact=True).click()
    expect(page.get_by_test_id("linked-identities")).to_contain_text("ext-nora")
    shoot(page, "linking-tab")
    page.get_by_role("link", name="nora").click()
    expect(page.get_by_test_id("linked-identities")).to_contain_text("ext-nora")
    expect(page.get_by_test_id("local-account")).to_contain_text(str(user.local_account.subject))
    shoot(page, "user-page")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("linked-identities").get_by_role("button", name="Remove").click()
    expect(page.locator(".messagelist")).to_contain_text("Link removed")
    assert not LinkedIdentity.objects.exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("user-status").click()
    expect(page.locator(".messagelist")).to_contain_text("disabled")
    expect(page.get_by_test_id("local-account")).to_contain_text("Disabled")
    user.refresh_from_db()
    assert not user.is_active
