"""Every refusal of the sign-in flow (exchange/signin.py): a redirect with ``error`` to a registered
redirect URI, else a page (never a redirect elsewhere), and the token endpoint's RFC 6749 §5.2 JSON."""

import logging
from http import HTTPStatus
from urllib.parse import urlencode, urlsplit

import pytest
from django.conf import settings

from exchange import flows

from ..utils import assert_oauth_error, basic_auth, post_form
from .conftest import PASSWORD, REDIRECT_URI, pkce_pair, query


def assert_redirected_error(response, error, state="st-1"):
    """A refusal sent back to the registered redirect URI: error, state and iss (RFC 9207)."""
    assert response.status_code == HTTPStatus.FOUND, response.content[:300]
    location = response["Location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    params = query(location)
    assert params["error"] == error, params
    assert params.get("state") == state and params["iss"] == settings.CONSOLE_ISSUER
    assert "code" not in params
    return params


def assert_error_page(response, cause, status=HTTPStatus.BAD_REQUEST):
    """A refusal that is not sent anywhere: a page, no Location."""
    assert response.status_code == status, response.content[:300]
    assert "Location" not in response
    assert response.context["cause"] in ((cause,) if isinstance(cause, str) else cause)


# -- PKCE ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("app_fixture", ["signin_app", "spa_app"])
def test_a_request_without_pkce_is_refused(request, signed_in, authorize_url, app_fixture):
    app = request.getfixturevalue(app_fixture)
    assert_redirected_error(signed_in.get(authorize_url(app)), "invalid_request")


def test_pkce_for_confidential_clients_can_be_turned_off_but_never_for_public_ones(
        settings, signed_in, authorize_url, signin_app, spa_app):
    settings.TOKEN_EXCHANGE = {"PKCE_REQUIRED_FOR_CONFIDENTIAL_CLIENTS": False}
    assert signed_in.get(authorize_url(signin_app)).status_code == HTTPStatus.OK  # the consent page
    assert_redirected_error(signed_in.get(authorize_url(spa_app)), "invalid_request")


@pytest.mark.parametrize("method", ["plain", None, "s256", "S512", ""])
def test_only_s256_is_accepted(signed_in, authorize_url, signin_app, method):
    """``plain``, a challenge without a method (which means plain) and anything else: refused before consent."""
    _, challenge = pkce_pair()
    assert_redirected_error(signed_in.get(authorize_url(signin_app, challenge, method=method)), "invalid_request")


@pytest.mark.parametrize("app_fixture", ["signin_app", "spa_app"])
def test_a_wrong_or_missing_verifier_is_refused(request, get_code, redeem, app_fixture):
    app = request.getfixturevalue(app_fixture)
    _, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    code = get_code(app, challenge)["code"]
    assert_oauth_error(redeem(app, code, other_verifier), 400, "invalid_grant")
    code = get_code(app, challenge)["code"]
    assert_oauth_error(redeem(app, code, None), 400, "invalid_request")


def test_a_code_is_used_once(get_code, redeem, signin_app):
    verifier, challenge = pkce_pair()
    code = get_code(signin_app, challenge)["code"]
    assert redeem(signin_app, code, verifier).status_code == HTTPStatus.OK
    assert_oauth_error(redeem(signin_app, code, verifier), 400, "invalid_grant")


def test_a_code_is_only_for_its_client(get_code, redeem, signin_app, make_application):
    other = make_application(name="Other", application_type="traditional", grant_types=["authorization_code"],
                             scopes="openid", redirect_uris=REDIRECT_URI)
    verifier, challenge = pkce_pair()
    code = get_code(signin_app, challenge)["code"]
    assert_oauth_error(redeem(other, code, verifier), 400, "invalid_grant")
    assert redeem(signin_app, code, verifier).status_code == HTTPStatus.OK  # untouched by the attempt


# -- redirect URIs ------------------------------------------------------------------------------

@pytest.mark.parametrize("redirect_uri", [
    "https://app.example/callback/",
    "https://APP.example/callback",
    "https://app.example/callback?x=1",
    "https://app.example/callback#frag",
    "https://app.example:443/callback",
    "https://app.example/callback/../evil",
    "https://app.example.evil.test/callback",
    "https://evil.test/?https://app.example/callback",
    "http://app.example/callback",
    "//evil.test/callback",
    "javascript:alert(1)",
    "",
])
def test_an_unregistered_redirect_uri_gets_a_page_never_a_redirect(client, signed_in, authorize_url, signin_app,
                                                                     redirect_uri):
    _, challenge = pkce_pair()
    response = signed_in.get(authorize_url(signin_app, challenge, redirect_uri=redirect_uri))
    assert_error_page(response, ("mismatching_redirect_uri", "invalid_redirect_uri"))


def test_the_redirect_uri_is_required(client, authorize_url, signin_app):
    _, challenge = pkce_pair()
    url = authorize_url(signin_app, challenge, redirect_uri=None)
    assert "redirect_uri" not in url
    assert_error_page(client.get(url), "missing_redirect_uri")


def test_loopback_ports_are_not_interchangeable(signed_in, authorize_url, make_application):
    app = make_application(name="Native", application_type="traditional", grant_types=["authorization_code"],
                           scopes="openid", redirect_uris="http://127.0.0.1:8123/cb")
    _, challenge = pkce_pair()
    response = signed_in.get(authorize_url(app, challenge, redirect_uri="http://127.0.0.1:9999/cb"))
    assert_error_page(response, "mismatching_redirect_uri")


@pytest.mark.parametrize("redirect_uri, error", [
    ("https://app.example/other", "invalid_grant"),  # registered, but not the one the code was issued for
    ("https://app.example/callback/", "invalid_grant"),
    (None, "invalid_request"),  # RFC 6749 §4.1.3: required when the authorization request had one (always here)
])
def test_the_token_request_repeats_the_redirect_uri(get_code, redeem, make_application, redirect_uri, error):
    app = make_application(name="Two URIs", application_type="traditional", grant_types=["authorization_code"],
                           scopes="openid", redirect_uris=f"{REDIRECT_URI} https://app.example/other")
    verifier, challenge = pkce_pair()
    code = get_code(app, challenge)["code"]
    assert_oauth_error(redeem(app, code, verifier, redirect_uri=redirect_uri), 400, error)


def test_the_sign_in_page_never_redirects_off_site(client, local_user):
    for target in ("https://evil.test/", "//evil.test/", "/\\evil.test", "javascript:alert(1)"):
        response = client.post("/oauth2/signin?" + urlencode({"next": target}),
                               {"username": "carol", "password": PASSWORD, "next": target})
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"] == "/oauth2/signout", (target, response["Location"])
        client.logout()


# -- who may sign in, and to what ---------------------------------------------------------------

def test_an_unknown_or_disabled_application_gets_a_page(client, signed_in, authorize_url, signin_app):
    _, challenge = pkce_pair()
    flows.update_application(signin_app, enabled=False)
    for c in (client, signed_in):
        assert_error_page(c.get(authorize_url(signin_app, challenge)), "invalid_client_id")
    signin_app.client_id = "no-such-client"
    assert_error_page(client.get(authorize_url(signin_app, challenge)), "invalid_client_id")


@pytest.mark.parametrize("grant_types", [["token_exchange"], ["refresh_token", "client_credentials"], []])
def test_an_application_without_the_code_grant_is_refused(signed_in, authorize_url, make_application, grant_types):
    app = make_application(name="No code", application_type="traditional", grant_types=grant_types,
                           scopes="openid", redirect_uris=REDIRECT_URI)
    _, challenge = pkce_pair()
    assert_redirected_error(signed_in.get(authorize_url(app, challenge)), "unauthorized_client")


def test_a_code_is_refused_once_the_code_grant_is_removed(get_code, redeem, signin_app):
    verifier, challenge = pkce_pair()
    code = get_code(signin_app, challenge)["code"]
    flows.update_application(signin_app, allowed_grant_types=["refresh_token"])
    assert_oauth_error(redeem(signin_app, code, verifier), 400, "unauthorized_client")


@pytest.mark.parametrize("response_type", ["token", "id_token", "id_token token", "code id_token", "code token",
                                           "code id_token token", "none", "device_code"])
def test_only_the_code_response_type_is_served(signed_in, authorize_url, signin_app, response_type):
    _, challenge = pkce_pair()
    response = signed_in.get(authorize_url(signin_app, challenge, response_type=response_type))
    assert response.status_code == HTTPStatus.FOUND
    params = query(response["Location"].replace("#", "?", 1) if "?" not in response["Location"]
                   else response["Location"])
    assert params["error"] in ("unauthorized_client", "unsupported_response_type") and "code" not in params


def test_a_disabled_user_cannot_sign_in(client, local_user):
    local_user.is_active = False
    local_user.save()
    response = client.post("/oauth2/signin", {"username": "carol", "password": PASSWORD})
    assert response.status_code == HTTPStatus.OK and "_auth_user_id" not in client.session


def test_a_user_disabled_after_consent_gets_no_tokens_and_keeps_none(client, get_code, redeem, signin_app,
                                                                   local_user):
    verifier, challenge = pkce_pair()
    code = get_code(signin_app, challenge, scope="openid")["code"]
    local_user.is_active = False
    local_user.save()
    assert_oauth_error(redeem(signin_app, code, verifier), 400, "invalid_grant")
    local_user.is_active = True
    local_user.save()
    code = get_code(signin_app, challenge, scope="openid")["code"]
    tokens = redeem(signin_app, code, verifier).json()
    local_user.is_active = False
    local_user.save()
    refreshed = post_form(client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                          HTTP_AUTHORIZATION=basic_auth(signin_app.client_id, signin_app.raw_secret))
    assert_oauth_error(refreshed, 400, "invalid_grant")
    userinfo = client.get("/oauth2/userinfo", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert userinfo.status_code == HTTPStatus.UNAUTHORIZED


def test_the_session_of_a_disabled_user_is_no_longer_signed_in(signed_in, authorize_url, signin_app, local_user):
    local_user.is_active = False
    local_user.save()
    _, challenge = pkce_pair()
    response = signed_in.get(authorize_url(signin_app, challenge))
    assert response.status_code == HTTPStatus.FOUND and response["Location"].startswith("/oauth2/signin?next=")


# -- public clients: the code flow with PKCE, nothing that needs a secret --------------------------

def test_a_public_client_presenting_a_secret_is_refused(get_code, redeem, client, spa_app):
    verifier, challenge = pkce_pair()
    code = get_code(spa_app, challenge)["code"]
    assert_oauth_error(redeem(spa_app, code, verifier, client_secret="guess"), 401, "invalid_client")
    basic = post_form(client, "/oauth2/token", {"grant_type": "authorization_code", "code": code,
                                               "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
                      HTTP_AUTHORIZATION=basic_auth(spa_app.client_id, ""))
    assert_oauth_error(basic, 401, "invalid_client")


@pytest.mark.parametrize("grant_type", ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"])
def test_a_public_client_gets_no_secret_grant(client, spa_app, grant_type):
    response = post_form(client, "/oauth2/token", {"grant_type": grant_type, "client_id": spa_app.client_id})
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED)
    assert "access_token" not in response.json()


def test_a_confidential_client_must_authenticate(get_code, client, signin_app):
    verifier, challenge = pkce_pair()
    code = get_code(signin_app, challenge)["code"]
    response = post_form(client, "/oauth2/token", {"grant_type": "authorization_code", "code": code,
                                                  "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
                                                  "client_id": signin_app.client_id})
    assert_oauth_error(response, 401, "invalid_client")


# -- scopes, consent, prompt ----------------------------------------------------------------------

def test_scopes_are_narrowed_to_the_applications_never_the_management_scope(get_code, redeem, signin_app):
    verifier, challenge = pkce_pair()
    code = get_code(signin_app, challenge, scope="openid console:manage introspection email unknown")["code"]
    body = redeem(signin_app, code, verifier).json()
    assert body["scope"] == "openid email"


@pytest.mark.parametrize("scope", [None, "", "console:manage", "unknown"])
def test_a_sign_in_without_any_granted_scope_works_and_grants_none(get_code, redeem, signin_app, scope):
    verifier, challenge = pkce_pair()
    body = redeem(signin_app, get_code(signin_app, challenge, scope=scope)["code"], verifier).json()
    assert "access_token" in body and "scope" not in body and "id_token" not in body


def test_denying_consent_redirects_access_denied(signed_in, authorize_url, signin_app):
    _, challenge = pkce_pair()
    page = signed_in.get(authorize_url(signin_app, challenge))
    form = page.context["form"]
    data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
    assert_redirected_error(signed_in.post("/oauth2/authorize", data), "access_denied")


@pytest.mark.parametrize("change, cause", [
    ({"client_id": "no-such-client"}, "invalid_client_id"),
    ({"redirect_uri": "https://evil.test/callback"}, "mismatching_redirect_uri"),
    ({"client_id": ""}, "bad_form"),
])
def test_a_tampered_consent_form_is_refused(signed_in, authorize_url, signin_app, change, cause):
    _, challenge = pkce_pair()
    page = signed_in.get(authorize_url(signin_app, challenge))
    form = page.context["form"]
    data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
    assert_error_page(signed_in.post("/oauth2/authorize", {**data, **change, "allow": "Authorize"}), cause)


def test_a_tampered_consent_form_cannot_widen_the_scopes_or_drop_pkce(signed_in, authorize_url, signin_app):
    _, challenge = pkce_pair()
    page = signed_in.get(authorize_url(signin_app, challenge, scope="openid"))
    form = page.context["form"]
    data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
    widened = signed_in.post("/oauth2/authorize", {**data, "scope": "openid console:manage", "allow": "Authorize"})
    assert widened.status_code == HTTPStatus.FOUND
    from oauth2_provider.models import Grant
    assert Grant.objects.get().scope == "openid"
    no_pkce = signed_in.post("/oauth2/authorize", {**data, "code_challenge": "", "code_challenge_method": "",
                                                  "allow": "Authorize"})
    assert query(no_pkce["Location"])["error"] == "invalid_request"


def test_first_party_applications_skip_consent(signed_in, authorize_url, signin_app):
    flows.update_application(signin_app, skip_authorization=True)
    _, challenge = pkce_pair()
    response = signed_in.get(authorize_url(signin_app, challenge))
    assert response.status_code == HTTPStatus.FOUND and "code" in query(response["Location"])


def test_approval_prompt_auto_does_not_skip_consent(get_code, redeem, signed_in, authorize_url, signin_app):
    verifier, challenge = pkce_pair()
    redeem(signin_app, get_code(signin_app, challenge)["code"], verifier)  # a live token exists
    response = signed_in.get(authorize_url(signin_app, challenge, approval_prompt="auto"))
    assert response.status_code == HTTPStatus.OK and "form" in response.context


def test_prompt_none(client, signed_in, authorize_url, signin_app):
    _, challenge = pkce_pair()
    assert_redirected_error(signed_in.get(authorize_url(signin_app, challenge, prompt="none")), "consent_required")
    signed_in.logout()
    assert_redirected_error(client.get(authorize_url(signin_app, challenge, prompt="none")), "login_required")


def test_an_anonymous_visitor_is_asked_to_sign_in_only_for_a_valid_request(client, authorize_url, signin_app):
    _, challenge = pkce_pair()
    good = client.get(authorize_url(signin_app, challenge))
    assert good.status_code == HTTPStatus.FOUND and urlsplit(good["Location"]).path == "/oauth2/signin"
    assert_redirected_error(client.get(authorize_url(signin_app)), "invalid_request")  # no PKCE: told at once


@pytest.mark.parametrize("name", ["client_id", "redirect_uri", "state", "code_challenge", "scope"])
def test_a_repeated_parameter_gets_a_page(client, authorize_url, signin_app, name):
    _, challenge = pkce_pair()
    assert_error_page(client.get(authorize_url(signin_app, challenge) + f"&{name}=x"), "repeated_parameter")


# -- userinfo -------------------------------------------------------------------------------------

def test_userinfo_refuses_a_token_without_a_user(client, make_application):
    app = make_application(name="Machine", grant_types=["client_credentials"], scopes="openid")
    token = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": "openid"},
                      HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret)).json()["access_token"]
    response = client.get("/oauth2/userinfo", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_userinfo_needs_the_openid_scope(get_code, redeem, client, signin_app):
    verifier, challenge = pkce_pair()
    tokens = redeem(signin_app, get_code(signin_app, challenge, scope="profile")["code"], verifier).json()
    assert "id_token" not in tokens
    response = client.get("/oauth2/userinfo", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert response.status_code == HTTPStatus.UNAUTHORIZED and "Bearer" in response["WWW-Authenticate"]


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer not-a-token", "Bearer eyJ.eyJ.x", "Basic Zm9vOmJhcg=="])
def test_userinfo_refuses_anything_else(client, db, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    assert client.get("/oauth2/userinfo", **headers).status_code == HTTPStatus.UNAUTHORIZED


# -- the sign-in page: throttled, audited, not the console ------------------------------------------

def test_sign_in_is_throttled_with_the_consoles_counters(settings, client, local_user):
    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS": 3}
    client.post("/console/login/", {"username": "carol", "password": "wrong"})  # counted together
    for _ in range(2):
        assert client.post("/oauth2/signin", {"username": "carol", "password": "wrong"}).status_code == HTTPStatus.OK
    throttled = client.post("/oauth2/signin", {"username": "carol", "password": PASSWORD})
    assert throttled.status_code == HTTPStatus.TOO_MANY_REQUESTS and int(throttled["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    assert client.post("/console/login/", {"username": "admin", "password": "x"}).status_code == 429


def test_a_successful_sign_in_is_not_counted(settings, client, local_user):
    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS": 2}
    for _ in range(3):
        assert client.post("/oauth2/signin", {"username": "carol", "password": PASSWORD}).status_code == HTTPStatus.FOUND
        client.logout()


def test_sign_in_failures_are_logged_with_the_request_id(client, local_user, caplog):
    with caplog.at_level(logging.WARNING, logger="exchange.audit"):
        response = client.post("/oauth2/signin", {"username": "carol", "password": "wrong"})
    records = [r for r in caplog.records if getattr(r, "event", "") == "signin_failed"]
    assert len(records) == 1 and records[0].username == "carol"
    assert records[0].request_id == response["X-Request-ID"]
    assert "wrong" not in caplog.text


def test_a_local_user_never_reaches_the_console(client, local_user):
    assert client.post("/oauth2/signin", {"username": "carol", "password": PASSWORD}).status_code == HTTPStatus.FOUND
    console = client.get("/console/")
    assert console.status_code == HTTPStatus.FOUND and console["Location"].startswith("/console/login/")
    assert client.get("/api/server/v1/applications").status_code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN)


def test_sign_out(client, local_user):
    client.post("/oauth2/signin", {"username": "carol", "password": PASSWORD})
    assert client.get("/oauth2/signout").status_code == HTTPStatus.OK and "_auth_user_id" in client.session
    assert client.post("/oauth2/signout").status_code == HTTPStatus.OK
    assert "_auth_user_id" not in client.session
