"""Delegation (RFC 8693 §1.1, §2.1, §4.1, §4.4): actor tokens, the act chain, may_act (issue 17).

The actor token is checked by the subject token's own routine (role ``actor``); every refusal has a
stable cause code on the exchange event and a fixed sentence for the client. Hostile cases first
among equals: an untrusted or unchosen actor issuer, an actor that may_act does not name, deep and
oversized act chains, forged and expired actor tokens, parameters without their partner.
"""

import time
from http import HTTPStatus

import pytest

from exchange import flows
from exchange.models import AccessToken, ExchangeEvent, RefreshToken
from exchange.protocol import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TYPE

from ..factories import mint, private_key
from ..utils import assert_oauth_error, basic_auth, introspected, post_form, verify_issued

ACTOR_ISS = "https://actor.issuer.test"  # conftest's actor_issuer
SUBJECT_ISS = "https://pem.issuer.test"  # conftest's pem_issuer
_MINT = object()  # the delegate fixture mints a valid actor token



@pytest.fixture
def delegating(make_application, actor_issuer):
    return make_application(name="Delegating", grant_types=["token_exchange", "refresh_token"],
                            scopes="openid profile", allow_delegation=True, actor_issuers=[actor_issuer])


@pytest.fixture
def delegate(client, delegating, pem_issuer, rsa_key, actor_key):
    """POST a delegation: subject claims and actor claims as keyword dicts; extra form parameters as kwargs."""

    def do(subject=None, actor=None, app=None, actor_token=_MINT, **params):
        app = app or delegating
        body = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": mint(rsa_key, pem_issuer.issuer, **(subject or {})),
            "subject_token_type": JWT_TYPE,
            "actor_token": (mint(actor_key, ACTOR_ISS, **{"sub": "orders-service", **(actor or {})})
                            if actor_token is _MINT else actor_token),
            "actor_token_type": JWT_TYPE,
            **params,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return post_form(client, "/oauth2/token", body, HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))

    return do


def _refused(response, cause, description, error="invalid_request"):
    body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, error)
    assert body["error_description"] == description
    event = ExchangeEvent.objects.latest("pk")
    assert (event.outcome, event.cause) == ("rejected", cause)
    assert AccessToken.objects.count() == ExchangeEvent.objects.filter(outcome="issued").count()  # none for this one
    return event


# -- what a delegated token says ------------------------------------------------------------

def test_the_issued_token_names_the_actor(client, delegate, delegating, actor_issuer, pem_issuer):
    response = delegate(scope="openid")
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    _, claims = verify_issued(client, body["access_token"])
    assert claims["sub"] == "alice"
    assert claims["sub_id"] == {"format": "iss_sub", "iss": SUBJECT_ISS, "sub": "alice"}
    assert claims["act"] == {"sub": "orders-service", "iss": ACTOR_ISS}
    assert claims["scope"] == "openid"
    # Audited: the actor beside the subject.
    event = ExchangeEvent.objects.get()
    assert (event.outcome, event.subject, event.trusted_issuer, event.actor_subject, event.actor_trusted_issuer,
            event.actor_issuer) == ("issued", "alice", pem_issuer, "orders-service", actor_issuer, ACTOR_ISS)
    assert event.actor_jti
    row = AccessToken.objects.get()
    assert (row.act, row.actor_trusted_issuer, row.actor_subject) == (claims["act"], actor_issuer, "orders-service")
    # Introspection says what the token says.
    assert introspected(client, delegating, body["access_token"])["act"] == claims["act"]


def test_a_refreshed_delegated_token_keeps_its_actor(client, delegate, delegating):
    body = delegate().json()
    _, issued = verify_issued(client, body["access_token"])
    refreshed = post_form(client, "/oauth2/token",
                          {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                          HTTP_AUTHORIZATION=basic_auth(delegating.client_id, delegating.raw_secret))
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content
    _, claims = verify_issued(client, refreshed.json()["access_token"])
    assert claims["act"] == issued["act"] and claims["sub"] == "alice"
    assert RefreshToken.objects.filter(act=issued["act"], actor_subject="orders-service").count() == 2


def test_an_existing_chain_is_nested_beneath_the_actor(client, delegate):
    """RFC 8693 §4.1: the least recent actor is the most deeply nested; an act without iss is its token's issuer's."""
    earlier = {"sub": "gateway", "act": {"sub": "edge", "iss": "https://edge.example"}}
    body = delegate(subject={"act": earlier}).json()
    _, claims = verify_issued(client, body["access_token"])
    assert claims["act"] == {
        "sub": "orders-service", "iss": ACTOR_ISS,
        "act": {"sub": "gateway", "iss": SUBJECT_ISS, "act": {"sub": "edge", "iss": "https://edge.example"}},
    }


def test_other_members_of_act_are_not_carried(client, delegate):
    body = delegate(subject={"act": {"sub": "gateway", "exp": 1, "roles": ["admin"]}},
                    actor={"act": {"sub": "ignored"}}).json()
    _, claims = verify_issued(client, body["access_token"])
    assert claims["act"] == {"sub": "orders-service", "iss": ACTOR_ISS, "act": {"sub": "gateway", "iss": SUBJECT_ISS}}


def test_without_an_actor_token_nothing_changes(exchange, client, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer, act={"sub": "gateway"}, may_act={"sub": "someone"})
    _, claims = verify_issued(client, exchange(token).json()["access_token"])
    assert "act" not in claims  # only sub crosses, as before delegation existed
    assert ExchangeEvent.objects.get().actor_subject == ""


# -- RFC 8693 §2.1 parameters and the application's policy ----------------------------------

@pytest.mark.parametrize("params, cause, description", [
    ({"actor_token_type": None}, "actor_token_type_missing",
     "The actor_token_type parameter is required with an actor_token."),
    ({"actor_token": ""}, "actor_token_missing",
     "The actor_token_type parameter must not be sent without an actor_token."),
    ({"actor_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "actor_token_type_unsupported",
     "The actor_token_type is not supported."),
    ({"actor_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "actor_token_type_unsupported",
     "The actor_token_type is not supported."),
    ({"actor_token_type": JWT_TYPE.upper()}, "actor_token_type_unsupported", "The actor_token_type is not supported."),
])
def test_actor_parameters_come_in_pairs(delegate, params, cause, description):
    _refused(delegate(**params), cause, description)


def test_delegation_is_off_by_default(delegate, make_application, actor_issuer):
    app = make_application(name="Plain", actor_issuers=[actor_issuer])  # issuers chosen, but delegation off
    assert app.allow_delegation is False
    _refused(delegate(app=app), "delegation_not_allowed", "The client is not allowed to use delegation (actor_token).")


def test_the_subject_token_cannot_act_for_itself(delegate, pem_issuer, rsa_key):
    token = mint(rsa_key, pem_issuer.issuer)
    _refused(delegate(subject_token=token, actor_token=token), "actor_is_subject",
             "The actor token must not be the subject token.")


# -- the actor token, by the subject token's routine ------------------------------------------

def test_an_actor_from_an_untrusted_issuer_is_refused(delegate):
    stranger = private_key("rsa", "stranger")
    event = _refused(delegate(actor_token=mint(stranger, "https://stranger.example", sub="orders-service")),
                     "actor_unknown_issuer", "The actor token's issuer is not a trusted token issuer.")
    assert event.actor_trusted_issuer is None and event.actor_subject == ""


def test_an_actor_of_an_issuer_the_application_did_not_choose_is_refused(delegate, rsa_key, pem_issuer):
    # pem_issuer is trusted (it signs the subject tokens) but not among the application's actor issuers.
    event = _refused(delegate(actor_token=mint(rsa_key, pem_issuer.issuer, sub="svc")), "actor_issuer_not_allowed",
                     "The actor token's issuer is not accepted for delegation by this client.")
    assert event.actor_trusted_issuer == pem_issuer and event.actor_subject == ""  # unverified: not recorded


def test_an_actor_issuer_is_not_accepted_through_issuer_links(delegate, delegating, pem_issuer, rsa_key):
    """Issuer–application links say whose subject tokens an application exchanges, never whose actors it takes."""
    flows.update_trusted_token_issuer(pem_issuer, applications=[delegating])
    _refused(delegate(actor_token=mint(rsa_key, pem_issuer.issuer, sub="svc")), "actor_issuer_not_allowed",
             "The actor token's issuer is not accepted for delegation by this client.")


@pytest.mark.parametrize("actor, cause, description", [
    ({"exp": int(time.time()) - 3600}, "actor_expired", "The actor token has expired."),
    ({"aud": "https://elsewhere.example"}, "actor_audience_mismatch",
     "The actor token is not intended for this server."),
    ({"sub": ""}, "actor_invalid_claim", "A claim in the actor token has an invalid value."),
    ({"act": {"sub": 5}}, "actor_invalid_delegation_claim", "The actor token's act or may_act claim is not valid."),
])
def test_an_invalid_actor_token_is_refused_with_its_cause(delegate, actor, cause, description):
    _refused(delegate(actor=actor), cause, description)


def test_a_forged_actor_token_is_refused(delegate):
    forger = private_key("rsa", "forger")
    _refused(delegate(actor_token=mint(forger, ACTOR_ISS, sub="orders-service")), "actor_bad_signature",
             "The actor token's signature is invalid.")


def test_an_actor_token_of_a_disabled_issuer_is_refused(delegate, actor_issuer):
    flows.set_issuer_enabled(actor_issuer, False)
    _refused(delegate(), "actor_issuer_disabled", "The actor token's issuer is disabled.")


def test_an_id_token_sent_as_an_access_token_actor_is_named(delegate):
    _refused(delegate(actor={"nonce": "n"}, actor_token_type=ACCESS_TOKEN_TYPE), "actor_id_token_as_access_token",
             f"The actor token is an ID token; send it with actor_token_type {ID_TOKEN_TYPE}.")


# -- may_act (RFC 8693 §4.4) ------------------------------------------------------------------

@pytest.mark.parametrize("may_act", [
    {"sub": "orders-service", "iss": ACTOR_ISS},
])
def test_the_actor_named_by_may_act_may_act(delegate, may_act):
    assert delegate(subject={"may_act": may_act}).status_code == HTTPStatus.OK


@pytest.mark.parametrize("may_act", [
    {"sub": "billing-service", "iss": ACTOR_ISS},  # another actor
    {"sub": "orders-service", "iss": "https://other.example"},  # a namesake elsewhere
    {"sub": "orders-service"},  # no iss: a subject of the subject token's issuer, not of the actor's
    {"sub": "ORDERS-SERVICE", "iss": ACTOR_ISS},  # compared exactly
])
def test_an_actor_that_may_act_does_not_name_is_refused(delegate, may_act):
    event = _refused(delegate(subject={"may_act": may_act}), "actor_not_permitted",
                     "The actor is not the party the subject token allows to act for it (may_act).")
    assert event.actor_subject == "orders-service"  # the refused actor, verified, is on the record


@pytest.mark.parametrize("may_act", [
    ["orders-service"], "orders-service", {"iss": ACTOR_ISS}, {"sub": 7}, {"sub": "x", "iss": ""},
    {"sub": "x" * 256}, {"sub": "x", "iss": "h" * 513},
])
def test_a_malformed_may_act_refuses_the_subject_token(delegate, may_act):
    _refused(delegate(subject={"may_act": may_act}), "invalid_delegation_claim",
             "The subject token's act or may_act claim is not valid.")


# -- the act chain: bounded depth and sizes -------------------------------------------------

def _chain(depth):
    act = None
    for level in range(depth, 0, -1):
        act = {"sub": f"actor-{level}", **({"act": act} if act else {})}
    return act


def test_a_chain_of_depth_ten_is_refused(delegate, exchange, pem_issuer, rsa_key):
    description = "The delegation chain (act) is longer than this server accepts."
    _refused(delegate(subject={"act": _chain(10)}), "act_chain_too_deep", description)
    # the same rule for any subject token, delegated or not, and for a chain nested far deeper
    _refused(exchange(mint(rsa_key, pem_issuer.issuer, act=_chain(10))), "act_chain_too_deep", description)
    _refused(exchange(mint(rsa_key, pem_issuer.issuer, act=_chain(200))), "act_chain_too_deep", description)


def test_the_issued_chain_holds_at_most_five_actors(client, delegate):
    _, claims = verify_issued(client, delegate(subject={"act": _chain(4)}).json()["access_token"])
    depth, act = 0, claims["act"]
    while act:
        depth, act = depth + 1, act.get("act")
    assert depth == 5
    _refused(delegate(subject={"act": _chain(5)}), "act_chain_too_deep",
             "The delegation chain (act) is longer than this server accepts.")


@pytest.mark.parametrize("act", [
    {"sub": "x" * 256}, {"sub": "gw", "iss": "h" * 513}, {"sub": "gw", "act": {"sub": "y" * 256}},
    {"sub": "gw", "act": "edge"}, {"iss": SUBJECT_ISS}, {"sub": " gw"}, {"sub": "gw\u0000"}, [], "gateway",
    {"sub": "gw", "iss": 5},
])
def test_oversized_or_malformed_act_claims_are_refused(delegate, act):
    _refused(delegate(subject={"act": act}), "invalid_delegation_claim",
             "The subject token's act or may_act claim is not valid.")


# -- scopes: requested ∩ allowed ∩ the subject token's ---------------------------------------

def test_scopes_are_bounded_by_the_subject_tokens(delegate):
    assert delegate(subject={"scope": "openid email"}, scope="openid").json()["scope"] == "openid"
    assert delegate(subject={"scp": ["openid", "profile"]}, scope="openid profile").status_code == HTTPStatus.OK
    assert delegate(scope="openid profile").status_code == HTTPStatus.OK  # the subject token names no scopes
    _refused(delegate(subject={"scope": "openid"}, scope="openid profile"), "scope_not_in_subject_token",
             "A requested scope is not among the subject token's scopes.", error="invalid_scope")
    _refused(delegate(subject={"scope": ["openid"]}, scope="openid"), "scope_not_in_subject_token",
             "A requested scope is not among the subject token's scopes.", error="invalid_scope")
    # never more than the application allows, whatever the subject token holds
    assert_oauth_error(delegate(subject={"scope": "openid console:manage"}, scope="console:manage"),
                       HTTPStatus.BAD_REQUEST, "invalid_scope")


# -- replay and lifetimes ---------------------------------------------------------------------

def test_an_actor_tokens_jti_follows_its_issuers_replay_rule(delegate, actor_key, actor_issuer):
    actor_token = mint(actor_key, ACTOR_ISS, sub="orders-service")
    assert delegate(actor_token=actor_token).status_code == HTTPStatus.OK
    _refused_replay = delegate(actor_token=actor_token)
    body = assert_oauth_error(_refused_replay, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert body["error_description"] == "The actor token has already been used."
    assert ExchangeEvent.objects.latest("pk").cause == "actor_replayed"
    # An issuer that does not reject reused jtis lets its actor tokens act again and again.
    flows.update_trusted_token_issuer(actor_issuer, reject_replayed_jti=False)
    assert delegate(actor_token=actor_token).status_code == HTTPStatus.OK
    assert delegate(actor_token=actor_token).status_code == HTTPStatus.OK


def test_a_refused_actor_leaves_the_subject_tokens_jti_unspent(delegate, pem_issuer, rsa_key, actor_key):
    subject_token = mint(rsa_key, pem_issuer.issuer)
    used = mint(actor_key, ACTOR_ISS, sub="orders-service")
    assert delegate(actor_token=used).status_code == HTTPStatus.OK
    assert delegate(subject_token=subject_token, actor_token=used).status_code == HTTPStatus.BAD_REQUEST
    # the subject token was not consumed by the refused exchange (one transaction, rolled back)
    assert delegate(subject_token=subject_token).status_code == HTTPStatus.OK


def test_a_delegated_token_does_not_outlive_the_actor_token(client, delegate):
    now = int(time.time())
    body = delegate(subject={"exp": now + 280}, actor={"exp": now + 90}).json()
    _, claims = verify_issued(client, body["access_token"])
    assert claims["exp"] - claims["iat"] <= 90 and body["expires_in"] <= 90
    assert RefreshToken.objects.get().not_after.timestamp() == now + 90


# -- revocation by provenance reaches the actor's tokens --------------------------------------

def test_revoking_the_actors_issuer_revokes_the_delegated_tokens(client, delegate, delegating, actor_issuer):
    body = delegate().json()
    other = delegate(actor={"sub": "billing-service"}).json()
    result = flows.revoke_tokens(actor_issuer, "orders-service")
    assert (result.access_tokens, result.refresh_tokens) == (1, 1)
    assert introspected(client, delegating, body["access_token"]) == {"active": False}
    assert introspected(client, delegating, other["access_token"])["active"] is True
    result = flows.revoke_tokens(actor_issuer)
    assert (result.access_tokens, result.refresh_tokens) == (1, 1)
    assert not AccessToken.objects.exists()


def test_an_actor_token_within_its_skew_after_exp_leaves_nothing_to_issue_and_spends_only_itself(
        delegate, pem_issuer, rsa_key, actor_key):
    """Accepted by the expiry step (clock skew), refused by the bound; the subject token stays usable."""
    subject_token = mint(rsa_key, pem_issuer.issuer)
    late = mint(actor_key, ACTOR_ISS, sub="orders-service", exp=int(time.time()) - 5)
    _refused(delegate(subject_token=subject_token, actor_token=late), "actor_expired", "The actor token has expired.")
    assert delegate(subject_token=subject_token).status_code == HTTPStatus.OK
    _refused(delegate(actor_token=late), "actor_replayed", "The actor token has already been used.")
