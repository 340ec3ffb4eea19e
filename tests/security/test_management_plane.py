"""Issue 13, findings 1, 2, 8 and 10: the management plane's attacks, each written as the attack.

1. A staff user with only add/change/view_application tries to obtain console:manage authority
   (API create and patch, console General tab, secret regeneration, then bearer tokens).
2. Management tokens outliving their authority; unbounded token lifetimes.
8. Public clients holding secrets.
10. Cross-client introspection.
"""

import datetime
import importlib
import io
import json
import logging
from http import HTTPStatus

import pytest
from django.apps import apps as django_apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone

from exchange import flows, service_accounts, signing
from exchange.checks import lifetime_problems
from exchange.models import AccessToken, Application, RefreshToken, TrustedTokenIssuer
from exchange.protocol import CLIENT_CREDENTIALS, MANAGE_SCOPE, TOKEN_EXCHANGE
from exchange.service_accounts import SYSTEM

from ..api.helpers import APIClient, assert_problem, csrf_headers, obtain_token
from ..factories import mint
from ..utils import assert_oauth_error, basic_auth, exchange_body, post_form

APPLICATION_PERMS = ("add_application", "change_application", "view_application")
NEW_ISSUER = {"name": "Mine", "issuer": "https://mine.test", "jwks_uri": "https://mine.test/jwks"}


def _user(*codenames, staff=True, superuser=False):
    user_model = get_user_model()
    username = f"user{user_model.objects.count() + 1}"
    if superuser:
        return user_model.objects.create_superuser(username, password=None)
    user = user_model.objects.create_user(username, password=None, is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def _session(user):
    client = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    client.force_login(user)
    return client, csrf_headers(client)


def _api_as(user):
    client, headers = _session(user)
    return APIClient(client), headers


def _bearer(client, application, secret):
    return APIClient(Client(HTTP_HOST="localhost"), f"Bearer {obtain_token(client, application, secret)}")


def _management_app(*permissions, name="CI", **fields):
    application, secret = flows.create_application(
        name=name, grant_types=["client_credentials"], scopes=MANAGE_SCOPE, actor=SYSTEM,
        service_account_permissions=list(permissions), **fields,
    )
    application.raw_secret = secret
    return application


@pytest.fixture
def attacker(db):
    """A staff user with only add/change/view_application, signed in to the API (CSRF on)."""
    return _api_as(_user(*APPLICATION_PERMS))


@pytest.fixture
def victim_ci(db):
    """An existing management application whose service account may manage issuers."""
    return _management_app("exchange.add_trustedtokenissuer", "exchange.view_trustedtokenissuer",
                           "exchange.change_trustedtokenissuer", "exchange.delete_trustedtokenissuer")


# -- finding 1: nobody obtains a management capability they do not hold ----------------------------


@pytest.mark.parametrize("body", [
    {"allowed_scopes": MANAGE_SCOPE},
    {"allowed_scopes": f"openid {MANAGE_SCOPE}", "service_account_permissions": ["exchange.add_trustedtokenissuer"]},
    {"allowed_scopes": MANAGE_SCOPE, "service_account_permissions": ["exchange.view_application"]},
], ids=["scope", "scope+issuer-permission", "scope+own-permission"])
def test_api_create_with_the_management_scope_is_403(attacker, body, caplog):
    """The attack: create a client_credentials application with console:manage, use its secret."""
    api, headers = attacker
    with caplog.at_level(logging.WARNING, logger="exchange.security"):
        response = api.post("applications", {"name": "Mine", "allowed_grant_types": ["client_credentials"], **body},
                            **headers)
    body = assert_problem(response, HTTPStatus.FORBIDDEN)
    assert "grant_management_scope" in body["detail"]
    assert "client_secret" not in body
    assert not Application.objects.exists()
    assert "management grant refused" in caplog.text


@pytest.mark.parametrize("scopes", [
    f"\t{MANAGE_SCOPE}\n", f"openid  {MANAGE_SCOPE}", f"{MANAGE_SCOPE} {MANAGE_SCOPE}", f"profile\r\n{MANAGE_SCOPE}",
])
def test_every_spelling_of_the_management_scope_is_a_grant(attacker, scopes):
    """Whitespace variants name the scope for the token endpoint too (both split on whitespace)."""
    api, headers = attacker
    response = api.post("applications", {"name": "Mine", "allowed_scopes": scopes}, **headers)
    assert_problem(response, HTTPStatus.FORBIDDEN)
    assert not Application.objects.exists()


@pytest.mark.parametrize("scopes", ["CONSOLE:MANAGE", f"{MANAGE_SCOPE}2", f"x{MANAGE_SCOPE}"])
def test_lookalike_scopes_are_not_the_management_scope(attacker, client, scopes):
    """Allowed to anyone, because the token endpoint never issues console:manage for them: a lookalike
    must be registered first (one differing only in case never is), and a token carrying it manages nothing."""
    api, headers = attacker
    request = {"name": "Mine", "allowed_grant_types": ["client_credentials"], "allowed_scopes": scopes}
    assert_problem(api.post("applications", request, **headers), HTTPStatus.BAD_REQUEST, "allowed_scopes",
                   "register it in the scope registry first")
    if scopes.lower() == MANAGE_SCOPE:
        with pytest.raises(ValidationError, match="differing only in case"):
            flows.create_scope(name=scopes)
        assert not Application.objects.filter(name="Mine").exists()
        return
    flows.create_scope(name=scopes)
    body = api.post("applications", request, **headers).json()
    assert body["service_account_permissions"] == []
    application = Application.objects.get(pk=body["id"])
    credentials = basic_auth(application.client_id, body["client_secret"])
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": MANAGE_SCOPE},
                         HTTP_AUTHORIZATION=credentials)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": scopes},
                         HTTP_AUTHORIZATION=credentials)
    assert response.status_code == HTTPStatus.OK, response.content
    lookalike = APIClient(Client(HTTP_HOST="localhost"), f"Bearer {response.json()['access_token']}")
    assert_problem(lookalike.get("applications"), HTTPStatus.FORBIDDEN)
    assert not AccessToken.objects.filter(scope__contains=MANAGE_SCOPE).exclude(scope=scopes).exists()


def test_api_patch_adding_the_management_scope_is_403(attacker, make_application):
    api, headers = attacker
    mine = make_application(name="Mine", grant_types=["client_credentials"])
    response = api.patch(f"applications/{mine.pk}", {"allowed_scopes": MANAGE_SCOPE}, **headers)
    assert_problem(response, HTTPStatus.FORBIDDEN)
    mine.refresh_from_db()
    assert mine.allowed_scopes == "" and mine.service_user is None


def test_api_patch_of_service_account_permissions_is_403(attacker, victim_ci):
    api, headers = attacker
    response = api.patch(f"applications/{victim_ci.pk}",
                         {"service_account_permissions": ["exchange.view_application"]}, **headers)
    assert_problem(response, HTTPStatus.FORBIDDEN)
    assert "exchange.view_application" not in service_accounts.permission_names(victim_ci.service_user)


def test_regenerating_a_management_secret_is_403(attacker, victim_ci, client):
    """The attack: take over an existing CI credential by giving it a secret you learn."""
    api, headers = attacker
    assert_problem(api.post(f"applications/{victim_ci.pk}/regenerate-secret", **headers), HTTPStatus.FORBIDDEN)
    obtain_token(client, victim_ci, victim_ci.raw_secret)  # the old secret still works: nothing changed


def test_unchanged_management_application_can_still_be_renamed(attacker, victim_ci):
    """Only grants need the grant permission; ordinary changes keep working."""
    api, headers = attacker
    response = api.patch(f"applications/{victim_ci.pk}", {"name": "CI renamed", "allowed_scopes": MANAGE_SCOPE},
                         **headers)
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["service_account_permissions"] == service_accounts.permission_names(victim_ci.service_user)


def test_console_general_tab_adding_the_management_scope_is_403(make_application):
    client = Client(HTTP_HOST="localhost")
    client.force_login(_user(*APPLICATION_PERMS))
    mine = make_application(name="Mine", grant_types=["client_credentials"])
    response = client.post(f"/console/exchange/application/{mine.pk}/change/?tab=general",
                           {"name": "Mine", "allowed_scopes": MANAGE_SCOPE})
    assert response.status_code == HTTPStatus.FORBIDDEN
    mine.refresh_from_db()
    assert mine.allowed_scopes == ""


def test_console_regenerating_a_management_secret_is_403(victim_ci):
    client = Client(HTTP_HOST="localhost")
    client.force_login(_user(*APPLICATION_PERMS))
    response = client.post(f"/console/exchange/application/{victim_ci.pk}/secret/")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not any(key.startswith("console:new_secret") for key in client.session.keys())


def test_console_grant_by_a_granter_is_logged(make_application):
    granter = _user("change_application", "view_application", "grant_management_scope", "view_trustedtokenissuer")
    client = Client(HTTP_HOST="localhost")
    client.force_login(granter)
    mine = make_application(name="Reader", grant_types=["client_credentials"])
    response = client.post(f"/console/exchange/application/{mine.pk}/change/?tab=general", {
        "name": "Reader", "allowed_scopes": MANAGE_SCOPE,
        "service_account_permissions": ["exchange.view_trustedtokenissuer"],
    })
    assert response.status_code == HTTPStatus.FOUND, response.content
    mine.refresh_from_db()
    assert service_accounts.permission_names(mine.service_user) == ["exchange.view_trustedtokenissuer"]
    # History: the tab's own "Changed …" entry, and the grant with what it gave.
    grant = LogEntry.objects.get(object_id=str(mine.pk), user=granter, change_message__startswith="Granted")
    assert "exchange.view_trustedtokenissuer" in grant.change_message
    # ... and giving a permission the granter lacks is refused.
    response = client.post(f"/console/exchange/application/{mine.pk}/change/?tab=general", {
        "name": "Reader", "allowed_scopes": MANAGE_SCOPE,
        "service_account_permissions": ["exchange.add_trustedtokenissuer"],
    })
    assert response.status_code == HTTPStatus.FORBIDDEN


def test_granter_gives_only_what_they_hold(client, db, caplog):
    granter = _user("add_application", "view_application", "grant_management_scope", "view_trustedtokenissuer")
    api, headers = _api_as(granter)
    refused = api.post("applications", {
        "name": "Too much", "allowed_grant_types": ["client_credentials"], "allowed_scopes": MANAGE_SCOPE,
        "service_account_permissions": ["exchange.view_trustedtokenissuer", "exchange.add_trustedtokenissuer"],
    }, **headers)
    assert "permissions that you hold" in assert_problem(refused, HTTPStatus.FORBIDDEN)["detail"]
    with caplog.at_level(logging.INFO, logger="exchange.security"):
        created = api.post("applications", {
            "name": "Reader", "allowed_grant_types": ["client_credentials"], "allowed_scopes": MANAGE_SCOPE,
            "service_account_permissions": ["exchange.view_trustedtokenissuer"],
        }, **headers)
    assert created.status_code == HTTPStatus.CREATED, created.content
    body = created.json()
    assert body["service_account_permissions"] == ["exchange.view_trustedtokenissuer"]
    application = Application.objects.get(pk=body["id"])
    assert LogEntry.objects.filter(object_id=str(application.pk), user=granter).exists()
    assert f"Granted the {MANAGE_SCOPE} scope" in caplog.text
    # Its token does exactly what the service account may: read issuers, nothing else.
    reader = _bearer(client, application, body["client_secret"])
    assert reader.get("trusted-token-issuers").status_code == HTTPStatus.OK
    assert_problem(reader.post("trusted-token-issuers", NEW_ISSUER), HTTPStatus.FORBIDDEN)
    assert_problem(reader.get("applications"), HTTPStatus.FORBIDDEN)


def test_the_whole_escalation_chain_is_refused(attacker, client, pem_issuer):
    """Finding 1 end to end: create an app (allowed), try to give it console:manage (API, then console),
    take its secret, ask for a management token, call the issuer endpoints with whatever token it gets."""
    api, headers = attacker
    created = api.post("applications", {"name": "Mine", "allowed_grant_types": ["client_credentials"]}, **headers)
    assert created.status_code == HTTPStatus.CREATED
    mine = Application.objects.get(pk=created.json()["id"])
    secret = created.json()["client_secret"]
    assert_problem(api.patch(f"applications/{mine.pk}", {"allowed_scopes": MANAGE_SCOPE}, **headers),
                   HTTPStatus.FORBIDDEN)
    with_permission = api.patch(f"applications/{mine.pk}", {
        "allowed_scopes": MANAGE_SCOPE, "service_account_permissions": ["exchange.add_trustedtokenissuer"],
    }, **headers)
    assert_problem(with_permission, HTTPStatus.FORBIDDEN)
    console = Client(HTTP_HOST="localhost")
    console.force_login(get_user_model().objects.get(is_staff=True))
    response = console.post(f"/console/exchange/application/{mine.pk}/change/?tab=general",
                            {"name": "Mine", "allowed_scopes": MANAGE_SCOPE})
    assert response.status_code == HTTPStatus.FORBIDDEN
    refused = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": MANAGE_SCOPE},
                        HTTP_AUTHORIZATION=basic_auth(mine.client_id, secret))
    assert_oauth_error(refused, HTTPStatus.BAD_REQUEST, "invalid_scope")
    plain = post_form(client, "/oauth2/token", {"grant_type": "client_credentials"},
                      HTTP_AUTHORIZATION=basic_auth(mine.client_id, secret)).json()["access_token"]
    bearer = APIClient(Client(HTTP_HOST="localhost"), f"Bearer {plain}")
    assert_problem(bearer.post("trusted-token-issuers", NEW_ISSUER), HTTPStatus.FORBIDDEN)
    assert_problem(bearer.delete(f"trusted-token-issuers/{pem_issuer.pk}"), HTTPStatus.FORBIDDEN)
    # ... and the attacker's own session is refused the issuer operations, as before.
    assert_problem(api.post("trusted-token-issuers", NEW_ISSUER, **headers), HTTPStatus.FORBIDDEN)
    assert TrustedTokenIssuer.objects.count() == 1


@pytest.mark.parametrize("body", [
    {"service_account_permissions": ["exchange.nonexistent"]},
    {"service_account_permissions": ["auth.add_user"]},
    {"service_account_permissions": "exchange.view_application"},
])
def test_unknown_or_foreign_permissions_are_400(db, body):
    api, headers = _api_as(_user(superuser=True))
    response = api.post("applications", {"name": "X", "allowed_scopes": MANAGE_SCOPE, **body}, **headers)
    assert_problem(response, HTTPStatus.BAD_REQUEST, "service_account_permissions")
    assert not Application.objects.exists()


@pytest.mark.parametrize("method, path, body", [
    ("post", "trusted-token-issuers", NEW_ISSUER),
    ("patch", "trusted-token-issuers/{i}", {"enabled": False}),
    ("delete", "trusted-token-issuers/{i}", None),
    ("post", "applications", {"name": "CI 2", "allowed_grant_types": ["client_credentials"],
                              "allowed_scopes": MANAGE_SCOPE}),
    ("post", "applications/{self}/regenerate-secret", None),
])
def test_bearer_token_may_do_only_what_its_service_account_may(client, pem_issuer, method, path, body):
    """The bearer path of the attack: a management token whose service account has application
    permissions only cannot touch issuers, nor mint itself more authority."""
    application = _management_app(*(f"exchange.{p}" for p in APPLICATION_PERMS))
    api = _bearer(client, application, application.raw_secret)
    path = path.format(i=pem_issuer.pk, self=application.pk)
    response = getattr(api, method)(path, body) if body is not None else getattr(api, method)(path)
    assert_problem(response, HTTPStatus.FORBIDDEN)
    pem_issuer.refresh_from_db()
    assert pem_issuer.enabled
    assert TrustedTokenIssuer.objects.count() == 1 and Application.objects.count() == 1


def test_service_user_cannot_sign_in(client, victim_ci):
    user = victim_ci.service_user
    assert not user.is_staff and not user.is_superuser and not user.has_usable_password()
    assert user.username == f"service-account-{victim_ci.client_id}"
    assert not client.login(username=user.username, password="")


def test_authority_is_checked_at_every_request(client, victim_ci):
    """Even without revocation (a permission removed elsewhere), the token can do no more than its account."""
    api = _bearer(client, victim_ci, victim_ci.raw_secret)
    assert api.get("trusted-token-issuers").status_code == HTTPStatus.OK
    victim_ci.service_user.user_permissions.clear()
    assert_problem(api.get("trusted-token-issuers"), HTTPStatus.FORBIDDEN)


def test_a_deleted_applications_service_account_keeps_its_history_without_rights(db, victim_ci):
    user = victim_ci.service_user
    flows.delete_application(victim_ci, actor=SYSTEM)
    user.refresh_from_db()
    assert not user.is_active and not user.user_permissions.exists()


# -- finding 2: management tokens die with their authority; lifetimes are bounded -------------------


def _revoke_by_superuser(action, application):
    api, headers = _api_as(_user(superuser=True))
    path = f"applications/{application.pk}"
    response = {
        "regenerate": lambda: api.post(f"{path}/regenerate-secret", **headers),
        "remove scope": lambda: api.patch(path, {"allowed_scopes": ""}, **headers),
        "remove grant": lambda: api.put(f"{path}/protocol", {"allowed_grant_types": []}, **headers),
        "disable": lambda: api.patch(path, {"enabled": False}, **headers),
        "delete": lambda: api.delete(path, **headers),
    }[action]()
    assert response.status_code < 300, response.content


@pytest.mark.parametrize("action", ["regenerate", "remove scope", "remove grant", "disable", "delete"])
def test_management_token_dies_with_its_authority(client, victim_ci, action):
    """The attack: a long-lived management token obtained before the remediation keeps working."""
    token = obtain_token(client, victim_ci, victim_ci.raw_secret)
    api = APIClient(Client(HTTP_HOST="localhost"), f"Bearer {token}")
    assert api.get("trusted-token-issuers").status_code == HTTPStatus.OK
    _revoke_by_superuser(action, victim_ci)
    assert_problem(api.get("trusted-token-issuers"), HTTPStatus.UNAUTHORIZED)
    assert_problem(api.post("applications", {"name": "Back door", "allowed_scopes": MANAGE_SCOPE}),
                   HTTPStatus.UNAUTHORIZED)
    assert not AccessToken.objects.filter(application_id=victim_ci.pk).exists()
    assert not RefreshToken.objects.filter(application_id=victim_ci.pk, revoked__isnull=True).exists()


@pytest.mark.parametrize("action", ["regenerate", "disable"])
def test_every_token_of_the_application_dies_with_its_secret_or_when_disabled(client, exchange, make_application,
                                                                              pem_issuer, rsa_key, action):
    """Access and refresh tokens obtained with the old credential stop working at once."""
    app = make_application(name="With refresh", grant_types=["token_exchange", "refresh_token"])
    issued = exchange(mint(rsa_key, pem_issuer.issuer), app=app).json()
    if action == "regenerate":
        app.raw_secret = flows.regenerate_secret(app, actor=SYSTEM)
    else:
        flows.update_application(app, actor=SYSTEM, enabled=False)
        flows.update_application(app, actor=SYSTEM, enabled=True)  # re-enabling brings nothing back
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, app.raw_secret)}
    assert post_form(client, "/oauth2/introspect", {"token": issued["access_token"]}, **auth).json() == {"active": False}
    refreshed = post_form(client, "/oauth2/token", {"grant_type": "refresh_token",
                                                    "refresh_token": issued["refresh_token"]}, **auth)
    assert_oauth_error(refreshed, HTTPStatus.BAD_REQUEST, "invalid_grant")
    assert RefreshToken.objects.get(application=app).revoked is not None


def test_console_delete_deactivates_the_service_account(victim_ci):
    """The console deletes through the flow (its own confirmation page; lists have no bulk delete since the
    console rework): the application goes and its service account keeps no permission."""
    client = Client(HTTP_HOST="localhost")
    client.force_login(_user(superuser=True))
    bulk = client.post("/console/exchange/application/", {
        "action": "delete_selected", "_selected_action": [victim_ci.pk], "post": "yes",
    })
    assert bulk.status_code == HTTPStatus.OK and Application.objects.filter(pk=victim_ci.pk).exists()
    response = client.post(f"/console/exchange/application/{victim_ci.pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not Application.objects.exists()
    user = get_user_model().objects.get(username=f"service-account-{victim_ci.client_id}")
    assert not user.is_active and not user.user_permissions.exists()


def test_disabled_application_cannot_authenticate(client, victim_ci, application, subject_token):
    flows.update_application(victim_ci, actor=SYSTEM, enabled=False)
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": MANAGE_SCOPE},
                         HTTP_AUTHORIZATION=basic_auth(victim_ci.client_id, victim_ci.raw_secret))
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")
    flows.update_application(application, actor=SYSTEM, enabled=False)
    response = post_form(client, "/oauth2/token", exchange_body(subject_token),
                         HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")


def test_removing_the_scope_from_a_token_exchange_app_keeps_its_exchanged_tokens(client, exchange, subject_token,
                                                                                application):
    """Only the management tokens go when the management scope goes."""
    exchanged = exchange(subject_token).json()["access_token"]
    flows.update_application(application, actor=SYSTEM, allowed_scopes=MANAGE_SCOPE)
    flows.update_application(application, actor=SYSTEM, allowed_scopes="")
    auth = {"HTTP_AUTHORIZATION": basic_auth(application.client_id, application.raw_secret)}
    assert post_form(client, "/oauth2/introspect", {"token": exchanged}, **auth).json()["active"] is True


def test_management_tokens_have_their_own_short_lifetime(client, db, settings):
    application = _management_app("exchange.view_application", access_token_lifetime=86400)
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": MANAGE_SCOPE},
                         HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))
    assert response.json()["expires_in"] == 3600
    settings.TOKEN_EXCHANGE = {"MANAGEMENT_TOKEN_LIFETIME_SECONDS": 60}
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": MANAGE_SCOPE},
                         HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))
    assert response.json()["expires_in"] == 60
    token = AccessToken.objects.order_by("-pk").first()
    assert token.expires <= timezone.now() + datetime.timedelta(seconds=61)


#: What an unbounded column held: 10^12 s on SQLite (the finding's 500s); PostgreSQL's integer stops at 2^31 - 1.
LEGACY_LIFETIME = 10**12 if connection.vendor == "sqlite" else 2**31 - 1
HOSTILE_LIFETIMES = [0, -1, 86401, 100_000_000, 10**12, 10**30, "3600", 3600.0, True]


@pytest.mark.parametrize("lifetime", HOSTILE_LIFETIMES, ids=repr)
def test_api_refuses_lifetimes_out_of_bounds(db, lifetime):
    api, headers = _api_as(_user(superuser=True))
    created = api.post("applications", {"name": "Long", "access_token_lifetime": lifetime}, **headers)
    assert_problem(created, HTTPStatus.BAD_REQUEST, "access_token_lifetime")
    app, _ = flows.create_application(name="Short")
    assert_problem(api.patch(f"applications/{app.pk}", {"access_token_lifetime": lifetime}, **headers),
                   HTTPStatus.BAD_REQUEST, "access_token_lifetime")
    assert_problem(api.put(f"applications/{app.pk}/protocol",
                           {"allowed_grant_types": [], "access_token_lifetime": lifetime}, **headers),
                   HTTPStatus.BAD_REQUEST, "access_token_lifetime")
    app.refresh_from_db()
    assert app.access_token_lifetime is None


def test_the_maximum_lifetime_itself_is_accepted(db, settings):
    api, headers = _api_as(_user(superuser=True))
    assert api.post("applications", {"name": "Day", "access_token_lifetime": 86400}, **headers).status_code == 201
    settings.TOKEN_EXCHANGE = {"MAX_TOKEN_LIFETIME_SECONDS": 600}
    assert_problem(api.post("applications", {"name": "Hour", "access_token_lifetime": 3600}, **headers),
                   HTTPStatus.BAD_REQUEST, "access_token_lifetime")


@pytest.mark.parametrize("lifetime", ["0", "86401", str(10**12), str(10**30)])
def test_console_protocol_form_refuses_lifetimes_out_of_bounds(application, lifetime):
    client = Client(HTTP_HOST="localhost")
    client.force_login(_user(superuser=True))
    response = client.post(f"/console/exchange/application/{application.pk}/change/?tab=protocol",
                           {"allowed_grant_types": [TOKEN_EXCHANGE], "access_token_lifetime": lifetime})
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors["access_token_lifetime"]
    application.refresh_from_db()
    assert application.access_token_lifetime is None


@pytest.mark.parametrize("lifetime", ["0", "86401", str(10**12)])
def test_command_refuses_lifetimes_out_of_bounds(db, lifetime):
    with pytest.raises(CommandError, match="lifetime"):
        call_command("create_application", "--name", "Long", "--access-token-lifetime", lifetime, stdout=io.StringIO())
    assert not Application.objects.exists()


def test_a_legacy_huge_lifetime_is_bounded_not_a_500(client, make_application):
    """The attack: 10^12 s stored before the bound (SQLite accepts it): every token request was an
    OverflowError, and rotate_signing_key crashed."""
    app = make_application(name="Legacy", grant_types=["client_credentials"])
    Application.objects.filter(pk=app.pk).update(access_token_lifetime=LEGACY_LIFETIME)
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials"},
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["expires_in"] == 86400
    signing.active_key()
    key, _ = signing.rotate_signing_key()
    assert key.kid


@pytest.mark.parametrize("overrides, problem", [
    ({"ACCESS_TOKEN_LIFETIME_SECONDS": 10**12}, "exchange.E010"),
    ({"ACCESS_TOKEN_LIFETIME_SECONDS": 0}, "exchange.E010"),
    ({"ACCESS_TOKEN_LIFETIME_SECONDS": True}, "exchange.E010"),
    ({"MAX_TOKEN_LIFETIME_SECONDS": 10**12}, "exchange.E010"),
    ({"MANAGEMENT_TOKEN_LIFETIME_SECONDS": "3600"}, "exchange.E010"),
    ({"ACCESS_TOKEN_LIFETIME_SECONDS": 7200, "MAX_TOKEN_LIFETIME_SECONDS": 3600,
      "MANAGEMENT_TOKEN_LIFETIME_SECONDS": 600}, "exchange.E011"),
    ({"MANAGEMENT_TOKEN_LIFETIME_SECONDS": 7200, "MAX_TOKEN_LIFETIME_SECONDS": 3600}, "exchange.E011"),
])
def test_settings_check_bounds_every_lifetime(settings, overrides, problem):
    settings.TOKEN_EXCHANGE = overrides
    assert problem in [p.id for p in lifetime_problems()]


def test_default_settings_pass_the_lifetime_check():
    assert lifetime_problems() == []


# -- finding 8: public clients get no secret ----------------------------------------------------------


def test_console_single_page_application_shows_no_secret(db):
    client = Client(HTTP_HOST="localhost")
    client.force_login(_user(superuser=True))
    response = client.post("/console/exchange/application/add/", {"name": "SPA", "application_type": "spa"})
    page = client.get(response["Location"])
    assert page.context["new_secret"] is None
    assert "shown only this once" not in page.content.decode()
    spa = Application.objects.get()
    assert spa.client_secret == "" and spa.client_type == Application.CLIENT_PUBLIC
    regenerated = client.post(f"/console/exchange/application/{spa.pk}/secret/", follow=True)
    assert "A public client has no secret." in regenerated.content.decode()
    spa.refresh_from_db()
    assert spa.client_secret == ""


def test_api_single_page_application_has_no_secret(db):
    api, headers = _api_as(_user(superuser=True))
    body = api.post("applications", {"name": "SPA", "application_type": "spa"}, **headers).json()
    assert body["client_secret"] is None
    assert Application.objects.get(pk=body["id"]).client_secret == ""
    assert_problem(api.post(f"applications/{body['id']}/regenerate-secret", **headers), HTTPStatus.BAD_REQUEST,
                   "client_secret")
    assert_problem(api.put(f"applications/{body['id']}/protocol", {"allowed_grant_types": ["client_credentials"]},
                           **headers), HTTPStatus.BAD_REQUEST, "allowed_grant_types")


def test_command_single_page_application_has_no_secret(db):
    out = io.StringIO()
    call_command("create_application", "--name", "SPA", "--type", "spa", "--json", stdout=out)
    assert json.loads(out.getvalue())["client_secret"] is None
    out = io.StringIO()
    call_command("create_application", "--name", "SPA 2", "--type", "spa", stdout=out)
    assert "client_secret" not in out.getvalue() and "no secret" in out.getvalue()


@pytest.mark.parametrize("credentials", [
    {"body": {"client_id": "{id}"}},
    {"basic": ""},
    {"basic": "guess"},
    {"body": {"client_id": "{id}", "client_secret": "guess"}},
], ids=["client_id only", "basic empty secret", "basic guessed secret", "body guessed secret"])
def test_public_client_cannot_use_client_credentials(client, make_application, credentials):
    """The attack: a SPA's (once shown) secret obtains client_credentials tokens once the grant is added.
    Even with the grant forced on in the database, a public client is refused as unauthorized_client."""
    spa = make_application(name="SPA", application_type="spa", grant_types=["authorization_code"])
    Application.objects.filter(pk=spa.pk).update(allowed_grant_types=[CLIENT_CREDENTIALS])
    body = {"grant_type": "client_credentials"}
    headers = {}
    if "basic" in credentials:
        headers["HTTP_AUTHORIZATION"] = basic_auth(spa.client_id, credentials["basic"])
    else:
        body.update({k: v.format(id=spa.client_id) for k, v in credentials["body"].items()})
    assert_oauth_error(post_form(client, "/oauth2/token", body, **headers), HTTPStatus.BAD_REQUEST,
                       "unauthorized_client")
    assert not AccessToken.objects.exists()


def test_a_public_clients_empty_secret_is_never_hashed(db):
    """An empty secret, hashed, would be a secret everyone knows (Basic "client_id:")."""
    spa = Application(name="SPA", application_type="spa", client_secret="")
    spa.save()
    spa.refresh_from_db()
    assert spa.client_secret == ""


# -- finding 10: introspection is told only to those the token concerns --------------------------------


def _introspect(client, application, token, secret=None):
    auth = basic_auth(application.client_id, secret if secret is not None else application.raw_secret)
    return post_form(client, "/oauth2/introspect", {"token": token}, HTTP_AUTHORIZATION=auth).json()


@pytest.fixture
def apps(make_application):
    return {
        "issued": make_application(name="Issued to", grant_types=["token_exchange", "client_credentials"]),
        "other": make_application(name="Other", grant_types=["client_credentials"]),
        "named": make_application(name="Named in aud", grant_types=["client_credentials"]),
        "resource server": make_application(name="RS", grant_types=["client_credentials"], resource_server=True),
    }


def test_introspection_is_refused_to_unrelated_clients(client, apps, pem_issuer, rsa_key):
    """The attack: any authenticated client learns who holds another client's token and what it may do."""
    issued = apps["issued"]
    flows.update_application(issued, actor=SYSTEM, allowed_audiences=[apps["named"].client_id])
    response = post_form(client, "/oauth2/token",
                         exchange_body(mint(rsa_key, pem_issuer.issuer), audience=apps["named"].client_id),
                         HTTP_AUTHORIZATION=basic_auth(issued.client_id, issued.raw_secret))
    token = response.json()["access_token"]
    assert _introspect(client, apps["other"], token) == {"active": False}
    for name in ("issued", "named", "resource server"):
        answer = _introspect(client, apps[name], token)
        assert answer["active"] is True and answer["client_id"] == issued.client_id, (name, answer)
    plain = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer, jti="second")),
                      HTTP_AUTHORIZATION=basic_auth(issued.client_id, issued.raw_secret)).json()["access_token"]
    assert _introspect(client, apps["named"], plain) == {"active": False}  # not named in this one's aud


def test_management_tokens_are_introspected_only_by_their_own_client_or_a_resource_server(client, apps, victim_ci):
    token = obtain_token(client, victim_ci, victim_ci.raw_secret)
    assert _introspect(client, apps["other"], token) == {"active": False}
    assert _introspect(client, apps["issued"], token) == {"active": False}
    assert _introspect(client, apps["resource server"], token)["scope"] == MANAGE_SCOPE
    assert _introspect(client, victim_ci, token)["active"] is True


def test_a_public_client_cannot_introspect(client, make_application, victim_ci):
    spa = make_application(name="SPA", application_type="spa", grant_types=["authorization_code"])
    token = obtain_token(client, victim_ci, victim_ci.raw_secret)
    response = post_form(client, "/oauth2/introspect", {"token": token, "client_id": spa.client_id})
    assert_oauth_error(response, HTTPStatus.UNAUTHORIZED, "invalid_client")


def test_resource_server_is_settable_in_the_api_console_and_command(db, application):
    api, headers = _api_as(_user(superuser=True))
    response = api.patch(f"applications/{application.pk}", {"resource_server": True}, **headers)
    assert response.json()["resource_server"] is True
    console = Client(HTTP_HOST="localhost")
    console.force_login(_user(superuser=True))
    console.post(f"/console/exchange/application/{application.pk}/change/?tab=general",
                 {"name": application.name, "allowed_scopes": ""})
    application.refresh_from_db()
    assert application.resource_server is False  # an unchecked box
    out = io.StringIO()
    call_command("create_application", "--name", "RS", "--resource-server", "--json", stdout=out)
    assert Application.objects.get(pk=json.loads(out.getvalue())["id"]).resource_server is True


def test_api_lists_the_new_fields(db, victim_ci):
    api, headers = _api_as(_user(superuser=True))
    body = api.get(f"applications/{victim_ci.pk}").json()
    assert body["enabled"] is True and body["resource_server"] is False
    assert "exchange.add_trustedtokenissuer" in body["service_account_permissions"]


# -- the migration brings existing rows under the rules ------------------------------------------------


def test_migration_bounds_lifetimes_clears_public_secrets_and_keeps_management_apps_working(client, db):
    migration = importlib.import_module("exchange.migrations.0009_service_accounts_and_token_bounds")
    legacy_ci, secret = flows.create_application(name="Old CI", grant_types=["client_credentials"])
    spa, _ = flows.create_application(name="Old SPA", application_type="spa")
    # As rows were before: the scope alone meant every right, a SPA held a (hashed) secret, no bound.
    Application.objects.filter(pk=legacy_ci.pk).update(allowed_scopes=MANAGE_SCOPE, access_token_lifetime=LEGACY_LIFETIME)
    Application.objects.filter(pk=spa.pk).update(client_secret="hmac_sha256$x$y", hash_client_secret=True)
    migration.bound_and_secure_applications(django_apps, None)
    legacy_ci.refresh_from_db()
    spa.refresh_from_db()
    assert legacy_ci.access_token_lifetime == 86400
    assert spa.client_secret == ""
    user = legacy_ci.service_user
    assert not user.has_usable_password() and not user.is_staff
    # The migration's own (frozen) defaults: the scope registry's permissions came later (migration 0013).
    assert set(service_accounts.permission_names(user)) == {f"exchange.{name}" for name in migration.DEFAULT_PERMISSIONS}
    api = _bearer(client, legacy_ci, secret)
    assert api.get("trusted-token-issuers").status_code == HTTPStatus.OK
