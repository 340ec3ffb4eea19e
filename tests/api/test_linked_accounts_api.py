"""Management API: local users, linked identities, roles' scopes, and the linked-accounts settings."""

from http import HTTPStatus

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from exchange import flows
from exchange.models import LinkedIdentity

from .helpers import API, APIClient, assert_problem, csrf_headers


@pytest.fixture
def staff_api(staff_client):
    """A JSON client for a console user holding the users', links' and groups' permissions."""

    def make(*codenames):
        client = staff_client(*codenames)
        return APIClient(client), csrf_headers(client)

    return make


ALL = ("view_user", "change_user", "view_linkedidentity", "add_linkedidentity", "delete_linkedidentity",
       "view_group", "change_group")


@pytest.fixture
def dana(db):
    return get_user_model().objects.create_user("dana", email="dana@example.com")


def test_link_list_and_remove_an_identity(staff_api, pem_issuer, dana):
    api, csrf = staff_api(*ALL)
    response = api.post("linked-identities", {"trusted_issuer": pem_issuer.pk, "subject": "ext-9", "user": dana.pk},
                        **csrf)
    assert response.status_code == HTTPStatus.CREATED, response.content
    body = response.json()
    assert (body["issuer"], body["subject"], body["username"], body["origin"]) == (
        pem_issuer.issuer, "ext-9", "dana", "explicit")
    assert response["Location"].endswith(f"/linked-identities/{body['id']}")
    listed = api.get(f"linked-identities?trusted_issuer={pem_issuer.pk}").json()
    assert [link["subject"] for link in listed["results"]] == ["ext-9"]
    user = api.get(f"users/{dana.pk}").json()
    assert [link["subject"] for link in user["linked_identities"]] == ["ext-9"]
    assert user["local_subject"] == str(dana.local_account.subject)
    assert api.delete(f"linked-identities/{body['id']}", **csrf).status_code == HTTPStatus.NO_CONTENT
    assert not LinkedIdentity.objects.exists()
    staff = get_user_model().objects.get(is_staff=True)
    assert LogEntry.objects.filter(object_id=str(dana.pk), user=staff).count() == 2


@pytest.mark.parametrize("data, field", [
    ({"trusted_issuer": "ISSUER", "subject": "s", "user": 999999}, "user"),
    ({"trusted_issuer": 999999, "subject": "s", "user": 1}, "trusted_issuer"),
    ({"trusted_issuer": "PEM", "subject": "s", "user": 1}, "trusted_issuer"),
    ({"trusted_issuer": "ISSUER", "subject": 42, "user": "DANA"}, "subject"),
    ({"trusted_issuer": "ISSUER", "subject": "", "user": "DANA"}, "subject"),
    ({"trusted_issuer": "ISSUER", "subject": "x" * 256, "user": "DANA"}, "subject"),
    ({"trusted_issuer": "ISSUER", "subject": " padded", "user": "DANA"}, "subject"),
    ({"trusted_issuer": "ISSUER", "subject": "a\u0000b", "user": "DANA"}, "subject"),
    ({"trusted_issuer": "ISSUER", "subject": "s", "user": "STAFF"}, "user"),
])
def test_hostile_link_requests_are_refused(staff_api, pem_issuer, dana, data, field):
    api, csrf = staff_api(*ALL)
    staff = get_user_model().objects.get(is_staff=True)
    names = {"ISSUER": pem_issuer.pk, "DANA": dana.pk, "STAFF": staff.pk}
    data = {key: names.get(value, value) if isinstance(value, str) else value for key, value in data.items()}
    assert_problem(api.post("linked-identities", data, **csrf), HTTPStatus.BAD_REQUEST, field=field)
    assert not LinkedIdentity.objects.exists()


def test_a_second_link_of_the_same_identity_is_refused(staff_api, pem_issuer, dana):
    api, csrf = staff_api(*ALL)
    other = get_user_model().objects.create_user("erin")
    flows.link_identity(pem_issuer, "ext-9", dana)
    response = api.post("linked-identities", {"trusted_issuer": pem_issuer.pk, "subject": "ext-9", "user": other.pk},
                        **csrf)
    assert_problem(response, HTTPStatus.BAD_REQUEST, field="subject", contains="already linked")


def test_disable_search_and_lookup_attribute(staff_api, dana):
    api, csrf = staff_api(*ALL)
    response = api.patch(f"users/{dana.pk}", {"is_active": False, "lookup_attribute": "E-7"}, **csrf)
    assert response.status_code == HTTPStatus.OK, response.content
    assert (response.json()["is_active"], response.json()["lookup_attribute"]) == (False, "E-7")
    assert [u["username"] for u in api.get("users?search=dana@").json()["results"]] == ["dana"]
    assert api.get("users?is_active=false").json()["count"] == 1
    other = get_user_model().objects.create_user("erin")
    assert_problem(api.patch(f"users/{other.pk}", {"lookup_attribute": "E-7"}, **csrf), HTTPStatus.BAD_REQUEST,
                   field="lookup_attribute")
    staff = get_user_model().objects.get(is_staff=True)
    assert_problem(api.patch(f"users/{staff.pk}", {"is_active": False}, **csrf), HTTPStatus.BAD_REQUEST,
                   field="is_active")


def test_role_scopes(staff_api):
    api, csrf = staff_api(*ALL)
    role = Group.objects.create(name="readers")
    response = api.patch(f"roles/{role.pk}", {"scopes": "openid profile"}, **csrf)
    assert response.json() == {"id": role.pk, "name": "readers", "scopes": "openid profile"}
    for scopes in ("console:manage", "made-up", "openid\u0000"):
        assert_problem(api.patch(f"roles/{role.pk}", {"scopes": scopes}, **csrf), HTTPStatus.BAD_REQUEST,
                       field="scopes")


def test_the_new_settings_on_applications_and_issuers(staff_api, api, pem_issuer):
    response = api.patch(f"trusted-token-issuers/{pem_issuer.pk}",
                         {"link_lookup_primary": "email", "link_lookup_secondary": "custom"})
    assert_problem(response, HTTPStatus.BAD_REQUEST, field="link_custom_claim")
    response = api.patch(f"trusted-token-issuers/{pem_issuer.pk}",
                         {"link_lookup_primary": "email", "link_lookup_secondary": "custom",
                          "link_custom_claim": "employee_number"})
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["link_lookup_secondary"] == "custom"
    created = api.post("applications", {"name": "Linked", "allowed_grant_types": ["token_exchange"],
                                        "linked_accounts": "require"})
    assert created.status_code == HTTPStatus.CREATED, created.content
    assert created.json()["linked_accounts"] == "require"
    assert_problem(api.patch(f"applications/{created.json()['id']}", {"linked_accounts": "sometimes"}),
                   HTTPStatus.BAD_REQUEST, field="linked_accounts")


def test_users_and_roles_need_django_permissions(staff_api, api, dana):
    viewer, csrf = staff_api("view_user")
    assert viewer.get("users").status_code == HTTPStatus.OK
    assert viewer.patch(f"users/{dana.pk}", {"is_active": False}, **csrf).status_code == HTTPStatus.FORBIDDEN
    # A service account can only hold this app's permissions: never the users'.
    assert api.get("users").status_code == HTTPStatus.FORBIDDEN
    assert APIClient(Client(HTTP_HOST="localhost")).get(f"{API}/users").status_code == HTTPStatus.UNAUTHORIZED
    assert get_user_model().objects.get(pk=dana.pk).is_active
