"""Delegation judged by client libraries we did not write, against a live server on 127.0.0.1 (issue 17).

authlib's ``OAuth2Session`` sends the RFC 8693 delegation request (subject and actor tokens) and
refreshes the delegated token; authlib's RFC 9068 validator (the resource server's view) accepts
the result and reads ``act``; requests-oauthlib performs the same exchange. Versions pinned in
pyproject's ``test`` extra; nothing leaves 127.0.0.1.
"""

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session as RequestsOAuthlibSession

from exchange.protocol import ACCESS_TOKEN_TYPE, JWT_TYPE, TOKEN_EXCHANGE

from ..factories import mint
from .test_interop_clients import ResourceServerValidator

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ACTOR_ISS = "https://actor.issuer.test"  # conftest's actor_issuer


@pytest.fixture
def agent(make_application, actor_issuer):
    return make_application(name="Agent", grant_types=["token_exchange", "refresh_token"], scopes="openid",
                            allow_delegation=True, actor_issuers=[actor_issuer])


@pytest.fixture
def loopback_http(monkeypatch, live_server):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def _resource_server_view(live_server, access_token, audience):
    jwks = requests.get(f"{live_server.url}/oauth2/jwks", timeout=10).json()
    validator = ResourceServerValidator(jwks, issuer=settings.CONSOLE_ISSUER, resource_server=audience)
    claims = validator.authenticate_token(access_token)
    validator.validate_token(claims, scopes=["openid"], request=None)
    return claims


def test_authlib_performs_a_delegation_and_refreshes_it(live_server, agent, pem_issuer, rsa_key, actor_key,
                                                        loopback_http):
    subject_token = mint(rsa_key, pem_issuer.issuer, sub="alice", act={"sub": "gateway"},
                         may_act={"sub": "orders-service", "iss": ACTOR_ISS}, scope="openid profile")
    with OAuth2Session(agent.client_id, agent.raw_secret, token_endpoint_auth_method="client_secret_basic") as session:
        token = session.fetch_token(
            f"{live_server.url}/oauth2/token", grant_type=TOKEN_EXCHANGE, scope="openid",
            subject_token=subject_token, subject_token_type=JWT_TYPE,
            actor_token=mint(actor_key, ACTOR_ISS, sub="orders-service"), actor_token_type=JWT_TYPE,
            requested_token_type=ACCESS_TOKEN_TYPE,
        )
        assert token["issued_token_type"] == ACCESS_TOKEN_TYPE and token["scope"] == "openid"
        claims = _resource_server_view(live_server, token["access_token"], agent.client_id)
        assert claims["sub"] == "alice"
        assert claims["act"] == {"sub": "orders-service", "iss": ACTOR_ISS,
                                 "act": {"sub": "gateway", "iss": pem_issuer.issuer}}
        refreshed = session.refresh_token(f"{live_server.url}/oauth2/token", refresh_token=token["refresh_token"])
    assert _resource_server_view(live_server, refreshed["access_token"], agent.client_id)["act"] == claims["act"]


def test_authlib_reads_a_refused_delegation_as_an_oauth_error(live_server, agent, pem_issuer, rsa_key, actor_key,
                                                             loopback_http):
    from authlib.integrations.base_client.errors import OAuthError

    with OAuth2Session(agent.client_id, agent.raw_secret) as session, pytest.raises(OAuthError) as raised:
        session.fetch_token(
            f"{live_server.url}/oauth2/token", grant_type=TOKEN_EXCHANGE,
            subject_token=mint(rsa_key, pem_issuer.issuer, may_act={"sub": "billing", "iss": ACTOR_ISS}),
            subject_token_type=JWT_TYPE, actor_token=mint(actor_key, ACTOR_ISS, sub="orders-service"),
            actor_token_type=JWT_TYPE,
        )
    assert raised.value.error == "invalid_request"
    assert raised.value.description == "The actor is not the party the subject token allows to act for it (may_act)."


def test_requests_oauthlib_performs_a_delegation(live_server, agent, pem_issuer, rsa_key, actor_key, loopback_http):
    class TokenExchangeClient(BackendApplicationClient):
        grant_type = TOKEN_EXCHANGE

    session = RequestsOAuthlibSession(client=TokenExchangeClient(client_id=agent.client_id))
    token = session.fetch_token(
        f"{live_server.url}/oauth2/token", auth=HTTPBasicAuth(agent.client_id, agent.raw_secret),
        subject_token=mint(rsa_key, pem_issuer.issuer), subject_token_type=JWT_TYPE,
        actor_token=mint(actor_key, ACTOR_ISS, sub="orders-service"), actor_token_type=JWT_TYPE,
    )
    jwks = requests.get(f"{live_server.url}/oauth2/jwks", timeout=10).json()
    validator = ResourceServerValidator(jwks, issuer=settings.CONSOLE_ISSUER, resource_server=agent.client_id)
    assert validator.authenticate_token(token["access_token"])["act"] == {"sub": "orders-service", "iss": ACTOR_ISS}
