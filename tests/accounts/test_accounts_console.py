"""The console's linked-accounts pages: Users, the issuer's Linking tab, the application setting, Test a token."""

from http import HTTPStatus

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group

from exchange import flows
from exchange.models import AccessToken, Application, LinkedIdentity

from ..factories import mint


@pytest.fixture
def console_admin(client, db):
    """The ``client`` signed in as a console superuser."""
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    client.admin = admin
    return client


def test_users_list_searches_linked_subjects_and_shows_kinds(console_admin, make_local_user, pem_issuer):
    flows.link_identity(pem_issuer, "ext-search-me", make_local_user(username="gail"))
    make_local_user(username="hank")
    page = console_admin.get("/console/auth/user/?q=search-me").content.decode()
    assert "gail" in page and "hank" not in page
    page = console_admin.get("/console/auth/user/").content.decode()
    assert "Local user" in page and "Superuser" in page


def test_user_page_disables_enables_and_removes_links(console_admin, make_local_user, pem_issuer, rsa_key, exchange):
    user = make_local_user(username="ivy", scopes="openid")
    link = flows.link_identity(pem_issuer, "ext-ivy", user)
    page = console_admin.get(f"/console/auth/user/{user.pk}/change/").content.decode()
    assert "ext-ivy" in page and str(user.local_account.subject) in page and "openid" in page
    assert 'data-testid="user-status"' in page and ">Disable<" in page
    assert console_admin.get(f"/console/auth/user/{user.pk}/status/").status_code == HTTPStatus.METHOD_NOT_ALLOWED
    response = console_admin.post(f"/console/auth/user/{user.pk}/status/", {"active": "0"})
    assert response.status_code == HTTPStatus.FOUND
    user.refresh_from_db()
    assert not user.is_active
    console_admin.post(f"/console/auth/user/{user.pk}/status/", {"active": "1"})
    user.refresh_from_db()
    assert user.is_active
    console_admin.post(f"/console/auth/user/{user.pk}/unlink/", {"link": link.pk})
    assert not LinkedIdentity.objects.exists()
    messages = LogEntry.objects.filter(object_id=str(user.pk), user=console_admin.admin).values_list("change_message",
                                                                                                 flat=True)
    assert len(messages) == 3 and any("Removed the link" in m for m in messages)


def test_staff_cannot_be_disabled_here_nor_linked(console_admin, make_local_user, pem_issuer):
    staff = make_local_user(username="ops", is_staff=True)
    page = console_admin.get(f"/console/auth/user/{staff.pk}/change/").content.decode()
    assert 'data-testid="user-status"' not in page
    console_admin.post(f"/console/auth/user/{staff.pk}/status/", {"active": "0"})
    staff.refresh_from_db()
    assert staff.is_active
    response = console_admin.post(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=linking",
                              {"action": "link", "subject": "ext-ops", "username": "ops"})
    assert response.status_code == HTTPStatus.OK and "never linked" in response.content.decode()
    assert not LinkedIdentity.objects.exists()


def test_a_local_user_cannot_sign_in_to_the_console(client, make_local_user):
    user = make_local_user(username="jo")
    user.set_password("a long password 123")
    user.save()
    response = client.post("/console/login/", {"username": "jo", "password": "a long password 123"})
    assert response.status_code == HTTPStatus.OK  # the form again, no session
    assert client.get("/console/").status_code == HTTPStatus.FOUND


def test_issuer_linking_tab_warns_links_and_saves_settings(console_admin, make_local_user, pem_issuer):
    make_local_user(username="kim")
    url = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=linking"
    page = console_admin.get(url).content.decode()
    assert "take over a local account" in page and "implicit linking is off" in page
    response = console_admin.post(url, {"action": "settings", "link_lookup_primary": "email",
                                    "link_lookup_secondary": "", "link_custom_claim": ""})
    assert response.status_code == HTTPStatus.FOUND
    page = console_admin.get(url).content.decode()
    assert "email (claim email, only with email_verified: true)" in page
    console_admin.post(url, {"action": "link", "subject": "ext-kim", "username": "kim"})
    link = LinkedIdentity.objects.get()
    assert "ext-kim" in console_admin.get(url).content.decode()
    console_admin.post(url, {"action": "unlink", "link": link.pk})
    assert not LinkedIdentity.objects.exists()
    response = console_admin.post(url, {"action": "settings", "link_lookup_primary": "",
                                    "link_lookup_secondary": "email", "link_custom_claim": ""})
    assert response.status_code == HTTPStatus.OK and "primary lookup attribute first" in response.content.decode()


def test_application_protocol_tab_sets_attribute_resolution(console_admin, application):
    url = f"/console/exchange/application/{application.pk}/change/?tab=protocol"
    assert "Attribute resolution for linked accounts" in console_admin.get(url).content.decode()
    response = console_admin.post(url, {"allowed_grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
                                    "linked_accounts": "require", "bound_to_subject_token": "on",
                                    "access_token_lifetime": "", "allowed_audiences": ""})
    assert response.status_code == HTTPStatus.FOUND, response.content
    assert Application.objects.get(pk=application.pk).linked_accounts == "require"


def test_test_a_token_shows_the_linking_step(console_admin, make_local_user, pem_issuer, rsa_key):
    flows.update_trusted_token_issuer(pem_issuer, link_lookup_primary="email")
    make_local_user(username="lee", email="lee@example.com")
    url = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=test"
    token = mint(rsa_key, pem_issuer.issuer, sub="ext-lee", email="lee@example.com", email_verified=True)
    page = console_admin.post(url, {"token": token}).content.decode()
    assert 'data-check="linked_account"' in page and "would be linked implicitly to local user lee" in page
    page = console_admin.post(url, {"token": mint(rsa_key, pem_issuer.issuer, sub="ext-x")}).content.decode()
    assert "lookup_attributes_missing" in page
    assert not LinkedIdentity.objects.exists() and not AccessToken.objects.exists()


def test_group_page_sets_role_scopes(console_admin):
    response = console_admin.post("/console/auth/group/add/", {"name": "readers", "scopes": "openid", "permissions": []})
    assert response.status_code == HTTPStatus.FOUND, response.content
    assert Group.objects.get().role_scopes.scopes == "openid"
    response = console_admin.post("/console/auth/group/add/", {"name": "bad", "scopes": "console:manage"})
    assert response.status_code == HTTPStatus.OK and "never exchanged" in response.content.decode()


@pytest.mark.parametrize("cause", ["lookup_attributes_missing", "local_account_required", "local_user_disabled",
                                   "local_user_not_linkable"])
def test_each_linking_refusal_is_explained_with_what_to_do(cause):
    from exchange.accounts import CAUSES
    from exchange.admin.records import REMEDIES, explain_cause

    assert explain_cause(cause) == (CAUSES[cause], REMEDIES[cause])
