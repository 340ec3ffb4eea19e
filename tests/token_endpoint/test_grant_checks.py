"""The token-exchange grant's checks one by one (exchange/grant.py): what each refuses with, exactly, and what
it leaves on the request for the next (mutation testing found these unpinned: docs/testing.md)."""

import json
from http import HTTPStatus

import pytest
from django.conf import settings
from django.http import QueryDict
from django.test import override_settings

from exchange import flows, grant, subject_token
from exchange.grant import ExchangeError, ExchangeRequest
from exchange.models import ExchangeEvent
from exchange.protocol import ACCESS_TOKEN_TYPE, JWT_TYPE, MANAGE_SCOPE
from exchange.service_accounts import SYSTEM

from ..factories import DROP, mint
from ..utils import basic_auth, exchange_body, post_form


def _request(client=None, **params):
    form = QueryDict(mutable=True)
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            form.appendlist(name, item)
    request = ExchangeRequest(form)
    request.client = client
    return request


def _refusal(check, *args):
    with pytest.raises(ExchangeError) as caught:
        check(*args)
    error = caught.value
    return error.error, error.description, error.status, error.cause


def test_a_refusal_answers_rfc6749_json_never_cached():
    response = ExchangeError("invalid_target", "Not here.").response()
    assert response.status_code == 400
    assert json.loads(response.content) == {"error": "invalid_target", "error_description": "Not here."}
    assert (response["Content-Type"], response["Cache-Control"], response["Pragma"]) == (
        "application/json", "no-store", "no-cache")
    bare = ExchangeError("invalid_client", status=401)
    assert json.loads(bare.response().content) == {"error": "invalid_client"}
    assert (bare.response().status_code, bare.cause) == (401, "invalid_client")
    assert ExchangeError("invalid_request", "x", cause="expired").cause == "expired"
    assert grant.json_response({}, headers={"WWW-Authenticate": "Basic"})["WWW-Authenticate"] == "Basic"


def test_empty_parameters_count_as_absent():
    request = _request(scope="", audience=["", "https://a.example", ""])
    assert request.param("scope") is None and request.param("missing") is None
    assert request.values("audience") == ["https://a.example"]


def test_client_policy(make_application):
    assert grant.client_may_exchange(make_application(name="Ok")) is None
    public = make_application(name="Spa", application_type="spa", grant_types=("authorization_code",))
    public.allowed_grant_types = make_application(name="Te").allowed_grant_types  # as if validation were bypassed
    refusal = grant.client_may_exchange(public)
    assert (refusal.error, refusal.description, refusal.status) == (
        "unauthorized_client", "Public clients cannot use token exchange.", 400)
    other = make_application(name="Cc", grant_types=("client_credentials",))
    refusal = grant.client_may_exchange(other)
    assert (refusal.error, refusal.description) == ("unauthorized_client", "The client is not allowed to use token exchange.")


def test_parameters_and_their_defaults(application):
    request = _request(application, subject_token="t", subject_token_type=JWT_TYPE)
    assert grant.check_parameters(request) == "t"
    assert request.requested_token_type == ACCESS_TOKEN_TYPE
    assert (request.audience, request.resources) == (None, [])
    request = _request(application, subject_token="t", subject_token_type=ACCESS_TOKEN_TYPE, requested_token_type=JWT_TYPE)
    grant.check_parameters(request)
    assert request.requested_token_type == JWT_TYPE
    refused = _request(application, subject_token="t", subject_token_type=JWT_TYPE, actor_token_type=JWT_TYPE)
    assert _refusal(grant.check_parameters, refused)[:2] == (
        "invalid_request", "The actor_token_type parameter must not be sent without an actor_token.")


def test_targets(make_application):
    app = make_application(name="Aud", allowed_audiences=["https://a.example", "https://b.example", "urn:x"])
    one = _request(app, audience="https://a.example")
    grant.check_targets(one)
    assert (one.audience, one.resources) == (["https://a.example"], [])
    two = _request(app, audience="https://a.example", resource="https://b.example")
    grant.check_targets(two)
    assert (two.audience, two.resources) == (["https://a.example", "https://b.example"], ["https://b.example"])
    assert _refusal(grant.check_targets, _request(app, resource="urn:x")) == (
        "invalid_target",
        "The resource 'urn:x' is not a valid resource indicator: it must be an absolute URI with a scheme and host.",
        400, "invalid_target")
    assert _refusal(grant.check_targets, _request(app, audience="https://c.example"))[:2] == (
        "invalid_target", "The requested audience or resource is not allowed for this client.")
    assert _refusal(grant.check_targets, _request(make_application(name="None"), audience="https://a.example"))[0] == (
        "invalid_target")


def test_scopes(make_application):
    app = make_application(name="Scoped", scopes="openid profile")
    request = _request(app, scope=" openid  ")
    grant.check_scope(request)
    assert request.scopes == ["openid"]
    blank = _request(app, scope="   ")
    grant.check_scope(blank)
    assert blank.scopes == []
    assert _refusal(grant.check_scope, _request(app, scope="openid admin")) == (
        "invalid_scope", "A requested scope is not a scope this server knows.", 400, "invalid_scope")
    # The management scope is a grant (service_accounts): the system gives it here, as an administrator would.
    manager = make_application(name="Manager", scopes=MANAGE_SCOPE, actor=SYSTEM)
    assert _refusal(grant.check_scope, _request(manager, scope=MANAGE_SCOPE))[:2] == (
        "invalid_scope", f"The {MANAGE_SCOPE} scope cannot be obtained by token exchange.")


def test_the_issued_token_response(client, pem_issuer, rsa_key, make_application):
    app = make_application(name="Refresh", grant_types=("token_exchange", "refresh_token"),
                           access_token_lifetime=120)
    response = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer, jti="j-9")),
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "refresh_token", "issued_token_type"}  # no scope
    assert (body["expires_in"], body["token_type"], body["issued_token_type"]) == (120, "Bearer", ACCESS_TOKEN_TYPE)
    assert (response["Cache-Control"], response["Pragma"]) == ("no-store", "no-cache")
    event = ExchangeEvent.objects.get()
    assert (event.outcome, event.subject, event.subject_jti, event.trusted_issuer_id) == (
        "issued", "alice", "j-9", pem_issuer.pk)


def test_a_refused_subject_token_is_recorded_with_its_issuer_and_cause(exchange, pem_issuer, rsa_key, application):
    response = exchange(mint(rsa_key, pem_issuer.issuer, aud="https://elsewhere.test"))
    assert response.json() == {"error": "invalid_request",
                               "error_description": "The subject token is not intended for this server."}
    event = ExchangeEvent.objects.get()
    assert (event.outcome, event.cause, event.trusted_issuer_id, event.application_id) == (
        "rejected", "audience_mismatch", pem_issuer.pk, application.pk)
    assert (event.subject, event.subject_jti) == ("", "")


def test_two_authentication_methods_are_refused_by_name(client, application, subject_token):
    body = exchange_body(subject_token, client_secret=application.raw_secret)
    response = post_form(client, "/oauth2/token", body,
                         HTTP_AUTHORIZATION=basic_auth(application.client_id, application.raw_secret))
    assert response.json() == {"error": "invalid_request",
                               "error_description": "The client must not use more than one authentication method."}


def test_a_jti_less_subject_token_is_exchanged_and_recorded_without_one(exchange, pem_issuer, rsa_key):
    response = exchange(mint(rsa_key, pem_issuer.issuer, jti=DROP))
    assert response.status_code == HTTPStatus.OK, response.content
    assert ExchangeEvent.objects.get().subject_jti == ""


def test_several_scopes_are_split_on_spaces(make_application):
    request = _request(make_application(name="Two scopes", scopes="openid profile"), scope="openid profile")
    grant.check_scope(request)
    assert request.scopes == ["openid", "profile"]


def test_the_declared_subject_token_type_reaches_the_type_step(exchange, pem_issuer, rsa_key):
    response = exchange(mint(rsa_key, pem_issuer.issuer, nonce="n"), subject_token_type=ACCESS_TOKEN_TYPE)
    assert response.json()["error_description"] == (
        "The subject token is an ID token; send it with subject_token_type urn:ietf:params:oauth:token-type:id_token.")
    assert ExchangeEvent.objects.get().cause == "id_token_as_access_token"


def test_several_granted_scopes_are_answered_space_separated(client, pem_issuer, rsa_key, make_application):
    app = make_application(name="Scopes", scopes="openid profile")
    response = post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer), scope="openid profile"),
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))
    assert response.json()["scope"] == "openid profile"


def _after_the_checks(monkeypatch, then):
    """Make ``then(request)`` run right after the subject-token check passed, before the token is written."""
    checked = grant.check_subject_token

    def check_then(request, token):
        checked(request, token)
        then(request)

    monkeypatch.setattr(grant, "check_subject_token", check_then)


@pytest.mark.parametrize("meanwhile, description, cause", [
    (lambda request: flows.revoke_tokens(request.issuer),
     "The tokens of the subject token's issuer were revoked while this request was processed; try again.",
     "tokens_revoked"),
    (lambda request: subject_token.consume_replay(request.report),  # the same token exchanged by another request
     "The subject token has already been used.", "replayed"),
])
def test_what_happens_between_the_checks_and_the_write_refuses_with_its_sentence(
        monkeypatch, exchange, pem_issuer, rsa_key, application, meanwhile, description, cause):
    _after_the_checks(monkeypatch, meanwhile)
    response = exchange(mint(rsa_key, pem_issuer.issuer, jti="between"))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"error": "invalid_request", "error_description": description}
    event = ExchangeEvent.objects.get()
    assert (event.outcome, event.cause, event.application_id, event.trusted_issuer_id) == (
        "rejected", cause, application.pk, pem_issuer.pk)


def fixed_refresh_token(request):
    """A refresh-token generator named in the settings (below)."""
    return "configured-refresh-token"


def test_the_configured_refresh_token_generator_is_used(exchange, pem_issuer, rsa_key, refreshing_application):
    """OAUTH2_PROVIDER["REFRESH_TOKEN_GENERATOR"] makes the refresh tokens, as it does for DOT's own grants."""
    provider = dict(settings.OAUTH2_PROVIDER, REFRESH_TOKEN_GENERATOR=f"{__name__}.fixed_refresh_token")
    with override_settings(OAUTH2_PROVIDER=provider):
        response = exchange(mint(rsa_key, pem_issuer.issuer), app=refreshing_application)
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["refresh_token"] == "configured-refresh-token"


def test_a_refusal_that_cannot_be_recorded_for_another_reason_is_still_answered(
        monkeypatch, exchange, pem_issuer, rsa_key, caplog):
    """Only a database outage turns an unrecordable refusal into a 503 (tests/ops/test_outage.py); any other
    failure to write the event is logged, and the client gets the refusal it earned, never a 500."""
    def broken(**fields):
        raise ValueError("not an outage")

    monkeypatch.setattr(grant.storage, "save_rejected", broken)
    with caplog.at_level("ERROR", logger=grant.log.name):
        response = exchange(mint(rsa_key, pem_issuer.issuer, aud="https://elsewhere.test"))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"error": "invalid_request",
                               "error_description": "The subject token is not intended for this server."}
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "Could not record the token-exchange event"]
