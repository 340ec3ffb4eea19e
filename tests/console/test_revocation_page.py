"""The console's revocation by provenance: the issuer's *Revoke tokens* page and *Disable*'s checkbox."""

from http import HTTPStatus

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from ..factories import mint
from ..utils import exchanged, introspected


def _page(trusted):
    return f"/console/exchange/trustedtokenissuer/{trusted.pk}/revoke-tokens/"


def _live(client, app, body):
    return introspected(client, app, body["access_token"])["active"]


def test_the_issuer_page_links_to_revocation(console_admin_client, pem_issuer):
    page = console_admin_client.get(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/")
    assert _page(pem_issuer).encode() in page.content


def test_the_subject_search_counts_and_changes_nothing(console_admin_client, alice_and_bob_tokens, pem_issuer):
    app, bodies = alice_and_bob_tokens
    page = console_admin_client.get(_page(pem_issuer), {"subject": "alice"})
    assert page.status_code == HTTPStatus.OK
    assert b"1 live access token, 1 refresh token" in page.content
    everyone = console_admin_client.get(_page(pem_issuer), {"subject": ""})
    assert b"Every subject" in everyone.content and b"2 live access tokens, 2 refresh tokens" in everyone.content
    assert _live(console_admin_client, app, bodies["alice"]) is True
    assert not LogEntry.objects.exists()


def test_revoking_one_subject(console_admin_client, alice_and_bob_tokens, pem_issuer):
    app, bodies = alice_and_bob_tokens
    response = console_admin_client.post(_page(pem_issuer), {"subject": "alice"}, follow=True)
    assert b"Revoked 1 access token(s) and 1 refresh token(s) issued from the tokens of subject alice." in response.content
    assert _live(console_admin_client, app, bodies["alice"]) is False
    assert introspected(console_admin_client, app, bodies["alice"]["refresh_token"]) == {"active": False}
    assert _live(console_admin_client, app, bodies["bob"]) is True
    [entry] = LogEntry.objects.filter(object_id=str(pem_issuer.pk))
    assert entry.user.username == "admin" and "'alice'" in entry.change_message


@pytest.mark.parametrize("subject", ["a\x00b", "x" * 256])
def test_hostile_subjects_are_form_errors(console_admin_client, alice_and_bob_tokens, pem_issuer, subject):
    app, bodies = alice_and_bob_tokens
    response = console_admin_client.post(_page(pem_issuer), {"subject": subject})
    assert response.status_code == HTTPStatus.OK  # the form again, with its error
    assert b"errorlist" in response.content
    assert _live(console_admin_client, app, bodies["alice"]) is True


def test_revoking_needs_the_change_permission(client, alice_and_bob_tokens, pem_issuer):
    app, bodies = alice_and_bob_tokens
    viewer = get_user_model().objects.create_user("viewer", password=None, is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename="view_trustedtokenissuer"))
    client.force_login(viewer)
    assert client.post(_page(pem_issuer), {"subject": ""}).status_code == HTTPStatus.FORBIDDEN
    assert _live(client, app, bodies["alice"]) is True


def test_disable_offers_to_revoke_in_the_same_step(console_admin_client, alice_and_bob_tokens, pem_issuer):
    app, bodies = alice_and_bob_tokens
    toggle = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/enabled/"
    confirm = console_admin_client.get(toggle)
    assert b'name="revoke_tokens"' in confirm.content and b"2 access tokens, 2 refresh tokens" in confirm.content
    response = console_admin_client.post(toggle, {"revoke_tokens": "on"}, follow=True)
    assert b"Trusted token issuer disabled. Revoked 2 access token(s)" in response.content
    pem_issuer.refresh_from_db()
    assert pem_issuer.enabled is False
    assert _live(console_admin_client, app, bodies["alice"]) is False
    assert _live(console_admin_client, app, bodies["bob"]) is False


def test_disable_without_the_checkbox_revokes_nothing(console_admin_client, alice_and_bob_tokens, pem_issuer):
    app, bodies = alice_and_bob_tokens
    console_admin_client.post(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/enabled/")
    assert _live(console_admin_client, app, bodies["alice"]) is True  # access tokens live until they expire


def test_the_protocol_tab_sets_the_bound(console_admin_client, application):
    page = f"/console/exchange/application/{application.pk}/change/?tab=protocol"
    assert b'name="bound_to_subject_token"' in console_admin_client.get(page).content
    data = {"allowed_grant_types": application.allowed_grant_types, "access_token_lifetime": "", "allowed_audiences": ""}
    assert console_admin_client.post(page, data).status_code == HTTPStatus.FOUND
    application.refresh_from_db()
    assert application.bound_to_subject_token is False
    assert console_admin_client.post(page, {**data, "bound_to_subject_token": "on"}).status_code == HTTPStatus.FOUND
    application.refresh_from_db()
    assert application.bound_to_subject_token is True
