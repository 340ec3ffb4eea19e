"""Management-API changes reach the very next token exchange: the API changes data only through
``exchange.flows``, whose flows invalidate the registry and the key-source caches.

The registry's safety nets are pushed out of reach here (a version check every hour, entries kept
for a day), so only the invalidation that follows the change itself can make the exchange see it.
"""

from http import HTTPStatus

import pytest

from exchange import flows, key_sources
from exchange.registry import registry
from exchange.subject_token import CAUSES

from ..factories import certificate_pem, mint, private_key
from ..utils import assert_oauth_error


def assert_refused(response, cause):
    """The exchange refused the subject token for ``cause`` (its fixed sentence)."""
    assert assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")["error_description"] == CAUSES[cause]


@pytest.fixture(autouse=True)
def registry_kept_for_a_day(settings):
    settings.TOKEN_EXCHANGE = {**settings.TOKEN_EXCHANGE, "REGISTRY_CHECK_MS": 3_600_000,
                               "REGISTRY_MAX_AGE_SECONDS": 86_400}
    registry.clear()


@pytest.fixture
def warm(exchange, pem_issuer, rsa_key):
    """One exchange first, so the issuer, its keys and the application are cached when the API changes them."""
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK


def test_issuer_disabled_through_the_api(api, warm, exchange, pem_issuer, rsa_key):
    """Disabling an issuer stops its tokens at once."""
    assert api.patch(f"trusted-token-issuers/{pem_issuer.pk}", {"enabled": False}).status_code == HTTPStatus.OK
    assert_refused(exchange(mint(rsa_key, pem_issuer.issuer)), "issuer_disabled")


def test_issuer_deleted_through_the_api(api, warm, exchange, pem_issuer, rsa_key):
    """A deleted issuer is unknown at once."""
    assert api.delete(f"trusted-token-issuers/{pem_issuer.pk}").status_code == HTTPStatus.NO_CONTENT
    assert_refused(exchange(mint(rsa_key, pem_issuer.issuer)), "unknown_issuer")


def test_certificate_rotation_through_the_api(api, warm, exchange, pem_issuer, rsa_key):
    """The next key's certificate added: its tokens pass; the old one removed: tokens it signed fail."""
    next_key = private_key("rsa", "next")
    added = api.post(f"trusted-token-issuers/{pem_issuer.pk}/certificates", {"certificate": certificate_pem(next_key)})
    assert added.status_code == HTTPStatus.CREATED, added.content
    assert exchange(mint(next_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    old = pem_issuer.certificates.exclude(fingerprint=added.json()["fingerprint"]).get()
    assert api.delete(f"trusted-token-issuers/{pem_issuer.pk}/certificates/{old.fingerprint}").status_code == 204
    assert_refused(exchange(mint(rsa_key, pem_issuer.issuer)), "bad_signature")
    assert exchange(mint(next_key, pem_issuer.issuer)).status_code == HTTPStatus.OK


def test_issuer_linked_elsewhere_through_the_api(api, warm, exchange, pem_issuer, rsa_key, make_application):
    """Linking the issuer to another application only: this one may no longer exchange its tokens."""
    other = make_application(name="Only linked one")
    changed = api.patch(f"trusted-token-issuers/{pem_issuer.pk}", {"applications": [other.client_id]})
    assert changed.status_code == HTTPStatus.OK, changed.content
    assert_refused(exchange(mint(rsa_key, pem_issuer.issuer)), "issuer_not_allowed")
    assert exchange(mint(rsa_key, pem_issuer.issuer), app=other).status_code == HTTPStatus.OK


def test_application_changed_through_the_api(api, warm, exchange, pem_issuer, rsa_key, application):
    """Token exchange withdrawn from the application, then its secret regenerated, then the application deleted."""
    changed = api.put(f"applications/{application.pk}/protocol", {"allowed_grant_types": ["client_credentials"]})
    assert changed.status_code == HTTPStatus.OK, changed.content
    refused = exchange(mint(rsa_key, pem_issuer.issuer))
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    api.put(f"applications/{application.pk}/protocol", {"allowed_grant_types": ["token_exchange"]})
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    secret = api.post(f"applications/{application.pk}/regenerate-secret").json()["client_secret"]
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.UNAUTHORIZED  # the old secret
    application.raw_secret = secret
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.OK
    assert api.delete(f"applications/{application.pk}").status_code == HTTPStatus.NO_CONTENT
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == HTTPStatus.UNAUTHORIZED


def test_every_issuer_flow_forgets_the_parsed_keys(pem_issuer, monkeypatch, django_capture_on_commit_callbacks):
    """Each flow that changes an issuer's settings or certificates, or deletes it, clears the key-source caches,
    now and on commit (a new issuer has no cached keys; enabling changes none)."""
    cleared = []
    monkeypatch.setattr(key_sources, "clear_caches", lambda: cleared.append(1))
    second = certificate_pem(private_key("rsa", "second"))
    steps = [
        lambda: flows.update_trusted_token_issuer(pem_issuer, clock_skew=5),
        lambda: flows.add_certificate(pem_issuer, second),
        lambda: flows.remove_certificate(pem_issuer.certificates.order_by("pk").first()),
        lambda: flows.delete_trusted_token_issuer(pem_issuer),
    ]
    for step in steps:
        cleared.clear()
        with django_capture_on_commit_callbacks(execute=True):
            step()
        assert len(cleared) == 2, step
