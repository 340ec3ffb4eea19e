"""Scopes as data: the scope registry decides which scopes exist; applications are allowed registered ones only.

``scope=orders:read`` on an application that allows a registered ``orders:read`` is granted; unknown,
malformed and not-allowed scopes are refused with fixed sentences (only a registered name is ever
named); discovery's ``scopes_supported`` is the registry; a scope still allowed somewhere, or one
the server needs, cannot be deleted.
"""

from http import HTTPStatus

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.http import QueryDict

from exchange import flows, grant
from exchange.models import Scope
from exchange.protocol import MANAGE_SCOPE
from exchange.registry import registry
from exchange.scopes import BUILT_IN_SCOPES, ensure_built_in

from ..factories import mint
from ..utils import assert_oauth_error, basic_auth, exchange_body, post_form, verify_issued


@pytest.fixture
def orders(db):
    return flows.create_scope(name="orders:read", description="Read the orders API")


def _exchange(client, app, subject_token, **params):
    return post_form(client, "/oauth2/token", exchange_body(subject_token, **params),
                     HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))


def test_the_built_in_scopes_are_registered(db):
    assert {s.name: (s.description, s.protected) for s in Scope.objects.all()} == BUILT_IN_SCOPES


def test_a_registered_and_allowed_scope_is_granted(client, orders, make_application, pem_issuer, rsa_key):
    app = make_application(name="Orders", scopes="orders:read")
    response = _exchange(client, app, mint(rsa_key, pem_issuer.issuer), scope="orders:read")
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["scope"] == "orders:read"
    assert verify_issued(client, response.json()["access_token"])[1]["scope"] == "orders:read"


def test_client_credentials_gets_a_registered_scope_too(client, orders, make_application):
    app = make_application(name="Job", grant_types=["client_credentials"], scopes="orders:read")
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": "orders:read"},
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["scope"] == "orders:read"


@pytest.mark.parametrize(("scope", "sentence"), [
    ("orders:write", "A requested scope is not a scope this server knows."),
    ("<script>alert(1)</script>", "A requested scope is not a scope this server knows."),
    ("openid orders:write", "A requested scope is not a scope this server knows."),
    ("profile", "The scope profile is not allowed for this application."),
    ("orders:read profile", "The scope profile is not allowed for this application."),
    ("orders:read  openid", "The scope parameter must be scope names separated by single spaces."),
    ('a"b', "The scope parameter must be scope names separated by single spaces."),
    ("caf\u00e9", "The scope parameter must be scope names separated by single spaces."),
    ("x" * 101, "The scope parameter must be scope names separated by single spaces."),
    ("orders:read\tprofile", "The scope parameter must be scope names separated by single spaces."),
    (MANAGE_SCOPE, f"The {MANAGE_SCOPE} scope cannot be obtained by token exchange."),
])
def test_invalid_scope_names_the_problem_in_a_fixed_sentence(client, orders, make_application, pem_issuer, rsa_key,
                                                              scope, sentence):
    app = make_application(name="Orders", scopes="orders:read openid")
    response = _exchange(client, app, mint(rsa_key, pem_issuer.issuer), scope=scope)
    body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_scope")
    assert body == {"error": "invalid_scope", "error_description": sentence}


def test_only_a_registered_scope_is_ever_named(orders, make_application):
    """A scope named in a refusal is the registry's text, never the request's: check_scope names none it does not know."""
    app = make_application(name="Orders", scopes="orders:read")
    request = grant.ExchangeRequest(_form(scope="orders:read openid"))
    request.client = app
    with pytest.raises(grant.ExchangeError) as caught:
        grant.check_scope(request)
    assert caught.value.description == grant.SCOPE_NOT_ALLOWED.format("openid")


def _form(**values):
    form = QueryDict(mutable=True)
    form.update(values)
    return form


def test_an_unknown_scope_is_refused_at_configuration(db, orders, make_application):
    with pytest.raises(ValidationError) as caught:
        make_application(name="Bad", scopes="orders:read orders:write")
    assert caught.value.message_dict["allowed_scopes"] == [
        "Unknown scope orders:write: register it in the scope registry first."]
    app = make_application(name="Good", scopes="orders:read")
    with pytest.raises(ValidationError):
        flows.update_application(app, allowed_scopes="orders:read nope")
    app.refresh_from_db()
    assert app.allowed_scopes == "orders:read"


@pytest.mark.parametrize("scopes", ['a"b', "caf\u00e9", "x" * 101, "a\\b"])
def test_a_malformed_allowed_scope_is_refused(make_application, scopes):
    with pytest.raises(ValidationError) as caught:
        make_application(name="Bad", scopes=scopes)
    assert caught.value.message_dict["allowed_scopes"] == ["Give registered scope names separated by spaces."]


@pytest.mark.parametrize("name", ["", "two words", 'a"b', "a\\b", "caf\u00e9", "x" * 101, "tab\there", "nul\x00"])
def test_a_malformed_scope_name_is_refused(db, name):
    with pytest.raises(ValidationError) as caught:
        flows.create_scope(name=name)
    assert "name" in caught.value.message_dict
    assert Scope.objects.count() == len(BUILT_IN_SCOPES)


def test_a_scope_is_registered_once(orders):
    with pytest.raises(ValidationError) as caught:
        flows.create_scope(name="orders:read")
    assert caught.value.message_dict["name"] == ["Scope with this Name already exists."]


def test_a_scope_still_allowed_by_an_application_is_not_deleted(orders, make_application):
    make_application(name="Orders app", scopes="openid orders:read")
    with pytest.raises(ValidationError) as caught:
        flows.delete_scope(orders)
    assert caught.value.message_dict["name"] == [
        "The scope is allowed for 1 application(s) (Orders app); remove it there first."]
    assert Scope.objects.filter(name="orders:read").exists()


def test_a_scope_name_inside_another_does_not_block_its_deletion(orders, make_application):
    flows.create_scope(name="orders:read:all")
    make_application(name="Other", scopes="orders:read:all")
    flows.delete_scope(orders)
    assert not Scope.objects.filter(name="orders:read").exists()


@pytest.mark.parametrize("name", ["openid", MANAGE_SCOPE])
def test_the_scopes_the_server_needs_are_never_deleted(db, name):
    with pytest.raises(ValidationError, match="needed by the server"):
        flows.delete_scope(Scope.objects.get(name=name))


def test_profile_may_be_deleted_and_stays_deleted(db, admin_user):
    flows.delete_scope(Scope.objects.get(name="profile"), user=admin_user)
    ensure_built_in()  # what every migrate and flush runs
    assert not Scope.objects.filter(name="profile").exists()
    assert Scope.objects.filter(name__in=["openid", MANAGE_SCOPE]).count() == 2
    assert LogEntry.objects.get().change_message == "Deleted"


def test_an_empty_registry_gets_every_built_in_scope(db):
    Scope.objects.all().delete()
    ensure_built_in()
    assert set(Scope.objects.values_list("name", flat=True)) == set(BUILT_IN_SCOPES)


def test_changes_leave_history(db, admin_user):
    scope = flows.create_scope(name="reports:read", user=admin_user)
    flows.update_scope(scope, description="Reports", user=admin_user)
    assert [entry.action_flag for entry in LogEntry.objects.order_by("pk")] == [1, 2]
    assert Scope.objects.get(name="reports:read").description == "Reports"


def test_scopes_supported_is_the_registry(client, db):
    def supported():
        return client.get("/.well-known/oauth-authorization-server").json()["scopes_supported"]

    assert supported() == ["email", "openid", "profile"]  # never console:manage
    flows.create_scope(name="orders:read")
    assert supported() == ["email", "openid", "orders:read", "profile"]
    flows.delete_scope(Scope.objects.get(name="profile"))
    assert supported() == ["email", "openid", "orders:read"]


def test_a_new_scope_is_usable_at_once(client, make_application, pem_issuer, rsa_key, django_assert_num_queries):
    """The registry is cached in each process and emptied by the change (model signals), like applications."""
    app = make_application(name="Orders")
    registry.scopes()  # cached without orders:read
    flows.create_scope(name="orders:read")
    flows.update_application(app, allowed_scopes="orders:read")
    response = _exchange(client, app, mint(rsa_key, pem_issuer.issuer), scope="orders:read")
    assert response.status_code == HTTPStatus.OK, response.content
    with django_assert_num_queries(0):
        assert "orders:read" in registry.scopes()


@pytest.mark.parametrize("name", ["CONSOLE:MANAGE", "OpenID", "Orders:Read"])
def test_a_scope_differing_only_in_case_is_refused(orders, name):
    with pytest.raises(ValidationError, match="differing only in case is already registered"):
        flows.create_scope(name=name)
