"""Linked accounts beside main's claim mapping, delegation and scope registry: a linked user's delegated
token keeps ``act`` and the mapped claims; roles hold only registered scopes, and a scope a role grants
is not deleted (as one an application allows is not)."""

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from exchange import accounts, flows
from exchange.models import AccessToken, RefreshToken, RoleScopes, Scope
from exchange.protocol import JWT_TYPE

from ..factories import mint
from ..utils import basic_auth, introspected, post_form, verify_issued

EXTERNAL = "ext-deleg-1"
ACTOR_ISS = "https://actor.issuer.test"  # conftest's actor_issuer


@pytest.fixture
def linked_delegating(make_application, actor_issuer, pem_issuer):
    """An application that uses linked accounts and allows delegation by ``actor_issuer``; pem_issuer maps email."""
    flows.update_trusted_token_issuer(pem_issuer, claim_mappings=[
        {"source": "email", "target": "email", "type": "string", "required": True}])
    return make_application(name="Linked delegating", grant_types=["token_exchange", "refresh_token"],
                            scopes="openid profile", allow_delegation=True, actor_issuers=[actor_issuer],
                            linked_accounts="require")


def _delegate(client, app, rsa_key, actor_key, pem_issuer, **params):
    body = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": mint(rsa_key, pem_issuer.issuer, sub=EXTERNAL, email="dana@partner.example"),
        "subject_token_type": JWT_TYPE,
        "actor_token": mint(actor_key, ACTOR_ISS, sub="orders-service"),
        "actor_token_type": JWT_TYPE,
        **params,
    }
    return post_form(client, "/oauth2/token", body, HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))


def test_a_delegated_token_for_a_linked_user_keeps_act_and_the_mapped_claims(
        client, linked_delegating, make_local_user, pem_issuer, rsa_key, actor_key):
    user = make_local_user(username="dana", scopes="openid")
    flows.link_identity(pem_issuer, EXTERNAL, user)
    response = _delegate(client, linked_delegating, rsa_key, actor_key, pem_issuer, scope="openid profile")
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    _, claims = verify_issued(client, body["access_token"])
    assert claims["sub"] == accounts.local_subject(user)  # the linked local user ...
    assert claims["sub_id"] == {"format": "iss_sub", "iss": pem_issuer.issuer, "sub": EXTERNAL}
    assert claims["act"] == {"sub": "orders-service", "iss": ACTOR_ISS}  # ... acted for by the actor, unresolved
    assert claims["email"] == "dana@partner.example"  # the subject issuer's mapping still applies
    assert claims["scope"] == body["scope"] == "openid"  # requested ∩ allowed ∩ the user's roles
    row = AccessToken.objects.get()
    assert (row.user, row.subject, row.act, row.mapped_claims) == (
        user, EXTERNAL, claims["act"], {"email": "dana@partner.example"})
    answer = introspected(client, linked_delegating, body["access_token"])
    assert (answer["sub"], answer["act"], answer["email"]) == (claims["sub"], claims["act"], claims["email"])
    refreshed = post_form(client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                          HTTP_AUTHORIZATION=basic_auth(linked_delegating.client_id, linked_delegating.raw_secret))
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content
    _, again = verify_issued(client, refreshed.json()["access_token"])
    assert (again["sub"], again["sub_id"], again["act"], again["email"]) == (
        claims["sub"], claims["sub_id"], claims["act"], claims["email"])
    assert RefreshToken.objects.filter(revoked__isnull=True).get().user == user


def test_a_refused_actor_makes_no_implicit_link(
        client, linked_delegating, make_local_user, pem_issuer, rsa_key, actor_key):
    """The local-account step runs after both tokens: a delegation refused for its actor links nobody."""
    flows.update_trusted_token_issuer(pem_issuer, link_lookup_primary="username")
    make_local_user(username="dana", scopes="openid")
    body = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": mint(rsa_key, pem_issuer.issuer, sub=EXTERNAL, email="d@p.example",
                              preferred_username="dana", may_act={"sub": "someone-else", "iss": ACTOR_ISS}),
        "subject_token_type": JWT_TYPE,
        "actor_token": mint(actor_key, ACTOR_ISS, sub="orders-service"),
        "actor_token_type": JWT_TYPE,
    }
    response = post_form(client, "/oauth2/token", body,
                         HTTP_AUTHORIZATION=basic_auth(linked_delegating.client_id, linked_delegating.raw_secret))
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert pem_issuer.linked_identities.count() == 0


# -- role scopes and the scope registry ----------------------------------------------------------------

@pytest.mark.parametrize("scopes, message", [
    ("orders:read", "Unknown scope 'orders:read': register it in the scope registry first."),  # not registered
    ("openid orders:read", "Unknown scope 'orders:read': register it in the scope registry first."),
    ('bad"quote', "Give registered scope names separated by spaces."),  # not an RFC 6749 §3.3 scope-token
    ("console:manage", "The console:manage scope is not a role's: it is never exchanged."),
])
def test_a_role_holds_only_registered_scopes(db, scopes, message):
    with pytest.raises(ValidationError) as raised:
        flows.clean_role_scopes(scopes)
    assert raised.value.message_dict == {"scopes": [message]}


def test_a_scope_registered_later_can_be_given_to_a_role(db):
    role = Group.objects.create(name="buyers")
    with pytest.raises(ValidationError):
        flows.set_role_scopes(role, "openid orders:read")
    flows.create_scope(name="orders:read", description="Read orders")
    assert flows.set_role_scopes(role, "openid orders:read") == "openid orders:read"


def test_a_scope_a_role_grants_is_not_deleted(db):
    scope = flows.create_scope(name="orders:read")
    role = Group.objects.create(name="buyers")
    flows.set_role_scopes(role, "orders:read")
    Group.objects.create(name="readers-of-orders-archive")  # a role without it is not named
    flows.set_role_scopes(Group.objects.get(name="readers-of-orders-archive"), "")
    with pytest.raises(ValidationError) as raised:
        flows.delete_scope(scope)
    assert raised.value.message_dict == {
        "name": ["The scope is granted by 1 role(s) (buyers); remove it there first."]}
    assert Scope.objects.filter(name="orders:read").exists()
    flows.set_role_scopes(role, "")
    flows.delete_scope(scope)
    assert not Scope.objects.filter(name="orders:read").exists()


def test_a_scope_name_inside_another_roles_scope_does_not_block_its_deletion(db):
    """Compared as whole names: a role granting orders:read-all does not grant orders:read."""
    flows.create_scope(name="orders:read-all")
    scope = flows.create_scope(name="orders:read")
    flows.set_role_scopes(Group.objects.create(name="auditors"), "orders:read-all")
    flows.delete_scope(scope)
    assert RoleScopes.objects.get().scopes == "orders:read-all"

