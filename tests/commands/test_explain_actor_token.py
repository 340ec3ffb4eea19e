"""Delegation from the command line (issue 17): explain_token --actor-token, create_application --actor-issuer."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from ..factories import mint
from .test_explain_token import explain

ACTOR_ISS = "https://actor.issuer.test"


def explain_refused(*args):
    """The command's output for a refused exchange (it exits 1)."""
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("explain_token", *args, stdout=out)
    assert raised.value.returncode == 1
    return out.getvalue()



def test_a_delegation_is_explained_with_the_act_it_would_issue(pem_issuer, rsa_key, actor_key, actor_issuer,
                                                               make_application):
    app = make_application(name="Agent", allow_delegation=True, actor_issuers=[actor_issuer])
    subject = mint(rsa_key, pem_issuer.issuer, act={"sub": "gateway"})
    output = explain("--token", subject, "--actor-token", mint(actor_key, ACTOR_ISS, sub="svc"),
                     "--client-id", app.client_id)
    assert "Actor token:" in output and "PASS  Delegation                 Agent allows delegation" in output
    assert ('PASS  may_act and act chain      the issued token would carry act {"sub": "svc", "iss": '
            '"https://actor.issuer.test", "act": {"sub": "gateway", "iss": "https://pem.issuer.test"}}') in output
    assert output.strip().endswith("Accepted.")


@pytest.mark.parametrize("actor_claims, app_fields, expected", [
    ({"exp": 1}, {"allow_delegation": True}, "Rejected (actor_expired): The actor token has expired."),
    ({}, {"allow_delegation": False}, "FAIL  Delegation                 The client is not allowed to use delegation"),
    ({}, {"allow_delegation": True, "actor_issuers": []},
     "Rejected (actor_issuer_not_allowed): The actor token's issuer is not accepted for delegation by this client."),
])
def test_a_refused_actor_token_exits_non_zero(pem_issuer, rsa_key, actor_key, actor_issuer, make_application,
                                              actor_claims, app_fields, expected):
    app = make_application(name="Agent", **{"actor_issuers": [actor_issuer], **app_fields})
    output = explain_refused("--token", mint(rsa_key, pem_issuer.issuer), "--actor-token",
                             mint(actor_key, ACTOR_ISS, sub="svc", **actor_claims), "--client-id", app.client_id)
    assert expected in output


def test_an_actor_that_may_act_does_not_name_is_explained(pem_issuer, rsa_key, actor_key, actor_issuer,
                                                          make_application):
    app = make_application(name="Agent", allow_delegation=True, actor_issuers=[actor_issuer])
    subject = mint(rsa_key, pem_issuer.issuer, may_act={"sub": "someone-else", "iss": ACTOR_ISS})
    args = ["--token", subject, "--actor-token", mint(actor_key, ACTOR_ISS, sub="svc"), "--client-id", app.client_id]
    output = explain_refused(*args)
    assert "FAIL  may_act and act chain      actor_not_permitted" in output
    assert output.strip().endswith("Rejected: the delegation would be refused.")
    assert "PASS  Delegation (act, may_act)  may_act: someone-else (https://actor.issuer.test)" in output
    data = json.loads(explain_refused(*args, "--json"))
    assert data["actor"]["may_act_and_chain"]["ok"] is False


def test_json_output_carries_the_actor(pem_issuer, rsa_key, actor_key, actor_issuer, make_application):
    app = make_application(name="Agent", allow_delegation=True, actor_issuers=[actor_issuer])
    data = json.loads(explain("--json", "--token", mint(rsa_key, pem_issuer.issuer), "--actor-token",
                              mint(actor_key, ACTOR_ISS, sub="svc"), "--client-id", app.client_id))
    assert data["actor"]["valid"] is True and data["actor"]["client"]["ok"] is True
    assert data["actor"]["may_act_and_chain"]["act"] == {"sub": "svc", "iss": ACTOR_ISS}
    assert [s["name"] for s in data["actor"]["steps"]][-4:] == ["delegation", "condition", "claims", "replay"]


def test_an_actor_token_may_not_share_stdin(pem_issuer):
    with pytest.raises(CommandError, match="Only one of --token and --actor-token"):
        explain("--token", "-", "--actor-token", "-", stdin="x")


def test_create_application_allows_delegation_for_named_actor_issuers(actor_issuer):
    data = json.loads(run_command("create_application", "--json", "--name", "Agent", "--grant-type",
                                      "token_exchange", "--actor-issuer", actor_issuer.issuer))
    assert (data["allow_delegation"], data["actor_issuers"]) == (True, [actor_issuer.issuer])
    with pytest.raises(CommandError, match="No trusted token issuer has the issuer value"):
        run_command("create_application", "--name", "Other", "--actor-issuer", actor_issuer.issuer.upper())
    plain = json.loads(run_command("create_application", "--json", "--name", "Plain"))
    assert (plain["allow_delegation"], plain["actor_issuers"]) == (False, [])


def run_command(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
