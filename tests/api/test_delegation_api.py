"""Management API: an application's delegation settings (issue 17), and actor tokens at token-validations."""

from http import HTTPStatus

from ..factories import mint
from ..utils import basic_auth, post_form
from .helpers import assert_problem

ACTOR_ISS = "https://actor.issuer.test"
JWT = "urn:ietf:params:oauth:token-type:jwt"



def test_delegation_is_set_through_the_api_and_takes_effect(api, client, pem_issuer, rsa_key, actor_key,
                                                            actor_issuer):
    created = api.post("applications", {"name": "Orders", "allowed_grant_types": ["token_exchange"]})
    assert created.status_code == HTTPStatus.CREATED, created.content
    body = created.json()
    assert (body["allow_delegation"], body["actor_issuers"]) == (False, [])  # off by default

    def delegate():
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": mint(rsa_key, pem_issuer.issuer), "subject_token_type": JWT,
                "actor_token": mint(actor_key, ACTOR_ISS, sub="svc"), "actor_token_type": JWT}
        return post_form(client, "/oauth2/token", form,
                         HTTP_AUTHORIZATION=basic_auth(body["client_id"], body["client_secret"]))

    assert delegate().json()["error_description"] == "The client is not allowed to use delegation (actor_token)."
    changed = api.patch(f"applications/{body['id']}", {"allow_delegation": True, "actor_issuers": [ACTOR_ISS]})
    assert changed.status_code == HTTPStatus.OK, changed.content
    assert (changed.json()["allow_delegation"], changed.json()["actor_issuers"]) == (True, [ACTOR_ISS])
    assert delegate().status_code == HTTPStatus.OK
    assert api.patch(f"applications/{body['id']}", {"actor_issuers": []}).json()["actor_issuers"] == []
    assert delegate().json()["error_description"] == (
        "The actor token's issuer is not accepted for delegation by this client.")


def test_create_with_delegation(api, actor_issuer):
    response = api.post("applications", {"name": "Agent", "allowed_grant_types": ["token_exchange"],
                                         "allow_delegation": True, "actor_issuers": [ACTOR_ISS]})
    assert response.status_code == HTTPStatus.CREATED, response.content
    assert (response.json()["allow_delegation"], response.json()["actor_issuers"]) == (True, [ACTOR_ISS])


def test_unknown_actor_issuers_and_wrong_types_are_problems(api, make_application):
    made_app = make_application(name="Plain")
    assert_problem(api.patch(f"applications/{made_app.pk}", {"actor_issuers": ["https://nobody.example"]}),
                   HTTPStatus.BAD_REQUEST, "actor_issuers")
    assert_problem(api.patch(f"applications/{made_app.pk}", {"actor_issuers": ACTOR_ISS}),
                   HTTPStatus.BAD_REQUEST, "actor_issuers")
    assert_problem(api.patch(f"applications/{made_app.pk}", {"allow_delegation": "yes"}),
                   HTTPStatus.BAD_REQUEST, "allow_delegation")


def test_token_validations_explain_an_actor_token(api, actor_key, actor_issuer):
    response = api.post("token-validations", {"subject_token": mint(actor_key, ACTOR_ISS, sub="svc", exp=1),
                                              "role": "actor"})
    assert response.status_code == HTTPStatus.OK, response.content
    assert (response.json()["cause"], response.json()["description"]) == ("expired", "The actor token has expired.")
    good = api.post("token-validations", {"subject_token": mint(actor_key, ACTOR_ISS, sub="svc",
                                                                act={"sub": "gw"}), "role": "actor"}).json()
    assert good["valid"] is True
    assert {"name": "delegation", "label": "Delegation (act, may_act)", "ok": True,
            "detail": f"act: gw ({ACTOR_ISS})"} in good["steps"]
    assert_problem(api.post("token-validations", {"subject_token": "x", "role": "issuer"}),
                   HTTPStatus.BAD_REQUEST, "role")
