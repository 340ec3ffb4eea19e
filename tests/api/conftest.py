"""Fixtures of the management-API tests: a CI job's application and token, API clients, console staff."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from exchange import flows
from exchange.service_accounts import SYSTEM

from .helpers import APIClient, obtain_token


@pytest.fixture
def manager_app(db):
    """An application allowed client_credentials with the console:manage scope (a CI job's), granted from
    the command line: its service account holds the model permissions of issuers and applications."""
    application, secret = flows.create_application(
        name="CI", grant_types=["client_credentials"], scopes="console:manage", actor=SYSTEM,
    )
    application.raw_secret = secret
    return application


@pytest.fixture
def management_token(client, manager_app):
    return obtain_token(client, manager_app, manager_app.raw_secret)


@pytest.fixture
def api(management_token):
    """A client sending a console:manage bearer token (from client_credentials)."""
    return APIClient(Client(HTTP_HOST="localhost"), f"Bearer {management_token}")


@pytest.fixture
def anonymous():
    return APIClient(Client(HTTP_HOST="localhost"))


@pytest.fixture
def staff_client(db):
    """A signed-in console user (staff) with the given model permissions; CSRF checks on."""

    def make(*codenames, superuser=False, staff=True):
        user_model = get_user_model()
        username = f"user{user_model.objects.count() + 1}"
        if superuser:
            user = user_model.objects.create_superuser(username, password=None)
        else:
            user = user_model.objects.create_user(username, password=None, is_staff=staff)
            user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
        client = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
        client.force_login(user)
        return client

    return make
