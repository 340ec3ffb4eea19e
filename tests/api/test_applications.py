"""Management API: applications, their Protocol settings and client secrets."""

from http import HTTPStatus

import pytest
from django.test import Client

from exchange import flows
from exchange.models import TOKEN_EXCHANGE, Application
from exchange.service_accounts import SYSTEM

from ..factories import mint
from ..utils import basic_auth, exchange_body, post_form
from .helpers import API, APIClient, assert_problem, obtain_token

SPA_MESSAGE = "Token Exchange is not available for single-page applications"


def exchange_as(client, client_id, secret, token):
    return post_form(client, "/oauth2/token", exchange_body(token), HTTP_AUTHORIZATION=basic_auth(client_id, secret))


def test_create_returns_the_secret_once(api, client):
    response = api.post("applications", {
        "name": "Orders service", "application_type": "traditional",
        "allowed_grant_types": ["token_exchange", "refresh_token"], "allowed_scopes": "openid",
        "allowed_audiences": ["https://orders.test"], "access_token_lifetime": 600,
    })
    assert response.status_code == HTTPStatus.CREATED, response.content
    body = response.json()
    assert response["Location"].endswith(f"{API}/applications/{body['id']}")
    assert body["allowed_grant_types"] == [TOKEN_EXCHANGE, "refresh_token"]  # wire names
    assert (body["application_type"], body["client_type"]) == ("traditional", "confidential")
    assert (body["allowed_scopes"], body["allowed_audiences"], body["access_token_lifetime"]) == (
        "openid", ["https://orders.test"], 600)
    secret = body["client_secret"]
    assert len(secret) >= 48
    application = Application.objects.get(pk=body["id"])
    assert application.client_secret != secret  # stored hashed
    # Never shown again.
    assert "client_secret" not in api.get(f"applications/{body['id']}").json()
    assert all("client_secret" not in item for item in api.get("applications").json()["results"])


def test_created_application_exchanges_tokens(api, client, pem_issuer, rsa_key):
    body = api.post("applications", {"name": "Exchanger", "allowed_grant_types": ["token_exchange"]}).json()
    response = exchange_as(client, body["client_id"], body["client_secret"], mint(rsa_key, pem_issuer.issuer))
    assert response.status_code == HTTPStatus.OK, response.content


def test_create_defaults(api):
    body = api.post("applications", {"name": "Plain"}).json()
    assert (body["application_type"], body["allowed_grant_types"], body["access_token_lifetime"]) == (
        "standard", [], None)


@pytest.mark.parametrize("payload, field, message", [
    ({"name": "SPA", "application_type": "spa", "allowed_grant_types": ["token_exchange"]},
     "allowed_grant_types", SPA_MESSAGE),
    ({"name": "SPA", "application_type": "spa", "allowed_grant_types": [TOKEN_EXCHANGE]},
     "allowed_grant_types", SPA_MESSAGE),
    ({"name": "X", "allowed_grant_types": ["password"]}, "allowed_grant_types", "Unknown grant type"),
    ({"name": "X", "allowed_grant_types": "token_exchange"}, "allowed_grant_types", None),
    ({"name": "X", "application_type": "desktop"}, "application_type", None),
    ({"name": "X", "access_token_lifetime": -1}, "access_token_lifetime", None),
    ({"name": "X", "allowed_audiences": "https://a.test"}, "allowed_audiences", None),
    ({"name": "X", "allowed_audiences": [{"a": 1}]}, "allowed_audiences.0", None),
    ({"name": "x" * 256}, "name", None),
    ({}, "name", None),
], ids=["spa short name", "spa wire name", "unknown grant", "grants not a list", "unknown type",
        "negative lifetime", "audiences not a list", "audience not a string", "long name", "no name"])
def test_create_refuses_invalid_input(api, payload, field, message):
    before = Application.objects.count()
    assert_problem(api.post("applications", payload), HTTPStatus.BAD_REQUEST, field, message)
    assert Application.objects.count() == before


@pytest.fixture
def made(api):
    """Create an application through the API; returns its body (with the secret)."""

    def make(**fields):
        response = api.post("applications", {"name": "App", **fields})
        assert response.status_code == HTTPStatus.CREATED, response.content
        return response.json()

    return make


def test_list_filters_and_paginates(api, made, manager_app):
    made(name="Orders web", application_type="traditional")
    made(name="Orders SPA", application_type="spa")
    made(name="Billing", application_type="mobile")
    body = api.get("applications?limit=2").json()
    assert body["count"] == 4
    assert [a["name"] for a in body["results"]] == ["CI", "Orders web"]
    assert [a["name"] for a in api.get("applications?name=orders").json()["results"]] == ["Orders web", "Orders SPA"]
    assert [a["name"] for a in api.get("applications?application_type=spa").json()["results"]] == ["Orders SPA"]
    client_id = manager_app.client_id
    assert [a["name"] for a in api.get(f"applications?client_id={client_id}").json()["results"]] == ["CI"]
    assert_problem(api.get("applications?application_type=desktop"), HTTPStatus.BAD_REQUEST, "application_type")


def test_partial_update(api, made):
    app = made(name="Before", allowed_grant_types=["client_credentials"])
    response = api.patch(f"applications/{app['id']}", {"name": "After", "allowed_scopes": "openid profile"})
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert (body["name"], body["allowed_scopes"], body["allowed_grant_types"]) == (
        "After", "openid profile", ["client_credentials"])


def test_partial_update_refuses_token_exchange_for_spa(api, made):
    app = made(application_type="spa")
    response = api.patch(f"applications/{app['id']}", {"allowed_grant_types": ["token_exchange"]})
    assert_problem(response, HTTPStatus.BAD_REQUEST, "allowed_grant_types", SPA_MESSAGE)
    assert Application.objects.get(pk=app["id"]).allowed_grant_types == []


def test_type_cannot_be_changed(api, made):
    app = made(application_type="spa")
    response = api.patch(f"applications/{app['id']}", {"application_type": "standard", "name": "Renamed"})
    assert response.status_code == HTTPStatus.OK
    assert (response.json()["application_type"], response.json()["name"]) == ("spa", "Renamed")


def test_delete(api, made):
    app = made()
    assert api.delete(f"applications/{app['id']}").status_code == HTTPStatus.NO_CONTENT
    assert_problem(api.get(f"applications/{app['id']}"), HTTPStatus.NOT_FOUND)


@pytest.mark.parametrize("ident", ["424242", "abc", "9" * 25])
@pytest.mark.parametrize("method, suffix", [
    ("get", ""), ("patch", ""), ("delete", ""), ("get", "/protocol"), ("put", "/protocol"),
    ("post", "/regenerate-secret"),
])
def test_unknown_application_is_404(api, db, ident, method, suffix):
    assert_problem(getattr(api, method)(f"applications/{ident}{suffix}"), HTTPStatus.NOT_FOUND)


# -- protocol -------------------------------------------------------------------------------------


def test_protocol_get(api, made):
    app = made(allowed_grant_types=["refresh_token", "token_exchange"])
    body = api.get(f"applications/{app['id']}/protocol").json()
    assert body == {
        "application_type": "standard", "client_type": "confidential",
        "allowed_grant_types": [TOKEN_EXCHANGE, "refresh_token"],
        "access_token_lifetime": None, "effective_access_token_lifetime": 3600,
    }


def test_protocol_put_enables_token_exchange(api, made, client, pem_issuer, rsa_key):
    app = made(allowed_grant_types=["client_credentials"])
    token = mint(rsa_key, pem_issuer.issuer)
    refused = exchange_as(client, app["client_id"], app["client_secret"], token)
    assert refused.json()["error"] == "unauthorized_client"

    response = api.put(f"applications/{app['id']}/protocol", {
        "allowed_grant_types": ["token_exchange", "refresh_token"], "access_token_lifetime": 900,
    })
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert body["allowed_grant_types"] == [TOKEN_EXCHANGE, "refresh_token"]
    assert (body["access_token_lifetime"], body["effective_access_token_lifetime"]) == (900, 900)

    issued = exchange_as(client, app["client_id"], app["client_secret"], mint(rsa_key, pem_issuer.issuer))
    assert issued.status_code == HTTPStatus.OK, issued.content
    assert issued.json()["expires_in"] == 900
    assert "refresh_token" in issued.json()


def test_protocol_put_replaces(api, made):
    app = made(allowed_grant_types=["token_exchange", "client_credentials"], access_token_lifetime=60)
    body = api.put(f"applications/{app['id']}/protocol", {"allowed_grant_types": []}).json()
    assert (body["allowed_grant_types"], body["access_token_lifetime"]) == ([], None)


def test_protocol_put_refuses_token_exchange_for_spa(api, made):
    app = made(application_type="spa", allowed_grant_types=["refresh_token"])
    response = api.put(f"applications/{app['id']}/protocol", {"allowed_grant_types": ["token_exchange"]})
    body = assert_problem(response, HTTPStatus.BAD_REQUEST, "allowed_grant_types", SPA_MESSAGE)
    assert "public clients" in body["detail"]
    assert Application.objects.get(pk=app["id"]).allowed_grant_types == ["refresh_token"]


@pytest.mark.parametrize("payload, field", [
    ({}, "allowed_grant_types"),
    ({"allowed_grant_types": ["implicit"]}, "allowed_grant_types"),
    ({"allowed_grant_types": None}, "allowed_grant_types"),
    ({"allowed_grant_types": [], "access_token_lifetime": "long"}, "access_token_lifetime"),
    ({"allowed_grant_types": [], "access_token_lifetime": -60}, "access_token_lifetime"),
])
def test_protocol_put_refuses_invalid_input(api, made, payload, field):
    app = made(allowed_grant_types=["client_credentials"])
    assert_problem(api.put(f"applications/{app['id']}/protocol", payload), HTTPStatus.BAD_REQUEST, field)


# -- secrets --------------------------------------------------------------------------------------


def test_regenerate_secret(api, made, client, pem_issuer, rsa_key):
    app = made(allowed_grant_types=["token_exchange"])
    response = api.post(f"applications/{app['id']}/regenerate-secret")
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert body["client_id"] == app["client_id"]
    assert body["client_secret"] != app["client_secret"]
    old = exchange_as(client, app["client_id"], app["client_secret"], mint(rsa_key, pem_issuer.issuer))
    assert old.status_code == HTTPStatus.UNAUTHORIZED
    new = exchange_as(client, app["client_id"], body["client_secret"], mint(rsa_key, pem_issuer.issuer))
    assert new.status_code == HTTPStatus.OK


def test_management_application_can_be_created_through_the_api(client, db):
    """A second CI credential, made with the first: its client_credentials token manages too. The first
    needs the permission to grant the scope, and gives only what it holds (security/test_management_plane.py)."""
    first, secret = flows.create_application(
        name="CI", grant_types=["client_credentials"], scopes="console:manage", actor=SYSTEM,
        service_account_permissions=["exchange.add_application", "exchange.view_application",
                                     "exchange.grant_management_scope"],
    )
    api = APIClient(Client(HTTP_HOST="localhost"), f"Bearer {obtain_token(client, first, secret)}")
    body = api.post("applications", {
        "name": "CI 2", "allowed_grant_types": ["client_credentials"], "allowed_scopes": "console:manage",
        "service_account_permissions": ["exchange.view_application"],
    }).json()
    application = Application.objects.get(pk=body["id"])
    token = obtain_token(client, application, body["client_secret"])
    response = client.get(f"{API}/applications", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == HTTPStatus.OK


def test_an_application_cannot_delete_itself(api, manager_app):
    body = assert_problem(api.delete(f"applications/{manager_app.pk}"), HTTPStatus.CONFLICT)
    assert "other credentials" in body["detail"]
    assert api.get("applications").status_code == HTTPStatus.OK


def test_partial_update_sets_allowed_audiences(api, made):
    app = made(name="Audiences", allowed_grant_types=["token_exchange"])
    response = api.patch(f"applications/{app['id']}", {"allowed_audiences": ["https://api.example"]})
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["allowed_audiences"] == ["https://api.example"]
    for bad in (["https://a", "https://a"], [""], [" https://a"], "https://a"):
        assert api.patch(f"applications/{app['id']}", {"allowed_audiences": bad}).status_code == HTTPStatus.BAD_REQUEST
    assert api.get(f"applications/{app['id']}").json()["allowed_audiences"] == ["https://api.example"]
