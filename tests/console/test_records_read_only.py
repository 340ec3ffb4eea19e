"""Issue 13, finding 7: a superuser in the console cannot destroy credentials or evidence.

Each test is the attack: the delete page, the bulk ``delete_selected`` action and the change form,
posted as a superuser, against signing keys, access tokens, refresh tokens and exchange events. The
only ways in are the ones DOT's and Django's admins allow: revoking tokens and rotating the signing
key by the rotation code, each written to the LogEntry trail.
"""

import datetime
from http import HTTPStatus

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from exchange import signing
from exchange.models import AccessToken, ExchangeEvent, RefreshToken, SigningKey

pytestmark = pytest.mark.django_db

CONSOLE = "/console/exchange"


@pytest.fixture
def records(application, pem_issuer):
    """One row of each record kind: the active signing key, an access token with its refresh token, an event."""
    key = SigningKey.objects.get(kid=signing.active_key().kid)
    access = AccessToken.objects.create(
        application=application, token="live-access-token-0123456789", scope="read", subject="alice",
        trusted_issuer=pem_issuer, jti="jti-1", expires=timezone.now() + datetime.timedelta(hours=1),
    )
    refresh = RefreshToken.objects.create(
        application=application, token="live-refresh-token-0123456789", access_token=access, subject="alice",
        trusted_issuer=pem_issuer,
    )
    event = ExchangeEvent.objects.create(outcome="issued", subject="alice")
    return {"signingkey": key, "accesstoken": access, "refreshtoken": refresh, "exchangeevent": event}


def still_there(obj):
    return type(obj).objects.filter(pk=obj.pk).exists()


def log_entries(obj, action_flag=CHANGE):
    content_type = ContentType.objects.get_for_model(obj)
    return list(LogEntry.objects.filter(content_type=content_type, object_id=str(obj.pk), action_flag=action_flag))


KINDS = ["signingkey", "accesstoken", "refreshtoken", "exchangeevent"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_delete_page_refuses_a_superuser(console_admin_client, records, kind):
    obj = records[kind]
    url = f"{CONSOLE}/{kind}/{obj.pk}/delete/"
    assert console_admin_client.get(url).status_code == HTTPStatus.FORBIDDEN
    assert console_admin_client.post(url, {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    assert still_there(obj)


@pytest.mark.parametrize("kind", KINDS)
def test_the_bulk_delete_action_is_absent_and_refused(console_admin_client, records, kind):
    obj = records[kind]
    changelist = f"{CONSOLE}/{kind}/"
    page = console_admin_client.get(changelist)
    assert page.status_code == HTTPStatus.OK
    assert b"delete_selected" not in page.content
    response = console_admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})
    assert response.status_code in (HTTPStatus.FOUND, HTTPStatus.OK, HTTPStatus.FORBIDDEN)
    assert still_there(obj)


@pytest.mark.parametrize("kind", KINDS)
def test_no_add_and_no_change_for_a_superuser(console_admin_client, records, kind):
    obj = records[kind]
    assert console_admin_client.get(f"{CONSOLE}/{kind}/add/").status_code == HTTPStatus.FORBIDDEN
    page = console_admin_client.get(f"{CONSOLE}/{kind}/{obj.pk}/change/")
    assert page.status_code == HTTPStatus.OK  # viewed, read-only
    assert b'name="_save"' not in page.content
    assert b"/delete/" not in page.content
    assert console_admin_client.post(f"{CONSOLE}/{kind}/{obj.pk}/change/", {}).status_code == HTTPStatus.FORBIDDEN


def test_a_signing_keys_active_flag_and_dates_cannot_be_changed(console_admin_client, records):
    key = records["signingkey"]
    before = (key.active, key.retire_after, key.activate_at, key.retired_at)
    response = console_admin_client.post(f"{CONSOLE}/signingkey/{key.pk}/change/", {
        "kid": key.kid, "algorithm": key.algorithm, "active": "", "retire_after_0": "2000-01-01",
        "retire_after_1": "00:00:00", "_save": "Save",
    })
    assert response.status_code == HTTPStatus.FORBIDDEN
    key.refresh_from_db()
    assert (key.active, key.retire_after, key.activate_at, key.retired_at) == before
    assert signing.active_key().kid == key.kid


def test_exchange_event_page_has_no_history_or_delete_button(console_admin_client, records):
    event = records["exchangeevent"]
    page = console_admin_client.get(f"{CONSOLE}/exchangeevent/{event.pk}/change/")
    assert b"/history/" not in page.content and b"/delete/" not in page.content


def test_token_lists_mask_the_token_values(console_admin_client, records):
    for kind in ("accesstoken", "refreshtoken"):
        obj = records[kind]
        for url in (f"{CONSOLE}/{kind}/", f"{CONSOLE}/{kind}/{obj.pk}/change/"):
            page = console_admin_client.get(url)
            assert page.status_code == HTTPStatus.OK
            assert obj.token.encode() not in page.content
            assert b"\xe2\x80\xa66789" in page.content  # "…6789": the masked suffix identifies the row


def test_revoking_access_tokens_revokes_the_family_and_logs_it(console_admin_client, records):
    access, refresh = records["accesstoken"], records["refreshtoken"]
    response = console_admin_client.post(f"{CONSOLE}/accesstoken/", {"action": "revoke_tokens", "_selected_action": [access.pk]})
    assert response.status_code == HTTPStatus.FOUND
    assert not still_there(access)
    refresh.refresh_from_db()
    assert refresh.revoked is not None  # the tombstone stays: a replay of it revokes its family
    [entry] = log_entries(access)
    assert entry.get_change_message() == "Revoked."


def test_revoking_refresh_tokens_keeps_the_tombstone_and_logs_it(console_admin_client, records):
    access, refresh = records["accesstoken"], records["refreshtoken"]
    response = console_admin_client.post(f"{CONSOLE}/refreshtoken/", {"action": "revoke_tokens", "_selected_action": [refresh.pk]})
    assert response.status_code == HTTPStatus.FOUND
    refresh.refresh_from_db()
    assert refresh.revoked is not None and not still_there(access)
    assert [e.get_change_message() for e in log_entries(refresh)] == ["Revoked."]


def test_a_view_only_operator_cannot_revoke_or_rotate(client, records):
    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=[
        "view_accesstoken", "view_refreshtoken", "view_signingkey", "view_exchangeevent"]))
    client.force_login(viewer)
    access = records["accesstoken"]
    assert b"revoke_tokens" not in client.get(f"{CONSOLE}/accesstoken/").content
    client.post(f"{CONSOLE}/accesstoken/", {"action": "revoke_tokens", "_selected_action": [access.pk]})
    assert still_there(access)
    assert b"Rotate signing key" not in client.get(f"{CONSOLE}/signingkey/").content
    assert client.post(f"{CONSOLE}/signingkey/rotate/").status_code == HTTPStatus.FORBIDDEN
    assert SigningKey.objects.count() == 1


def test_rotate_publishes_a_new_key_and_keeps_the_old_one(console_admin_client, records):
    old = records["signingkey"]
    page = console_admin_client.get(f"{CONSOLE}/signingkey/")
    assert b"Rotate signing key" in page.content
    assert console_admin_client.get(f"{CONSOLE}/signingkey/rotate/").status_code == HTTPStatus.METHOD_NOT_ALLOWED
    response = console_admin_client.post(f"{CONSOLE}/signingkey/rotate/")
    assert response.status_code == HTTPStatus.FOUND
    new = SigningKey.objects.exclude(pk=old.pk).get()
    old.refresh_from_db()
    assert old.retired_at is None and old.retire_after is not None
    published = {jwk["kid"] for jwk in signing.published_jwks()["keys"]}
    assert {old.kid, new.kid} <= published
    assert [e.get_change_message() for e in log_entries(new, ADDITION)] == ["Created by rotation."]
    assert log_entries(old)[0].get_change_message().startswith(f"Superseded by {new.kid}")


def test_rotate_refused_when_the_key_comes_from_a_file(console_admin_client, records, settings):
    settings.TOKEN_EXCHANGE = {**getattr(settings, "TOKEN_EXCHANGE", {}), "SIGNING_KEY_FILE": "/nonexistent/key.pem"}
    response = console_admin_client.post(f"{CONSOLE}/signingkey/rotate/", follow=True)
    assert response.status_code == HTTPStatus.OK
    assert b"SIGNING_KEY_FILE" in response.content
    assert SigningKey.objects.count() == 1
