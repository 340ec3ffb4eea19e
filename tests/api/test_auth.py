"""Management API: who may call it — bearer tokens with console:manage, console staff with model permissions."""

import datetime
from http import HTTPStatus

import pytest
from django.test import Client
from django.utils import timezone

from exchange import flows
from exchange.models import AccessToken, Application, TrustedTokenIssuer
from exchange.service_accounts import SYSTEM

from ..factories import certificate_pem, mint, private_key
from ..utils import basic_auth, exchange_body, post_form
from .helpers import APIClient, assert_problem, csrf_headers, obtain_token

# (method, path, body) for every operation; {i} is an issuer id, {a} an application id.
OPERATIONS = [
    ("get", "trusted-token-issuers", None),
    ("post", "trusted-token-issuers", {"name": "n", "issuer": "https://n.test", "jwks_uri": "https://n.test/j"}),
    ("get", "trusted-token-issuers/{i}", None),
    ("patch", "trusted-token-issuers/{i}", {"alias": "x"}),
    ("delete", "trusted-token-issuers/{i}", None),
    ("get", "trusted-token-issuers/{i}/keys", None),
    ("post", "trusted-token-issuers/{i}/keys/refresh", None),
    ("post", "trusted-token-issuers/{i}/certificates", {"certificate": "x"}),
    ("delete", "trusted-token-issuers/{i}/certificates/{f}", None),
    ("get", "applications", None),
    ("post", "applications", {"name": "n"}),
    ("get", "applications/{a}", None),
    ("patch", "applications/{a}", {"name": "x"}),
    ("delete", "applications/{a}", None),
    ("get", "applications/{a}/protocol", None),
    ("put", "applications/{a}/protocol", {"allowed_grant_types": []}),
    ("post", "applications/{a}/regenerate-secret", None),
    ("post", "token-validations", {"subject_token": "x.y.z"}),
]
OPERATION_IDS = [f"{m} {p}" for m, p, _ in OPERATIONS]


@pytest.fixture
def targets(db):
    issuer = flows.create_trusted_token_issuer(
        name="Target", issuer="https://target.test", certificates=[certificate_pem(private_key("rsa", "api-auth"))],
    )
    application, _ = flows.create_application(name="Target app")
    return {"i": issuer.pk, "a": application.pk, "f": issuer.certificates.get().fingerprint}


def call(client, operation, targets, **extra):
    method, path, body = operation
    path = path.format(**targets)
    if method in ("get", "delete"):
        return getattr(client, method)(path, **extra)
    return getattr(client, method)(path, body, **extra)


def assert_unchanged(targets):
    assert TrustedTokenIssuer.objects.filter(pk=targets["i"], alias="").exists()
    assert Application.objects.filter(pk=targets["a"], name="Target app").exists()
    assert TrustedTokenIssuer.objects.count() == 1
    assert TrustedTokenIssuer.objects.get().certificates.count() == 1


@pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATION_IDS)
def test_without_credentials_is_401(anonymous, targets, operation):
    response = call(anonymous, operation, targets)
    assert_problem(response, HTTPStatus.UNAUTHORIZED)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_unchanged(targets)


@pytest.mark.parametrize("authorization", [
    "Bearer not-a-token",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",  # JWT-shaped: once routed to ID-token checks (a 500)
    "Bearer eyJ.eyJ.sig",
    "Basic YTpi",
])
def test_invalid_bearer_tokens_are_401(targets, authorization):
    client = APIClient(Client(HTTP_HOST="localhost"), authorization)
    response = client.get("trusted-token-issuers")
    assert_problem(response, HTTPStatus.UNAUTHORIZED)


def test_expired_token_is_401(api, management_token, targets):
    AccessToken.objects.update(expires=timezone.now() - datetime.timedelta(seconds=1))
    response = api.get("trusted-token-issuers")
    body = assert_problem(response, HTTPStatus.UNAUTHORIZED)
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert (body["code"], body["detail"]) == ("invalid_token", "The access token has expired.")


def test_revoked_token_is_401(api, client, manager_app, management_token):
    revoked = post_form(client, "/oauth2/revoke", {"token": management_token},
                        HTTP_AUTHORIZATION=basic_auth(manager_app.client_id, manager_app.raw_secret))
    assert revoked.status_code == HTTPStatus.OK
    assert_problem(api.get("applications"), HTTPStatus.UNAUTHORIZED)


@pytest.fixture
def unscoped(client, db):
    """A client_credentials token without console:manage."""
    application, secret = flows.create_application(
        name="Other job", grant_types=["client_credentials"], scopes="openid",
    )
    token = obtain_token(client, application, secret, scope="openid")
    return APIClient(Client(HTTP_HOST="localhost"), f"Bearer {token}")


@pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATION_IDS)
def test_token_without_the_scope_is_403(unscoped, targets, operation):
    body = assert_problem(call(unscoped, operation, targets), HTTPStatus.FORBIDDEN)
    assert "console:manage" in body["detail"]
    assert_unchanged(targets)


def test_token_for_an_unknown_scope_is_not_issued(client, manager_app):
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": "console:admin"},
                         HTTP_AUTHORIZATION=basic_auth(manager_app.client_id, manager_app.raw_secret))
    assert response.json()["error"] == "invalid_scope"


def test_an_application_without_the_scope_cannot_get_it(client, db):
    application, secret = flows.create_application(name="Job", grant_types=["client_credentials"])
    response = post_form(client, "/oauth2/token", {"grant_type": "client_credentials", "scope": "console:manage"},
                         HTTP_AUTHORIZATION=basic_auth(application.client_id, secret))
    assert response.json()["error"] == "invalid_scope"


def test_exchanged_token_never_manages(client, pem_issuer, rsa_key, targets):
    """Even when the application may request console:manage, token exchange never grants it (invalid_scope);
    and a token issued for a third party's subject that carries it anyway (say, issued before this rule)
    does not manage the console."""
    application, secret = flows.create_application(
        name="Both", grant_types=["token_exchange"], scopes="console:manage", actor=SYSTEM,
    )
    response = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer), scope="console:manage"),
                         HTTP_AUTHORIZATION=basic_auth(application.client_id, secret))
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response.json() == {"error": "invalid_scope",
                               "error_description": "The console:manage scope cannot be obtained by token exchange."}
    assert not AccessToken.objects.filter(application=application).exists()

    legacy = AccessToken.objects.create(
        application=application, token="legacy-exchanged-token", scope="console:manage", subject="alice",
        trusted_issuer=pem_issuer, expires=timezone.now() + datetime.timedelta(hours=1),
    )
    exchanged = APIClient(Client(HTTP_HOST="localhost"), f"Bearer {legacy.token}")
    body = assert_problem(exchanged.get("trusted-token-issuers"), HTTPStatus.FORBIDDEN)
    assert "token exchange" in body["detail"]


# -- console sessions ------------------------------------------------------------------------------

VIEW = ("view_trustedtokenissuer", "view_application")
ALL = VIEW + ("add_trustedtokenissuer", "change_trustedtokenissuer", "delete_trustedtokenissuer",
              "add_application", "change_application", "delete_application")


@pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATION_IDS)
def test_staff_without_model_permissions_is_403(staff_client, targets, operation):
    client = staff_client()
    response = call(APIClient(client), operation, targets, **csrf_headers(client))
    assert_problem(response, HTTPStatus.FORBIDDEN)
    assert_unchanged(targets)


@pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATION_IDS)
def test_non_staff_with_permissions_is_403(staff_client, targets, operation):
    client = staff_client(*ALL, staff=False)
    assert_problem(call(APIClient(client), operation, targets, **csrf_headers(client)), HTTPStatus.FORBIDDEN)


@pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATION_IDS)
def test_view_permission_reads_but_does_not_write(staff_client, targets, operation):
    client = staff_client(*VIEW)
    response = call(APIClient(client), operation, targets, **csrf_headers(client))
    method, path, _ = operation
    reads = method == "get" or path == "token-validations"
    if reads:
        assert response.status_code == HTTPStatus.OK, response.content
    else:
        assert_problem(response, HTTPStatus.FORBIDDEN)
        assert_unchanged(targets)


@pytest.mark.parametrize("perm, operation, expected", [
    ("add_trustedtokenissuer", OPERATIONS[1], HTTPStatus.CREATED),
    ("change_trustedtokenissuer", OPERATIONS[3], HTTPStatus.OK),
    ("delete_trustedtokenissuer", OPERATIONS[4], HTTPStatus.NO_CONTENT),
    ("change_trustedtokenissuer", OPERATIONS[6], HTTPStatus.CONFLICT),  # a PEM issuer: allowed, nothing to fetch
    ("change_trustedtokenissuer", OPERATIONS[7], HTTPStatus.BAD_REQUEST),  # allowed; "x" is no certificate
    ("change_trustedtokenissuer", OPERATIONS[8], HTTPStatus.BAD_REQUEST),  # allowed; the last one stays
    ("add_application", OPERATIONS[10], HTTPStatus.CREATED),
    ("change_application", OPERATIONS[12], HTTPStatus.OK),
    ("delete_application", OPERATIONS[13], HTTPStatus.NO_CONTENT),
    ("change_application", OPERATIONS[15], HTTPStatus.OK),
    ("change_application", OPERATIONS[16], HTTPStatus.OK),
], ids=lambda value: value if isinstance(value, str) else None)
def test_each_write_needs_its_model_permission(staff_client, targets, perm, operation, expected):
    client = staff_client(perm)
    response = call(APIClient(client), operation, targets, **csrf_headers(client))
    assert response.status_code == expected, response.content


@pytest.mark.parametrize("operation", [op for op in OPERATIONS if op[0] != "get"],
                         ids=[i for i, op in zip(OPERATION_IDS, OPERATIONS) if op[0] != "get"])
def test_session_writes_need_the_csrf_token(staff_client, targets, operation):
    client = staff_client(superuser=True)
    body = assert_problem(call(APIClient(client), operation, targets), HTTPStatus.FORBIDDEN)
    assert "CSRF" in body["detail"]
    assert_unchanged(targets)


def test_superuser_session_manages(staff_client, targets):
    client = staff_client(superuser=True)
    api = APIClient(client)
    response = api.post("trusted-token-issuers", OPERATIONS[1][2], **csrf_headers(client))
    assert response.status_code == HTTPStatus.CREATED, response.content
    assert api.get("trusted-token-issuers").json()["count"] == 2


def test_bearer_requests_need_no_csrf_token(api, targets):
    """Bearer tokens are not ambient credentials: no CSRF token is asked of them."""
    api.client = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    assert api.post("applications", {"name": "n"}).status_code == HTTPStatus.CREATED
