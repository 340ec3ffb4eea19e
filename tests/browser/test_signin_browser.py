"""Sign-in in a real browser: an administrator registers an application for the Code grant in the console,
then a local user signs in to it through the authorization code flow with PKCE, and the code is exchanged."""

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from exchange.accounts import local_subject

from .conftest import shoot
from .test_console_browser import create_application

pytestmark = [pytest.mark.browser, pytest.mark.live]

CALLBACK = "https://app.example/callback"


def test_a_local_user_signs_in_to_a_registered_application(console, browser, live_server):
    page = console
    client_id, secret = create_application(page, "Sign-in app", "Traditional OIDC web")
    page.get_by_role("link", name="General").click()
    page.get_by_label("Allowed scopes").fill("openid profile")
    page.get_by_role("button", name="Update").click()
    expect(page.locator(".messagelist")).to_contain_text("Application updated.")
    page.get_by_role("link", name="Protocol").click()
    page.get_by_label("Code", exact=True).check()
    page.get_by_label("Refresh Token").check()
    page.get_by_label("Authorized redirect URLs").fill(CALLBACK)
    page.get_by_role("button", name="Update").click()
    expect(page.locator(".messagelist")).to_contain_text("Application updated.")
    expect(page.get_by_label("Authorized redirect URLs")).to_have_value(CALLBACK)
    shoot(page, "signin-01-protocol")

    user = get_user_model().objects.create_user("dana", "dana@example.com", "dana-password-1", first_name="Dana")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = f"{live_server.url}/oauth2/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK, "scope": "openid profile",
        "state": "browser-state", "nonce": "browser-nonce", "code_challenge": challenge,
        "code_challenge_method": "S256",
    })

    context = browser.new_context(viewport={"width": 1280, "height": 900})  # the user's own browser: no admin cookie
    context.set_default_timeout(15_000)
    user_page = context.new_page()
    callbacks = []
    user_page.route(CALLBACK + "**", lambda route: (callbacks.append(route.request.url),
                                                     route.fulfill(status=200, body="signed in")))
    try:
        user_page.goto(url)
        expect(user_page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(user_page.get_by_text("Sign in to continue to Sign-in app")).to_be_visible()
        expect(user_page.get_by_role("link", name="Applications")).to_have_count(0)  # none of the console
        user_page.get_by_label("Username").fill("dana")
        user_page.get_by_label("Password").fill("wrong password")
        user_page.get_by_role("button", name="Sign in").click()
        expect(user_page.get_by_role("alert")).to_contain_text("correct username and password")
        user_page.get_by_label("Password").fill("dana-password-1")
        shoot(user_page, "signin-02-sign-in")
        user_page.get_by_role("button", name="Sign in").click()
        expect(user_page.get_by_text("Sign-in app asks to:")).to_be_visible()
        expect(user_page.get_by_text("Your name and username")).to_be_visible()
        shoot(user_page, "signin-03-consent")
        user_page.get_by_role("button", name="Allow").click()
        user_page.wait_for_url(CALLBACK + "**")
    finally:
        context.close()

    params = parse_qs(urlsplit(callbacks[-1]).query)
    assert params["state"] == ["browser-state"]
    response = requests.post(f"{live_server.url}/oauth2/token", auth=(client_id, secret), timeout=10, data={
        "grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    })
    assert response.status_code == 200, response.text
    body = response.json()
    jwks = jwt.PyJWKClient(f"{live_server.url}/oauth2/jwks")
    id_token = body["id_token"]
    claims = jwt.decode(id_token, jwks.get_signing_key_from_jwt(id_token), algorithms=["RS256", "ES256", "EdDSA"],
                        audience=client_id)
    assert claims["sub"] == local_subject(user) and claims["nonce"] == "browser-nonce"
    assert claims["preferred_username"] == "dana"
    assert "refresh_token" in body
