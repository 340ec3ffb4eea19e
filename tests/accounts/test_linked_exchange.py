"""Linked accounts at the token endpoint: each mode of the application's setting, implicit linking, each refusal."""

import uuid
from http import HTTPStatus

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User

from exchange import flows
from exchange.accounts import CAUSES
from exchange.models import AccessToken, ExchangeEvent, LinkedIdentity, RefreshToken

from ..factories import DROP, mint
from ..utils import assert_oauth_error, basic_auth, introspected, post_form, verify_issued

EXTERNAL = "ext-7f3a"


def _refused(response, error, cause):
    assert_oauth_error(response, HTTPStatus.BAD_REQUEST, error)
    assert response.json()["error_description"] == CAUSES[cause]
    event = ExchangeEvent.objects.order_by("-pk").first()
    assert (event.outcome, event.cause) == ("rejected", cause)


@pytest.fixture
def email_issuer(pem_issuer):
    """``pem_issuer`` with implicit linking on the email attribute."""
    return flows.update_trusted_token_issuer(pem_issuer, link_lookup_primary="email")


def _token(rsa_key, issuer, **claims):
    return mint(rsa_key, issuer.issuer, **{"sub": EXTERNAL, **claims})


# -- the three modes with an explicit link -------------------------------------------------------------

def test_disabled_mode_issues_for_the_external_identity_even_when_linked(
        client, exchange_as, linking_app, make_local_user, pem_issuer, rsa_key):
    app = linking_app("disabled")
    flows.link_identity(pem_issuer, EXTERNAL, make_local_user(scopes="openid"))
    response = exchange_as(app, _token(rsa_key, pem_issuer), scope="openid profile")
    assert response.status_code == HTTPStatus.OK, response.content
    _, claims = verify_issued(client, response.json()["access_token"])
    assert claims["sub"] == EXTERNAL
    assert claims["scope"] == "openid profile"
    assert AccessToken.objects.get().user is None


@pytest.mark.parametrize("mode", ["use", "require"])
def test_a_linked_identity_gets_a_token_for_the_local_user(
        client, exchange_as, linking_app, make_local_user, pem_issuer, rsa_key, mode):
    app = linking_app(mode)
    user = make_local_user(scopes="openid")
    flows.link_identity(pem_issuer, EXTERNAL, user)
    response = exchange_as(app, _token(rsa_key, pem_issuer), scope="openid profile")
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    _, claims = verify_issued(client, body["access_token"])
    local = str(user.local_account.subject)
    assert claims["sub"] == local and uuid.UUID(local)  # a stable local identifier, not the username
    assert claims["sub"] != user.username
    assert claims["sub_id"] == {"format": "iss_sub", "iss": pem_issuer.issuer, "sub": EXTERNAL}
    # requested ∩ the application's allowed ∩ the user's roles
    assert claims["scope"] == body["scope"] == "openid"
    row = AccessToken.objects.get()
    assert (row.user, row.subject, row.trusted_issuer) == (user, EXTERNAL, pem_issuer)
    assert RefreshToken.objects.get().user == user
    answer = introspected(client, app, body["access_token"])
    assert (answer["sub"], answer["sub_id"], answer["scope"]) == (local, claims["sub_id"], "openid")


def test_a_refreshed_token_keeps_the_local_subject_and_stops_when_the_user_is_disabled(
        client, exchange_as, linking_app, make_local_user, pem_issuer, rsa_key):
    app = linking_app("use")
    user = make_local_user(scopes="openid")
    flows.link_identity(pem_issuer, EXTERNAL, user)
    body = exchange_as(app, _token(rsa_key, pem_issuer), scope="openid").json()
    refresh = lambda token: post_form(  # noqa: E731
        client, "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": token},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    response = refresh(body["refresh_token"])
    assert response.status_code == HTTPStatus.OK, response.content
    refreshed = response.json()
    _, claims = verify_issued(client, refreshed["access_token"])
    assert claims["sub"] == str(user.local_account.subject)
    assert claims["sub_id"]["sub"] == EXTERNAL
    assert "id_token" not in refreshed
    flows.set_user_active(user, False)
    assert introspected(client, app, refreshed["access_token"]) == {"active": False}
    assert refresh(refreshed["refresh_token"]).status_code == HTTPStatus.BAD_REQUEST


def test_use_mode_without_a_link_issues_for_the_external_identity(
        client, exchange_as, linking_app, make_local_user, pem_issuer, rsa_key):
    make_local_user(username=EXTERNAL)  # same name, but nothing links them
    response = exchange_as(linking_app("use"), _token(rsa_key, pem_issuer), scope="openid")
    assert response.status_code == HTTPStatus.OK, response.content
    _, claims = verify_issued(client, response.json()["access_token"])
    assert (claims["sub"], claims["scope"]) == (EXTERNAL, "openid")
    assert AccessToken.objects.get().user is None


def test_require_mode_without_a_link_is_refused(exchange_as, linking_app, pem_issuer, rsa_key):
    _refused(exchange_as(linking_app("require"), _token(rsa_key, pem_issuer)), "invalid_request",
             "local_account_required")


@pytest.mark.parametrize("mode", ["use", "require"])
def test_a_disabled_linked_user_is_refused(exchange_as, linking_app, make_local_user, pem_issuer, rsa_key, mode):
    user = make_local_user(scopes="openid")
    flows.link_identity(pem_issuer, EXTERNAL, user)
    flows.set_user_active(user, False)
    _refused(exchange_as(linking_app(mode), _token(rsa_key, pem_issuer)), "invalid_grant", "local_user_disabled")


@pytest.mark.parametrize("privilege", ["is_staff", "is_superuser"])
def test_a_linked_user_who_became_staff_is_refused(
        exchange_as, linking_app, make_local_user, pem_issuer, rsa_key, privilege):
    user = make_local_user()
    flows.link_identity(pem_issuer, EXTERNAL, user)
    User.objects.filter(pk=user.pk).update(**{privilege: True})
    _refused(exchange_as(linking_app("use"), _token(rsa_key, pem_issuer)), "invalid_grant", "local_user_not_linkable")


@pytest.mark.parametrize("mode, after", [("use", HTTPStatus.OK), ("require", HTTPStatus.BAD_REQUEST)])
def test_a_removed_link_makes_the_next_exchange_federated_or_refused(
        client, exchange_as, linking_app, make_local_user, pem_issuer, rsa_key, mode, after):
    app = linking_app(mode)
    user = make_local_user(scopes="openid")
    link = flows.link_identity(pem_issuer, EXTERNAL, user)
    first = exchange_as(app, _token(rsa_key, pem_issuer), scope="openid").json()
    flows.unlink_identity(link)
    assert introspected(client, app, first["access_token"]) == {"active": False}  # tokens through it revoked
    response = exchange_as(app, _token(rsa_key, pem_issuer), scope="openid")
    assert response.status_code == after, response.content
    if after == HTTPStatus.OK:
        _, claims = verify_issued(client, response.json()["access_token"])
        assert claims["sub"] == EXTERNAL
    else:
        assert ExchangeEvent.objects.order_by("-pk").first().cause == "local_account_required"
    history = LogEntry.objects.filter(object_id=str(user.pk)).values_list("change_message", flat=True)
    assert any("Linked the external identity" in m for m in history)
    assert any("Removed the link" in m for m in history)


# -- implicit linking ----------------------------------------------------------------------------------

def test_implicit_linking_by_verified_email_links_the_one_user(
        client, exchange_as, linking_app, make_local_user, email_issuer, rsa_key):
    user = make_local_user(email="Alice@Example.com", scopes="profile")
    response = exchange_as(linking_app("require"), _token(rsa_key, email_issuer, email="alice@example.com",
                                                          email_verified=True), scope="openid profile")
    assert response.status_code == HTTPStatus.OK, response.content
    _, claims = verify_issued(client, response.json()["access_token"])
    assert (claims["sub"], claims["scope"]) == (str(user.local_account.subject), "profile")
    link = LinkedIdentity.objects.get()
    assert (link.user, link.subject, link.origin, link.matched_on) == (user, EXTERNAL, "implicit", "email")
    entry = LogEntry.objects.get(object_id=str(user.pk))
    assert "implicitly at token exchange (matched on email" in entry.change_message
    # Permanent: the next exchange uses the link even without the attribute.
    response = exchange_as(linking_app("require", name="Other"), _token(rsa_key, email_issuer))
    assert response.status_code == HTTPStatus.OK, response.content
    assert LinkedIdentity.objects.count() == 1


@pytest.mark.parametrize("verified", [False, DROP, "true", 1, None])
def test_an_unverified_email_never_links(exchange_as, linking_app, make_local_user, email_issuer, rsa_key, verified):
    make_local_user(email="alice@example.com")
    token = _token(rsa_key, email_issuer, email="alice@example.com", email_verified=verified)
    _refused(exchange_as(linking_app("require"), token), "invalid_request", "local_account_required")
    assert not LinkedIdentity.objects.exists()


def test_two_users_sharing_an_email_are_never_linked(
        client, exchange_as, linking_app, make_local_user, email_issuer, rsa_key):
    make_local_user(username="a1", email="shared@example.com")
    make_local_user(username="a2", email="SHARED@example.com")
    token = lambda: _token(rsa_key, email_issuer, email="shared@example.com", email_verified=True)  # noqa: E731
    response = exchange_as(linking_app("use"), token())
    assert response.status_code == HTTPStatus.OK, response.content
    assert verify_issued(client, response.json()["access_token"])[1]["sub"] == EXTERNAL
    _refused(exchange_as(linking_app("require", name="Strict"), token()), "invalid_request", "local_account_required")
    assert not LinkedIdentity.objects.exists()


@pytest.mark.parametrize("privilege", [{"is_staff": True}, {"is_superuser": True, "is_staff": True}])
def test_implicit_linking_never_matches_staff(
        exchange_as, linking_app, make_local_user, email_issuer, rsa_key, privilege):
    make_local_user(username="root", email="root@example.com", **privilege)
    token = _token(rsa_key, email_issuer, email="root@example.com", email_verified=True)
    _refused(exchange_as(linking_app("require"), token), "invalid_request", "local_account_required")
    assert not LinkedIdentity.objects.exists()


def test_implicit_linking_never_matches_a_service_account(
        exchange_as, linking_app, make_application, pem_issuer, rsa_key):
    from exchange.service_accounts import SYSTEM

    service = make_application(name="Manager", grant_types=("client_credentials",), scopes="console:manage",
                               actor=SYSTEM).service_user
    issuer = flows.update_trusted_token_issuer(pem_issuer, link_lookup_primary="username")
    token = _token(rsa_key, issuer, preferred_username=service.username)
    _refused(exchange_as(linking_app("require"), token), "invalid_request", "local_account_required")


@pytest.mark.parametrize("claims", [
    {},
    {"email_verified": True},
    {"email": 42, "email_verified": True},
    {"email": ["alice@example.com"], "email_verified": True},
    {"email": {"value": "alice@example.com"}, "email_verified": True},
    {"email": "", "email_verified": True},
    {"email": "a" * 10_000 + "@example.com", "email_verified": True},
    {"email": "alice@example.com\n", "email_verified": True},
    {"email": "alice\u0000@example.com", "email_verified": True},
])
def test_lookup_attributes_absent_or_unusable_are_refused(
        exchange_as, linking_app, make_local_user, email_issuer, rsa_key, claims):
    make_local_user(email="alice@example.com")
    _refused(exchange_as(linking_app("use"), _token(rsa_key, email_issuer, **claims)), "invalid_request",
             "lookup_attributes_missing")
    assert not LinkedIdentity.objects.exists()


def test_the_secondary_attribute_is_used_when_the_primary_is_absent_or_matches_nobody(
        exchange_as, linking_app, make_local_user, pem_issuer, rsa_key):
    issuer = flows.update_trusted_token_issuer(pem_issuer, link_lookup_primary="username",
                                               link_lookup_secondary="email")
    bob = make_local_user(username="bob", email="bob@example.com")
    carol = make_local_user(username="carol", email="carol@example.com")
    app = linking_app("require")
    assert exchange_as(app, mint(rsa_key, issuer.issuer, sub="s1", email="bob@example.com",
                                 email_verified=True)).status_code == HTTPStatus.OK
    assert exchange_as(app, mint(rsa_key, issuer.issuer, sub="s2", preferred_username="nobody",
                                 email="carol@example.com", email_verified=True)).status_code == HTTPStatus.OK
    assert dict(LinkedIdentity.objects.values_list("subject", "user")) == {"s1": bob.pk, "s2": carol.pk}


def test_a_custom_attribute_links_by_the_claim_the_issuer_names(
        exchange_as, linking_app, make_local_user, pem_issuer, rsa_key):
    issuer = flows.update_trusted_token_issuer(pem_issuer, link_lookup_primary="custom",
                                               link_custom_claim="employee_number")
    user = make_local_user()
    user.local_account.lookup_attribute = "E-1001"
    user.local_account.save()
    response = exchange_as(linking_app("require"), _token(rsa_key, issuer, employee_number="E-1001"))
    assert response.status_code == HTTPStatus.OK, response.content
    assert LinkedIdentity.objects.get().user == user


def test_implicit_linking_does_not_run_for_applications_with_linking_disabled(
        exchange_as, linking_app, make_local_user, email_issuer, rsa_key):
    make_local_user(email="alice@example.com")
    response = exchange_as(linking_app("disabled"), _token(rsa_key, email_issuer))  # no attribute: not refused
    assert response.status_code == HTTPStatus.OK, response.content
    assert not LinkedIdentity.objects.exists()


def test_an_implicit_link_to_a_disabled_user_is_refused(
        exchange_as, linking_app, make_local_user, email_issuer, rsa_key):
    make_local_user(email="alice@example.com", is_active=False)
    token = _token(rsa_key, email_issuer, email="alice@example.com", email_verified=True)
    _refused(exchange_as(linking_app("use"), token), "invalid_grant", "local_user_disabled")


def test_an_implicit_link_racing_another_keeps_the_first(make_local_user, linking_app, pem_issuer):
    first, second = make_local_user(username="first"), make_local_user(username="second")
    existing = flows.link_identity(pem_issuer, EXTERNAL, first)
    racing = LinkedIdentity(trusted_issuer=pem_issuer, subject=EXTERNAL, user=second, origin="implicit",
                            matched_on="email")
    kept = flows.link_implicitly(racing, linking_app("use"))
    assert (kept.pk, kept.user) == (existing.pk, first)
    assert LinkedIdentity.objects.count() == 1


def test_an_implicit_link_racing_a_link_to_a_disabled_user_is_refused(make_local_user, linking_app, pem_issuer):
    from exchange.accounts import LinkRefused

    disabled = make_local_user(username="gone", is_active=False)
    flows.link_identity(pem_issuer, EXTERNAL, disabled)
    racing = LinkedIdentity(trusted_issuer=pem_issuer, subject=EXTERNAL, user=make_local_user(username="new"),
                            origin="implicit", matched_on="email")
    with pytest.raises(LinkRefused) as refused:
        flows.link_implicitly(racing, linking_app("use"))
    assert refused.value.cause == "local_user_disabled"
