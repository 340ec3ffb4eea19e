"""Fixtures of the console tests (Django's test client on the console's pages)."""

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def console_admin_client(client, db):
    """The ``client`` fixture itself, signed in as a superuser (pytest-django's ``admin_client`` is another client)."""
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client
