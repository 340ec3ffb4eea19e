"""Management API: the scope registry (/scopes) and an issuer's claim mapping (claim_mappings)."""

from http import HTTPStatus

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group

from exchange import flows
from exchange.models import Application, Scope, TrustedTokenIssuer

from ..factories import certificate_pem
from .helpers import API, assert_problem

ORDERS = {"name": "orders:read", "description": "Read the orders API"}


def test_register_list_change_and_delete_a_scope(api):
    response = api.post("scopes", ORDERS)
    assert response.status_code == HTTPStatus.CREATED, response.content
    body = response.json()
    assert response["Location"].endswith(f"{API}/scopes/{body['id']}")
    assert (body["name"], body["description"], body["protected"]) == ("orders:read", "Read the orders API", False)
    names = [scope["name"] for scope in api.get("scopes").json()["results"]]
    assert names == ["console:manage", "email", "openid", "orders:read", "profile"]
    assert [s["name"] for s in api.get("scopes?name=orders:read").json()["results"]] == ["orders:read"]
    response = api.patch(f"scopes/{body['id']}", {"description": "Orders, read only"})
    assert response.status_code == HTTPStatus.OK, response.content
    assert Scope.objects.get(name="orders:read").description == "Orders, read only"
    assert api.patch(f"scopes/{body['id']}", {"name": "orders:write"}).status_code == HTTPStatus.BAD_REQUEST
    assert api.delete(f"scopes/{body['id']}").status_code == HTTPStatus.NO_CONTENT
    assert not Scope.objects.filter(name="orders:read").exists()
    # The service account is the History's author of each change.
    assert LogEntry.objects.filter(content_type__model="scope").count() == 3


@pytest.mark.parametrize("name", ["two words", 'a"b', "caf\u00e9", "x" * 101, "", 5, None])
def test_a_malformed_scope_name_is_a_400(api, name):
    assert_problem(api.post("scopes", {"name": name}), HTTPStatus.BAD_REQUEST, "name")


def test_a_duplicate_scope_is_a_400(api):
    api.post("scopes", ORDERS)
    assert_problem(api.post("scopes", ORDERS), HTTPStatus.BAD_REQUEST, "name", "already exists")


def test_deleting_a_scope_in_use_or_protected_is_a_409(api):
    scope = api.post("scopes", ORDERS).json()
    api.post("applications", {"name": "Orders", "allowed_scopes": "orders:read"})
    assert_problem(api.delete(f"scopes/{scope['id']}"), HTTPStatus.CONFLICT,
                   contains="allowed for 1 application(s) (Orders)")
    manage = Scope.objects.get(name="console:manage")
    assert_problem(api.delete(f"scopes/{manage.pk}"), HTTPStatus.CONFLICT, contains="needed by the server")
    assert Scope.objects.filter(name__in=["orders:read", "console:manage"]).count() == 2


def test_an_application_with_an_unknown_scope_is_a_400(api):
    response = api.post("applications", {"name": "Orders", "allowed_scopes": "orders:write"})
    assert_problem(response, HTTPStatus.BAD_REQUEST, "allowed_scopes", "Unknown scope orders:write")
    assert not Application.objects.filter(name="Orders").exists()


@pytest.fixture
def issuer_id(api, rsa_key):
    response = api.post("trusted-token-issuers", {
        "name": "Partner", "issuer": "https://partner.test", "certificates": [certificate_pem(rsa_key)]})
    assert response.status_code == HTTPStatus.CREATED, response.content
    assert response.json()["claim_mappings"] == []
    return response.json()["id"]


def test_claim_mappings_are_set_and_read(api, issuer_id):
    mappings = [{"source": "email", "target": "email", "type": "string", "required": True},
                {"source": "groups", "target": "groups", "type": "string_list"}]
    response = api.patch(f"trusted-token-issuers/{issuer_id}", {"claim_mappings": mappings})
    assert response.status_code == HTTPStatus.OK, response.content
    expected = [mappings[0], {**mappings[1], "required": False}]
    assert response.json()["claim_mappings"] == expected
    assert api.get(f"trusted-token-issuers/{issuer_id}").json()["claim_mappings"] == expected
    assert TrustedTokenIssuer.objects.get(pk=issuer_id).claim_mappings == expected


@pytest.mark.parametrize(("mappings", "contains"), [
    ([{"source": "x", "target": "sub", "type": "string"}], "set by this server"),
    ([{"source": "x", "target": "aud", "type": "string"}], "set by this server"),
    ([{"source": "x", "target": "act", "type": "string"}], "set by this server"),
    ([{"source": "x", "target": "y", "type": "object"}], "the type must be one of"),
    ([{"source": f"c{i}", "target": f"t{i}", "type": "string"} for i in range(21)], "At most 20"),
    ({"source": "x"}, "as a list"),
    ("email", "as a list"),
])
def test_a_bad_claim_mapping_is_a_400(api, issuer_id, mappings, contains):
    response = api.patch(f"trusted-token-issuers/{issuer_id}", {"claim_mappings": mappings})
    assert_problem(response, HTTPStatus.BAD_REQUEST, "claim_mappings", contains)
    assert TrustedTokenIssuer.objects.get(pk=issuer_id).claim_mappings == []


def test_a_claim_mapping_given_at_registration(api, rsa_key):
    response = api.post("trusted-token-issuers", {
        "name": "Partner", "issuer": "https://partner.test", "certificates": [certificate_pem(rsa_key)],
        "claim_mappings": [{"source": "tid", "target": "tenant", "type": "string"}]})
    assert response.status_code == HTTPStatus.CREATED, response.content
    assert response.json()["claim_mappings"] == [
        {"source": "tid", "target": "tenant", "type": "string", "required": False}]
    response = api.post("trusted-token-issuers", {
        "name": "Other", "issuer": "https://other.test", "certificates": [certificate_pem(rsa_key)],
        "claim_mappings": [{"source": "tid", "target": "iss", "type": "string"}]})
    assert_problem(response, HTTPStatus.BAD_REQUEST, "claim_mappings", "set by this server")
    assert not TrustedTokenIssuer.objects.filter(name="Other").exists()


def test_the_schema_documents_scopes_and_claim_mappings(api):
    schema = api.get("schema?format=json").json()
    assert f"{API}/scopes" in schema["paths"] or "/api/server/v1/scopes" in schema["paths"]
    update = schema["components"]["schemas"]["PatchedTrustedTokenIssuerUpdateRequest"]["properties"]
    items = update["claim_mappings"]["items"]
    assert items["properties"]["type"]["enum"] == ["string", "string_list", "boolean", "number"]
    assert items["required"] == ["source", "target", "type"]


def test_deleting_a_scope_a_role_grants_is_a_409(api):
    """Linked accounts' roles hold registered scopes: one still granted by a role is not deleted."""
    scope = api.post("scopes", ORDERS).json()
    role = Group.objects.create(name="buyers")
    flows.set_role_scopes(role, "orders:read")
    assert_problem(api.delete(f"scopes/{scope['id']}"), HTTPStatus.CONFLICT, contains="granted by 1 role(s) (buyers)")
    assert Scope.objects.filter(name="orders:read").exists()
    flows.set_role_scopes(role, "")
    assert api.delete(f"scopes/{scope['id']}").status_code == HTTPStatus.NO_CONTENT
