"""Django's authentication and messages middleware run for the pages, not the token endpoint
(exchange/ops/browser.py): token responses are what they were, the console still has them, and
Django's deployment checks still find the session and CSRF middleware."""

from http import HTTPStatus

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpResponse
from django.test import RequestFactory

from exchange.ops import browser

from ..factories import mint
from ..utils import basic_auth, exchange_body, post_form

MIDDLEWARE = [browser.AuthenticationMiddleware, browser.MessageMiddleware]
#: What each leaves on a request it handled.
MARKS = {
    browser.AuthenticationMiddleware: lambda request: hasattr(request, "user"),
    browser.MessageMiddleware: lambda request: hasattr(request, "_messages"),
}


def _seen_by(middleware_class, path, method="post"):
    """Whether ``middleware_class`` worked on a request to ``path`` (what it sets on the request is there)."""
    seen = {}

    def view(request):
        seen["request"] = request
        return HttpResponse()

    request = getattr(RequestFactory(), method)(path)
    request.session = SessionStore()  # as the session middleware before them would have set it
    middleware_class(view)(request)
    return MARKS[middleware_class](seen["request"])


@pytest.mark.parametrize("middleware_class", MIDDLEWARE)
@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/token/"])
def test_the_token_endpoint_skips_them(middleware_class, path):
    assert not _seen_by(middleware_class, path)


@pytest.mark.parametrize("middleware_class", MIDDLEWARE)
@pytest.mark.parametrize("path", ["/console/", "/oauth2/signin", "/oauth2/authorize", "/oauth2/introspect",
                                  "/oauth2/tokens", "/api/applications"])
def test_every_other_path_gets_them(middleware_class, path, db):
    assert _seen_by(middleware_class, path, method="get")


def test_settings_use_them_in_django_s_order():
    names = [name.rsplit(".", 1)[1] for name in settings.MIDDLEWARE]
    assert [f"exchange.ops.browser.{cls.__name__}" for cls in MIDDLEWARE] == [
        name for name in settings.MIDDLEWARE if name.startswith("exchange.ops.browser.")]
    order = ["SessionMiddleware", "CommonMiddleware", "CsrfViewMiddleware", "AuthenticationMiddleware",
             "MessageMiddleware", "XFrameOptionsMiddleware"]
    assert [name for name in names if name in order] == order
    # By their exact names: Django's deployment checks look for these two so (security.W003, W010-W013).
    assert "django.contrib.sessions.middleware.SessionMiddleware" in settings.MIDDLEWARE
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE


@pytest.mark.parametrize("cookies", [
    {},
    {"csrftoken": "x" * 32},
    {"sessionid": "not-a-session"},
    {"messages": "garbage"},
], ids=["none", "csrf", "session", "messages"])
@pytest.mark.parametrize("grant", ["token_exchange", "client_credentials", "refused"])
def test_token_responses_keep_their_headers_and_set_no_cookie(client, make_application, pem_issuer, rsa_key, cookies,
                                                             grant):
    app = make_application(grant_types=("token_exchange", "client_credentials"))
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, app.raw_secret)}
    for name, value in cookies.items():
        client.cookies[name] = value
    if grant == "token_exchange":
        response = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer)), **auth)
        expected = HTTPStatus.OK
    elif grant == "client_credentials":
        response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials"}, **auth)
        expected = HTTPStatus.OK
    else:
        response = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer)),
                             HTTP_AUTHORIZATION=basic_auth(app.client_id, "wrong"))
        expected = HTTPStatus.UNAUTHORIZED
    assert response.status_code == expected
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert response["Cache-Control"] == "no-store"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Request-ID"]


def test_the_console_still_has_sessions_users_messages_and_csrf(client, db):
    page = client.get("/console/login/")
    assert page.status_code == HTTPStatus.OK and "csrftoken" in page.cookies  # CSRF middleware set its cookie
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)  # a session the session and authentication middleware read back
    response = client.get("/console/")
    assert response.status_code == HTTPStatus.OK
    assert response.wsgi_request.user == user
    assert hasattr(response.wsgi_request, "_messages")
