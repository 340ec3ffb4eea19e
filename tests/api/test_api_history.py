"""Every change made through the management API leaves a History entry (LogEntry), as the console's do.

The author is whoever performs the request: the service account of a console:manage token, or the
signed-in staff member. A refused change leaves none.
"""

from http import HTTPStatus

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType

from exchange.models import Application, TrustedTokenIssuer

from ..factories import certificate_pem, private_key
from .helpers import API, csrf_headers
from .test_issuers import pem_body


def _entries(model, pk):
    content_type = ContentType.objects.get_for_model(model)
    return list(LogEntry.objects.filter(content_type=content_type, object_id=str(pk)).order_by("pk"))


def test_an_issuer_created_changed_rekeyed_and_deleted_through_the_api_has_its_history(api, manager_app):
    created = api.post("trusted-token-issuers", pem_body())
    assert created.status_code == HTTPStatus.CREATED, created.content
    pk = created.json()["id"]
    assert api.patch(f"trusted-token-issuers/{pk}", {"clock_skew": 30, "enabled": False}).status_code == 200
    added = api.post(f"trusted-token-issuers/{pk}/certificates",
                     {"certificate": certificate_pem(private_key("rsa", "second"))})
    assert added.status_code == HTTPStatus.CREATED, added.content
    fingerprint = added.json()["fingerprint"]
    assert api.delete(f"trusted-token-issuers/{pk}/certificates/{fingerprint}").status_code == 204
    assert api.delete(f"trusted-token-issuers/{pk}").status_code == 204

    entries = _entries(TrustedTokenIssuer, pk)
    assert [entry.action_flag for entry in entries] == [ADDITION, CHANGE, CHANGE, CHANGE, DELETION]
    assert {entry.user_id for entry in entries} == {manager_app.service_user_id}
    assert entries[1].get_change_message() == "Changed clock_skew and enabled."
    assert entries[2].change_message == f"Added certificate {fingerprint}"
    assert entries[3].change_message == f"Removed certificate {fingerprint}"
    assert entries[4].object_repr == "Partner IdP"


def test_an_application_created_and_changed_through_the_api_has_its_history(api, manager_app):
    created = api.post("applications", {"name": "Orders", "allowed_grant_types": ["client_credentials"]})
    assert created.status_code == HTTPStatus.CREATED, created.content
    pk = created.json()["id"]
    assert api.patch(f"applications/{pk}", {"access_token_lifetime": 600}).status_code == 200
    assert api.put(f"applications/{pk}/protocol", {"allowed_grant_types": ["token_exchange"]}).status_code == 200

    entries = _entries(Application, pk)
    assert [entry.action_flag for entry in entries] == [ADDITION, CHANGE, CHANGE]
    assert {entry.user_id for entry in entries} == {manager_app.service_user_id}
    assert entries[1].get_change_message() == "Changed access_token_lifetime."
    assert entries[2].get_change_message() == "Changed access_token_lifetime and allowed_grant_types."


def test_a_session_users_change_is_authored_by_them(staff_client):
    client = staff_client(superuser=True)
    created = client.post(f"{API}/trusted-token-issuers", pem_body(), content_type="application/json",
                          **csrf_headers(client))
    assert created.status_code == HTTPStatus.CREATED, created.content
    (entry,) = _entries(TrustedTokenIssuer, created.json()["id"])
    assert entry.user.is_superuser and entry.action_flag == ADDITION


def test_a_refused_change_leaves_no_history(api):
    pk = api.post("trusted-token-issuers", pem_body()).json()["id"]
    refused = api.patch(f"trusted-token-issuers/{pk}", {"clock_skew": -1})
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert [entry.action_flag for entry in _entries(TrustedTokenIssuer, pk)] == [ADDITION]
