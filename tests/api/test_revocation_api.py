"""Revocation by provenance through the API: POST …/trusted-token-issuers/{id}/revoke-tokens, PATCH with revoke_tokens."""

from http import HTTPStatus

import pytest
from django.contrib.admin.models import LogEntry

from exchange import flows

from ..factories import certificate_pem, mint, private_key
from ..utils import basic_auth, exchanged, introspected
from .helpers import APIClient, assert_problem, csrf_headers


@pytest.fixture
def second_pem_issuer(db):
    key = private_key("rsa", "other")
    trusted = flows.create_trusted_token_issuer(name="Other", issuer="https://other.test",
                                                certificates=[certificate_pem(key)])
    return trusted, key


def _url(trusted):
    return f"trusted-token-issuers/{trusted.pk}/revoke-tokens"


def _active(client, app, body):
    return (introspected(client, app, body["access_token"])["active"],
            introspected(client, app, body["refresh_token"])["active"])


def test_revoking_every_subject(api, client, refreshing_application, pem_issuer, rsa_key, second_pem_issuer):
    alice = exchanged(client, refreshing_application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    bob = exchanged(client, refreshing_application, mint(rsa_key, pem_issuer.issuer, sub="bob"))
    other, other_key = second_pem_issuer
    untouched = exchanged(client, refreshing_application, mint(other_key, other.issuer, sub="alice"))

    response = api.post(_url(pem_issuer), {})
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json() == {"issuer": pem_issuer.issuer, "subject": None, "access_tokens": 2,
                               "refresh_tokens": 2, "dry_run": False}
    assert _active(client, refreshing_application, alice) == (False, False)
    assert _active(client, refreshing_application, bob) == (False, False)
    assert _active(client, refreshing_application, untouched) == (True, True)  # another issuer's "alice"
    refused = client.post("/oauth2/token", {"grant_type": "refresh_token", "refresh_token": alice["refresh_token"]},
                          HTTP_AUTHORIZATION=basic_auth(refreshing_application.client_id, refreshing_application.raw_secret))
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    # Done: a second revocation finds nothing live.
    assert api.post(_url(pem_issuer), {}).json()["access_tokens"] == 0


def test_revoking_one_subject(api, client, refreshing_application, pem_issuer, rsa_key):
    alice = exchanged(client, refreshing_application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    bob = exchanged(client, refreshing_application, mint(rsa_key, pem_issuer.issuer, sub="bob"))
    dry = api.post(_url(pem_issuer), {"subject": "alice", "dry_run": True}).json()
    assert (dry["access_tokens"], dry["refresh_tokens"], dry["dry_run"]) == (1, 1, True)
    assert _active(client, refreshing_application, alice) == (True, True)  # a dry run changes nothing

    response = api.post(_url(pem_issuer), {"subject": "alice"})
    assert response.json() == {"issuer": pem_issuer.issuer, "subject": "alice", "access_tokens": 1,
                               "refresh_tokens": 1, "dry_run": False}
    assert _active(client, refreshing_application, alice) == (False, False)
    assert _active(client, refreshing_application, bob) == (True, True)


def test_a_subject_is_matched_exactly(api, client, application, pem_issuer, rsa_key):
    body = exchanged(client, application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    for near in ("Alice", "alice ", "ali", "%", "alice%", "_lice"):
        assert api.post(_url(pem_issuer), {"subject": near}).json()["access_tokens"] == 0
    assert introspected(client, application, body["access_token"])["active"] is True


@pytest.mark.parametrize("payload", [
    {"subject": ""}, {"subject": "x" * 256}, {"subject": 42}, {"subject": None}, {"subject": ["alice"]},
    {"subject": "a\x00b"}, {"subject": "\ud800"}, {"dry_run": "yes"}, {"dry_run": 1},
])
def test_hostile_requests_are_400_and_revoke_nothing(api, client, application, pem_issuer, rsa_key, payload):
    body = exchanged(client, application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    response = api.post(_url(pem_issuer), payload)
    assert_problem(response, HTTPStatus.BAD_REQUEST)
    assert introspected(client, application, body["access_token"])["active"] is True


@pytest.mark.parametrize("ident", ["0", "999999", "abc", "99999999999999999999999"])
def test_unknown_issuer_is_404(api, db, ident):
    assert_problem(api.post(f"trusted-token-issuers/{ident}/revoke-tokens", {}), HTTPStatus.NOT_FOUND)


def test_revoking_needs_the_change_permission(staff_client, api, client, application, pem_issuer, rsa_key):
    body = exchanged(client, application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    session = staff_client("view_trustedtokenissuer")
    assert APIClient(session).post(_url(pem_issuer), {}, **csrf_headers(session)).status_code == HTTPStatus.FORBIDDEN
    assert introspected(client, application, body["access_token"])["active"] is True


def test_a_users_revocation_is_in_the_issuers_history(staff_client, client, application, pem_issuer, rsa_key):
    exchanged(client, application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    session = staff_client(superuser=True)
    response = APIClient(session).post(_url(pem_issuer), {"subject": "alice"}, **csrf_headers(session))
    assert response.status_code == HTTPStatus.OK, response.content
    [entry] = LogEntry.objects.filter(object_id=str(pem_issuer.pk))
    assert "'alice'" in entry.get_change_message() and "1 access token(s), 0 refresh token(s)" in entry.change_message


def test_the_revocation_is_logged_with_its_counts(api, client, application, pem_issuer, rsa_key, caplog):
    exchanged(client, application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    with caplog.at_level("INFO", logger="exchange.audit"):
        api.post(_url(pem_issuer), {})
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "tokens_revoked"]
    assert (record.issuer, record.subject, record.access_tokens, record.refresh_tokens) == (
        pem_issuer.issuer, None, 1, 0)


def test_disabling_with_revoke_tokens_revokes_in_the_same_step(api, client, refreshing_application, pem_issuer, rsa_key):
    body = exchanged(client, refreshing_application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    response = api.patch(f"trusted-token-issuers/{pem_issuer.pk}", {"enabled": False, "revoke_tokens": True})
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["enabled"] is False and response.json()["tokens_revoked_at"]
    assert _active(client, refreshing_application, body) == (False, False)


def test_disabling_alone_leaves_access_tokens_active(api, client, refreshing_application, pem_issuer, rsa_key):
    body = exchanged(client, refreshing_application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    assert api.patch(f"trusted-token-issuers/{pem_issuer.pk}", {"enabled": False}).status_code == HTTPStatus.OK
    assert _active(client, refreshing_application, body) == (True, False)  # documented: revoke to end them now


def test_revoke_tokens_without_disabling_revokes_nothing(api, client, application, pem_issuer, rsa_key):
    body = exchanged(client, application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    response = api.patch(f"trusted-token-issuers/{pem_issuer.pk}", {"name": "Renamed", "revoke_tokens": True})
    assert response.status_code == HTTPStatus.OK, response.content
    assert introspected(client, application, body["access_token"])["active"] is True


def test_an_invalid_disable_revokes_nothing(api, client, application, pem_issuer, rsa_key):
    body = exchanged(client, application, mint(rsa_key, pem_issuer.issuer, sub="alice"))
    response = api.patch(f"trusted-token-issuers/{pem_issuer.pk}",
                         {"enabled": False, "revoke_tokens": True, "clock_skew": -1})
    assert_problem(response, HTTPStatus.BAD_REQUEST)
    assert introspected(client, application, body["access_token"])["active"] is True
