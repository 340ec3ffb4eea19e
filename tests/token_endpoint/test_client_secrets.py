"""Client secrets: stored with a fast keyed hash, never with password stretching; rotation."""

from unittest import mock

import pytest
from django.contrib.auth import hashers

from exchange import flows

from ..factories import mint
from ..utils import assert_oauth_error, basic_auth


def test_secret_is_stored_with_the_keyed_hash(db):
    app, secret = flows.create_application(name="A")
    assert app.client_secret.startswith("hmac_sha256$") and secret not in app.client_secret


def test_token_endpoint_never_runs_pbkdf2(exchange, pem_issuer, rsa_key):
    with mock.patch.object(hashers.PBKDF2PasswordHasher, "verify", side_effect=AssertionError("PBKDF2 on hot path")):
        assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == 200


def test_regenerated_secret_replaces_the_old(exchange, pem_issuer, rsa_key, application):
    old = application.raw_secret
    application.raw_secret = flows.regenerate_secret(application)
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == 200
    stale = exchange(mint(rsa_key, pem_issuer.issuer), auth=basic_auth(application.client_id, old))
    assert_oauth_error(stale, 401, "invalid_client")


def test_secret_key_rotation_with_fallbacks(settings, exchange, pem_issuer, rsa_key):
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert_oauth_error(exchange(mint(rsa_key, pem_issuer.issuer)), 401, "invalid_client")


def test_user_passwords_keep_pbkdf2(db):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("u", password="a long password")
    assert user.password.startswith("pbkdf2_sha256$")


@pytest.mark.parametrize("stored", ["", "plaintext", "hmac_sha256$salt$" + "0" * 64])
def test_hasher_rejects_garbage(stored):
    from exchange.client_auth import check_secret

    assert check_secret("anything", stored) is False
