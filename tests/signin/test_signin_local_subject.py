"""One ``sub`` for a local user everywhere (accounts.local_subject), and sign-in's scopes narrowed by the
user's roles: API scopes need a role that holds them; the OpenID identity scopes (openid, profile, email)
are the sign-in itself and are not role-gated (signin.granted_scopes)."""

import uuid
from http import HTTPStatus

import jwt
import pytest
from django.contrib.auth.models import Group

from exchange import flows, signin
from exchange.accounts import local_subject
from exchange.protocol import JWT_TYPE

from ..factories import mint
from ..utils import basic_auth, post_form, verify_issued
from .conftest import pkce_pair

EXTERNAL = "ext-carol-9"


def _claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def test_code_flow_id_token_access_token_userinfo_and_an_exchanged_token_share_the_local_subject(
        client, signin_app, local_user, get_code, redeem, make_application, pem_issuer, rsa_key):
    # An external identity linked to carol, exchanged by an application that uses linked accounts.
    flows.link_identity(pem_issuer, EXTERNAL, local_user)
    exchanger = make_application(name="Exchanger", scopes="openid", linked_accounts="use")
    exchanged = post_form(client, "/oauth2/token", {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": mint(rsa_key, pem_issuer.issuer, sub=EXTERNAL), "subject_token_type": JWT_TYPE,
    }, HTTP_AUTHORIZATION=basic_auth(exchanger.client_id, exchanger.raw_secret))
    assert exchanged.status_code == HTTPStatus.OK, exchanged.content
    _, exchanged_claims = verify_issued(client, exchanged.json()["access_token"])
    # carol signs in to another application with the code flow.
    verifier, challenge = pkce_pair()
    body = redeem(signin_app, get_code(signin_app, challenge, scope="openid profile email")["code"], verifier).json()
    id_token, access = _claims(body["id_token"]), _claims(body["access_token"])
    info = client.get("/oauth2/userinfo", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert info.status_code == HTTPStatus.OK, info.content
    subject = local_subject(local_user)
    assert uuid.UUID(subject) and subject not in (str(local_user.pk), local_user.username)
    assert id_token["sub"] == access["sub"] == info.json()["sub"] == exchanged_claims["sub"] == subject
    assert exchanged_claims["sub_id"]["sub"] == EXTERNAL  # the exchanged token still names the external identity
    refreshed = redeem(signin_app, None, None, grant_type="refresh_token", refresh_token=body["refresh_token"],
                       redirect_uri=None, code_verifier=None)
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content
    assert _claims(refreshed.json()["id_token"])["sub"] == _claims(refreshed.json()["access_token"])["sub"] == subject


@pytest.fixture
def orders_app(make_application):
    flows.create_scope(name="orders:read", description="Read orders")
    flows.create_scope(name="orders:write", description="Change orders")
    return make_application(name="Orders web", application_type="traditional",
                            grant_types=["authorization_code", "refresh_token"],
                            scopes="openid profile email orders:read orders:write",
                            redirect_uris="https://app.example/callback")


def _give_role(user, scopes):
    role = Group.objects.create(name=f"role-{len(scopes)}-{user.pk}")
    flows.set_role_scopes(role, scopes)
    user.groups.add(role)


def test_sign_in_grants_api_scopes_only_through_the_users_roles(orders_app, local_user, get_code, redeem):
    _give_role(local_user, "orders:read")
    verifier, challenge = pkce_pair()
    params = get_code(orders_app, challenge, scope="openid profile email orders:read orders:write")
    body = redeem(orders_app, params["code"], verifier).json()
    # identity scopes kept though no role holds them; orders:write held by no role of carol's
    assert body["scope"] == "openid profile email orders:read"
    assert _claims(body["access_token"])["scope"] == body["scope"]


def test_a_user_without_roles_signs_in_with_the_identity_scopes_only(orders_app, local_user, get_code, redeem):
    verifier, challenge = pkce_pair()
    body = redeem(orders_app, get_code(orders_app, challenge, scope="openid orders:read email")["code"],
                  verifier).json()
    assert body["scope"] == "openid email" and "id_token" in body


@pytest.mark.parametrize("requested, roles, expected", [
    (["openid", "profile", "email"], "", ["openid", "profile", "email"]),  # identity scopes: never role-gated
    (["orders:read", "openid"], "", ["openid"]),
    (["orders:read", "openid"], "orders:read", ["orders:read", "openid"]),  # in the order asked
    (["orders:write", "orders:read"], "orders:read", ["orders:read"]),
    (["orders:read", "console:manage"], "orders:read", ["orders:read"]),  # never the management scope
    (["orders:read", "unknown"], "orders:read", ["orders:read"]),  # not allowed for the application
    ([], "orders:read", []),
])
def test_granted_scopes_requested_and_allowed_and_role_held(orders_app, local_user, requested, roles, expected):
    if roles:
        _give_role(local_user, roles)
    assert signin.granted_scopes(requested, orders_app, local_user) == expected


def test_granted_scopes_before_the_user_is_known_are_not_narrowed_by_roles(orders_app):
    """The authorization request's first check runs before anyone signs in; the consent and the code narrow."""
    assert signin.granted_scopes(["orders:write", "openid"], orders_app, None) == ["orders:write", "openid"]


def test_a_role_scope_the_application_is_not_allowed_is_not_granted(make_application, local_user):
    flows.create_scope(name="orders:read")
    app = make_application(name="Narrow", application_type="traditional", grant_types=["authorization_code"],
                           scopes="openid", redirect_uris="https://app.example/callback")
    _give_role(local_user, "orders:read")
    assert signin.granted_scopes(["openid", "orders:read"], app, local_user) == ["openid"]
