"""Console: an issuer's Claim mapping tab, its preview on Test a token, and the Scopes pages."""

from http import HTTPStatus

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry

from exchange import flows
from exchange.models import Scope, TrustedTokenIssuer

from ..factories import mint


def _claims_url(issuer):
    return f"/console/exchange/trustedtokenissuer/{issuer.pk}/change/?tab=claims"


def _rows(*rows):
    data = {"rows": str(max(len(rows), 1))}
    for index, (source, target, kind, required) in enumerate(rows):
        data.update({f"source_{index}": source, f"target_{index}": target, f"type_{index}": kind})
        if required:
            data[f"required_{index}"] = "on"
    return data


def test_the_claim_mapping_tab_saves_through_the_flow(console_admin_client, pem_issuer):
    response = console_admin_client.get(_claims_url(pem_issuer))
    assert response.status_code == HTTPStatus.OK
    assert 'data-testid="claim-mappings"' in response.content.decode()
    data = _rows(("email", "email", "string", True), ("groups", "groups", "string_list", False))
    data.update({"rows": "4", "source_3": "", "target_3": "", "type_3": ""})  # an empty row is ignored
    response = console_admin_client.post(_claims_url(pem_issuer), data)
    assert response.status_code == HTTPStatus.FOUND, response.content
    assert TrustedTokenIssuer.objects.get(pk=pem_issuer.pk).claim_mappings == [
        {"source": "email", "target": "email", "type": "string", "required": True},
        {"source": "groups", "target": "groups", "type": "string_list", "required": False},
    ]
    assert LogEntry.objects.filter(object_id=str(pem_issuer.pk)).exists()
    page = console_admin_client.get(_claims_url(pem_issuer)).content.decode()
    assert 'value="email"' in page and 'value="groups"' in page


@pytest.mark.parametrize(("row", "message"), [
    (("x", "sub", "string", False), "the target claim sub is set by this server and cannot be mapped"),
    (("x", "aud", "string", False), "the target claim aud is set by this server and cannot be mapped"),
    (("x", "", "string", False), "the target claim must be a non-empty string"),
    (("x", "y", "", False), "the type must be one of"),
])
def test_a_refused_mapping_is_shown_and_nothing_saved(console_admin_client, pem_issuer, row, message):
    response = console_admin_client.post(_claims_url(pem_issuer), _rows(row))
    assert response.status_code == HTTPStatus.OK
    assert message in response.content.decode()
    assert TrustedTokenIssuer.objects.get(pk=pem_issuer.pk).claim_mappings == []


def test_test_a_token_previews_the_mapped_claims(console_admin_client, pem_issuer, rsa_key):
    flows.update_trusted_token_issuer(pem_issuer, claim_mappings=[
        {"source": "email", "target": "email", "type": "string"},
        {"source": "groups", "target": "groups", "type": "string_list", "required": True}])
    url = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=test"
    response = console_admin_client.post(url, {"token": mint(rsa_key, pem_issuer.issuer, email="a@example.com",
                                                             groups=["g"])})
    report = response.context["report"]
    assert report.ok and report.mapped_claims == {"email": "a@example.com", "groups": ["g"]}
    html = response.content.decode()
    assert 'data-testid="mapped-claims"' in html and 'data-check="claims"' in html
    response = console_admin_client.post(url, {"token": mint(rsa_key, pem_issuer.issuer, groups="g")})
    assert response.context["report"].cause == "mapped_claim_invalid"
    assert "Rejected (mapped_claim_invalid)" in response.content.decode()


def test_the_scope_pages(console_admin_client, make_application):
    assert console_admin_client.get("/console/exchange/scope/").status_code == HTTPStatus.OK
    assert console_admin_client.get("/console/exchange/scope/add/").status_code == HTTPStatus.OK
    response = console_admin_client.post("/console/exchange/scope/add/",
                                         {"name": "orders:read", "description": "Read orders"})
    assert response.status_code == HTTPStatus.FOUND, response.content
    scope = Scope.objects.get(name="orders:read")
    page = console_admin_client.get(f"/console/exchange/scope/{scope.pk}/change/")
    assert page.status_code == HTTPStatus.OK and "Read orders" in page.content.decode()
    response = console_admin_client.post(f"/console/exchange/scope/{scope.pk}/change/?tab=general",
                                         {"description": "Orders, read only"})
    assert response.status_code == HTTPStatus.FOUND
    assert Scope.objects.get(pk=scope.pk).description == "Orders, read only"
    assert LogEntry.objects.filter(object_id=str(scope.pk)).count() == 2
    # Still allowed by an application: the deletion is refused with the reason, and the scope stays.
    make_application(name="Orders app", scopes="orders:read")
    response = console_admin_client.post(f"/console/exchange/scope/{scope.pk}/delete/", follow=True)
    assert "allowed for 1 application(s) (Orders app)" in response.content.decode()
    assert Scope.objects.filter(pk=scope.pk).exists()


@pytest.mark.parametrize("name", ["two words", 'a"b', "caf\u00e9", "orders:read"])
def test_new_scope_refusals_are_shown(console_admin_client, name):
    flows.create_scope(name="orders:read")
    response = console_admin_client.post("/console/exchange/scope/add/", {"name": name})
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors["name"]
    assert Scope.objects.filter(name=name).count() == (1 if name == "orders:read" else 0)


def test_a_protected_scope_offers_no_deletion(console_admin_client):
    scope = Scope.objects.get(name="console:manage")
    page = console_admin_client.get(f"/console/exchange/scope/{scope.pk}/change/").content.decode()
    assert "deletelink" not in page
    response = console_admin_client.post(f"/console/exchange/scope/{scope.pk}/delete/", follow=True)
    assert "needed by the server" in response.content.decode()
    assert Scope.objects.filter(pk=scope.pk).exists()


def test_every_scope_tab_shown_has_its_view():
    model_admin = admin.site.get_model_admin(Scope)
    assert [key for key, _ in model_admin.tabs] == list(model_admin.tab_views())
