"""Client credentials as exchange/client_auth.py reads them, function by function: RFC 6749 §2.3.1 Basic
decoding, which method a request uses, the secret check's bounds and what ``authenticate`` reports."""

import base64
from types import SimpleNamespace
from unittest import mock

import pytest
from django.contrib.auth.hashers import make_password

from exchange import client_auth
from exchange.client_auth import Credentials, MalformedCredentials, MultipleMethods, extract, parse_basic

from ..utils import basic_auth


def _basic(raw, scheme="Basic"):
    return f"{scheme} " + base64.b64encode(raw).decode("ascii")


@pytest.mark.parametrize("header, expected", [
    (_basic(b"id:secret"), ("id", "secret")),
    (_basic(b"id:se:cret"), ("id", "se:cret")),  # split at the first colon only
    (_basic(b"a+b%3A:p%40ss+word"), ("a b:", "p@ss word")),  # each part form-urldecoded
    (_basic(b"id:"), ("id", "")),
    ("  " + _basic(b"id:secret", "bAsIc") + "  ", ("id", "secret")),
    ("Basic   " + base64.b64encode(b"id:secret").decode("ascii") + " ", ("id", "secret")),
])
def test_basic_credentials_are_decoded(header, expected):
    assert parse_basic(header) == expected


@pytest.mark.parametrize("header", [
    "Basic", "Basic    ", "Bearer " + base64.b64encode(b"id:secret").decode("ascii"),
    "Basic !!!", _basic(b"no colon"), _basic(b":secret"), _basic(b"\xff:\xfe"),
    _basic(b"id:secret") + "=",  # padding past the canonical encoding
    "Basic aWQ6c2VjcmV0ZQ",  # unpadded
])
def test_unreadable_basic_credentials_are_refused(header):
    with pytest.raises(MalformedCredentials):
        parse_basic(header)


def test_which_method_a_request_uses():
    basic = _basic(b"id:secret")
    assert extract(basic, None, None) == Credentials("id", "secret", "client_secret_basic")
    assert extract(basic, "id", None) == Credentials("id", "secret", "client_secret_basic")
    assert extract(basic, "", "") == Credentials("id", "secret", "client_secret_basic")
    assert extract(None, "id", "secret") == Credentials("id", "secret", "client_secret_post")
    assert extract("", "id", "secret") == Credentials("id", "secret", "client_secret_post")
    assert extract(None, "id", None) == Credentials("id", None, "none")
    assert extract(None, "id", "") == Credentials("id", None, "none")
    with pytest.raises(MultipleMethods):
        extract(basic, None, "secret")
    with pytest.raises(MultipleMethods):
        extract(basic, "other", None)
    with pytest.raises(MalformedCredentials):
        extract(None, None, "secret")
    with pytest.raises(MalformedCredentials):
        extract(None, "", None)


@pytest.fixture
def stored():
    return make_password("s" * client_auth.MAX_SECRET_LENGTH, hasher="hmac_sha256")


def test_secret_length_bound(stored):
    assert client_auth.check_secret("s" * client_auth.MAX_SECRET_LENGTH, stored)
    assert not client_auth.check_secret("s" * client_auth.MAX_SECRET_LENGTH + "s", stored)
    assert not client_auth.check_secret("s" * (client_auth.MAX_SECRET_LENGTH - 1), stored)
    assert (client_auth.MAX_CLIENT_ID_LENGTH, client_auth.MAX_SECRET_LENGTH) == (100, 512)


def test_every_failed_check_still_hashes_once(stored):
    """Unknown clients, missing and oversized secrets cost one hash, as a wrong secret does."""
    for provided, against in [("x", None), (None, stored), ("s" * 600, stored), ("x", stored), ("x", "")]:
        with mock.patch.object(client_auth, "check_password", wraps=client_auth.check_password) as check:
            assert client_auth.check_secret(provided, against) is False
        assert check.call_count == 1
        (secret, hashed), _ = check.call_args
        assert isinstance(secret, str) and hashed.startswith("hmac_sha256$")


def test_the_dummy_hash_is_made_once():
    client_auth._DUMMY_HASH = None
    client_auth.check_secret("x", None)
    first = client_auth._DUMMY_HASH
    assert first.startswith("hmac_sha256$")
    client_auth.check_secret("y", None)
    assert client_auth._DUMMY_HASH is first


def _load(applications):
    calls = []

    def load(client_id):
        calls.append(client_id)
        return applications.get(client_id)

    load.calls = calls
    return load


def test_what_authenticate_reports(stored):
    application = SimpleNamespace(client_secret=stored, is_usable=lambda request: True)
    secret = "s" * client_auth.MAX_SECRET_LENGTH
    load = _load({"app": application})
    ok = client_auth.authenticate(None, "app", secret, load)
    assert (ok.ok, ok.application, ok.credentials) == (True, application, Credentials("app", secret, "client_secret_post"))
    wrong = client_auth.authenticate(None, "app", "nope", load)
    assert (wrong.ok, wrong.application) == (False, None)  # a wrong secret names no application
    unknown = client_auth.authenticate(None, "ghost", "nope", load)
    assert (unknown.ok, unknown.application) == (False, None)
    unreadable = client_auth.authenticate("Basic !!!", None, None, load)
    assert unreadable == client_auth.Authentication(False)
    assert load.calls == ["app", "app", "ghost"]


def test_a_disabled_application_with_the_right_secret_is_named_but_not_authenticated(stored):
    """The registry may still hand out an application that was disabled since: the right secret is not enough."""
    disabled = SimpleNamespace(client_secret=stored, is_usable=lambda request: False)
    secret = "s" * client_auth.MAX_SECRET_LENGTH
    for authorization, body_id, body_secret, method in [
        (None, "app", secret, "client_secret_post"),
        (basic_auth("app", secret), None, None, "client_secret_basic"),
    ]:
        result = client_auth.authenticate(authorization, body_id, body_secret, _load({"app": disabled}))
        assert result == client_auth.Authentication(False, disabled, Credentials("app", secret, method))


def test_implausible_client_ids_are_never_looked_up():
    load = _load({})
    result = client_auth.authenticate(None, "x" * (client_auth.MAX_CLIENT_ID_LENGTH + 1), "secret", load)
    assert not result.ok and load.calls == []
    client_auth.authenticate(None, "a\x00", "secret", load)
    assert load.calls == []
