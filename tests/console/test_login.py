"""Console sign-in: Django admin's login form behind per-address and per-username brute-force throttling."""

import time
from http import HTTPStatus

import pytest
from django.test import Client

PASSWORD = "correct horse battery staple"


@pytest.fixture
def root_user(django_user_model):
    """A superuser "root" with PASSWORD (not pytest-django's ``admin_user``, whose password is fixed)."""
    return django_user_model.objects.create_superuser("root", "root@example.test", PASSWORD)


def _window_start():
    """The start of the next 300 s throttling window (windows are aligned to the epoch)."""
    return (int(time.time()) // 300 + 1) * 300


def sign_in(username, password, address="127.0.0.1", **extra):
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR=address)
    response = client.post("/console/login/", {"username": username, "password": password, "next": "/console/",
                                                **extra})
    return client, response


def assert_throttled(response):
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(response["Retry-After"]) >= 1
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    assert b"Too many failed sign-ins" in response.content


def test_a_right_password_signs_in_and_a_wrong_one_shows_the_form(root_user):
    client, response = sign_in("root", PASSWORD)
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == "/console/"
    assert client.get("/console/").status_code == HTTPStatus.OK
    _, response = sign_in("root", "wrong")
    assert response.status_code == HTTPStatus.OK and b"errornote" in response.content


def test_one_address_guessing_is_stopped_even_with_the_right_password(root_user, settings, time_machine):
    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS": 3}
    time_machine.move_to(_window_start(), tick=False)
    for _ in range(3):
        assert sign_in("root", "wrong", "198.51.100.7")[1].status_code == HTTPStatus.OK
    client, response = sign_in("root", PASSWORD, "198.51.100.7")
    assert_throttled(response)
    assert client.get("/console/").status_code == HTTPStatus.FOUND  # not signed in: sent to the login page
    assert b'value="root"' in response.content  # the form, ready for the next try
    # Another address is not affected (the per-username limit is higher) ...
    assert sign_in("root", PASSWORD, "198.51.100.8")[1].status_code == HTTPStatus.FOUND
    # ... and the first one may try again once the window has ended.
    time_machine.shift(301)
    assert sign_in("root", PASSWORD, "198.51.100.7")[1].status_code == HTTPStatus.FOUND


def test_one_username_guessed_from_many_addresses_is_stopped(root_user, settings, time_machine):
    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_USERNAME": 4}
    time_machine.move_to(_window_start(), tick=False)
    for i in range(4):
        assert sign_in("root", "wrong", f"203.0.113.{i}")[1].status_code == HTTPStatus.OK
    assert_throttled(sign_in("root", PASSWORD, "203.0.113.200")[1])
    time_machine.shift(100)
    response = sign_in("root", PASSWORD, "203.0.113.201")[1]
    assert_throttled(response)
    assert response["Retry-After"] == "200"


def test_successful_sign_ins_do_not_count(root_user, settings, time_machine):
    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS": 2}
    time_machine.move_to(_window_start(), tick=False)
    for _ in range(5):
        assert sign_in("root", PASSWORD)[1].status_code == HTTPStatus.FOUND


@pytest.mark.parametrize("username", [
    "", "x" * 10_000, "root%00", "%ED%A0%80", "%FF%FE", "%27+OR+1%3D1+--", "Root", "r%C3%B6%CC%88ot", "root&username=root%00",
])
def test_hostile_usernames_fail_and_are_counted_without_error(root_user, settings, time_machine, username):
    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS": 2}
    time_machine.move_to(_window_start(), tick=False)
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR="192.0.2.50")

    def attempt():
        body = f"username={username}&password={PASSWORD.replace(' ', '+')}"
        return client.post("/console/login/", body, content_type="application/x-www-form-urlencoded")

    for _ in range(2):
        assert attempt().status_code == HTTPStatus.OK
    assert_throttled(attempt())


def test_spellings_of_one_username_share_its_counter(root_user, settings, time_machine):
    """What the sign-in form strips and normalizes (NFKC) cannot be varied to get more guesses."""
    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_USERNAME": 3}
    time_machine.move_to(_window_start(), tick=False)
    for i, spelling in enumerate([" root", "root ", "\uff52\uff4f\uff4f\uff54"]):  # the last: fullwidth letters
        assert sign_in(spelling, "wrong", f"203.0.113.{i}")[1].status_code == HTTPStatus.OK
    assert_throttled(sign_in("root", PASSWORD, "203.0.113.99")[1])


def test_the_login_page_itself_and_csrf_are_admins(root_user):
    client = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    assert client.get("/console/login/").status_code == HTTPStatus.OK
    response = client.post("/console/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == HTTPStatus.FORBIDDEN  # no CSRF token: refused before any password check


def test_the_password_is_hidden_from_error_reports(rf, root_user):
    from django.views.debug import SafeExceptionReporterFilter

    from django.contrib import admin

    request = rf.post("/console/login/", {"username": "root", "password": "s3cret-pw"})
    request._dont_enforce_csrf_checks = True
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    request.user, request.session = AnonymousUser(), SessionStore()
    admin.site.login(request)
    assert SafeExceptionReporterFilter().get_post_parameters(request)["password"] != "s3cret-pw"


def test_padding_cannot_empty_or_shorten_the_username_counter(root_user, settings, time_machine):
    """The form strips before its length check: 150 spaces + "root" is still root's guess."""
    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_USERNAME": 2}
    time_machine.move_to(_window_start(), tick=False)
    for i in range(2):
        assert sign_in("root", "wrong", f"203.0.113.{i}")[1].status_code == HTTPStatus.OK
    for padding in (150, 149, 147):
        assert_throttled(sign_in(" " * padding + "root", PASSWORD, f"203.0.113.{padding}")[1])


def test_an_attempt_counts_while_its_password_is_being_checked(root_user, settings, monkeypatch):
    """Guesses sent in parallel see each other: the count is taken before the slow password check."""
    from django.contrib.admin import AdminSite

    from exchange import throttling

    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS": 1}
    seen = []
    check = AdminSite.login

    def login_in_progress(self, request, extra_context=None):
        seen.append(throttling.retry_after("root", "198.51.100.20", policy=throttling.CONSOLE_LOGIN))
        return check(self, request, extra_context)

    monkeypatch.setattr(AdminSite, "login", login_in_progress)
    assert sign_in("root", PASSWORD, "198.51.100.20")[1].status_code == HTTPStatus.FOUND
    assert seen[0] > 0  # a parallel request would have been refused
    assert throttling.retry_after("root", "198.51.100.20", policy=throttling.CONSOLE_LOGIN) == 0  # taken back


def test_the_throttled_form_still_leads_to_the_console(root_user, settings):
    settings.TOKEN_EXCHANGE = {"CONSOLE_LOGIN_MAX_FAILURES_PER_ADDRESS": 1}
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR="198.51.100.30")
    client.post("/console/login/", {"username": "root", "password": "wrong"})
    response = client.post("/console/login/", {"username": "root", "password": PASSWORD})
    assert_throttled(response)
    assert b'name="next" value="/console/"' in response.content
