"""Fixtures of the linked-accounts tests: local users, roles with scopes, and an application that uses links."""

import pytest
from django.contrib.auth.models import Group, User

from exchange import flows

from ..utils import basic_auth, exchange_body, post_form


@pytest.fixture
def make_local_user(db):
    """Creates a local user (not staff) holding the scopes of a role named after them."""

    def make(username="alice.local", email="", scopes="", **fields):
        user = User.objects.create_user(username=username, email=email, password=None, **fields)
        if scopes:
            role = Group.objects.create(name=f"role-{username}")
            flows.set_role_scopes(role, scopes)
            user.groups.add(role)
        return user

    return make


@pytest.fixture
def linking_app(make_application):
    """Returns an application allowed scopes openid and profile, with linked accounts set to ``mode``."""

    def make(mode="use", name="Linking", **fields):
        return make_application(name=name, scopes="openid profile", linked_accounts=mode,
                                grant_types=("token_exchange", "refresh_token"), **fields)

    return make


@pytest.fixture
def exchange_as(client):
    """POST a token exchange of ``subject_token`` as ``app``; the response."""

    def do(app, subject_token, **params):
        return post_form(client, "/oauth2/token", exchange_body(subject_token, **params),
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))

    return do
