"""Shared-issuer presets: a condition is required, and the console, the API and the command say why."""

import json
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from exchange import flows
from exchange.models import TrustedTokenIssuer

from ..api.helpers import assert_problem
from .conftest import OWNER_CONDITION

WHY = "Add a condition on the immutable owner id"


@pytest.mark.parametrize(("preset", "issuer"), [
    ("github_actions", "https://token.actions.githubusercontent.com"),
    ("gitlab_com", "https://gitlab.com"),
    ("terraform_cloud", "https://app.terraform.io"),
    ("kubernetes", "https://cluster.example/issuer"),
    ("", "https://token.actions.githubusercontent.com"),  # the shared issuer value, registered by hand
    ("", "https://gitlab.com"),
])
def test_a_shared_issuer_cannot_be_saved_without_a_condition(db, preset, issuer):
    with pytest.raises(ValidationError) as caught:
        flows.create_trusted_token_issuer(name="CI", issuer=issuer, preset=preset, jwks_uri=issuer + "/keys")
    assert WHY in caught.value.message_dict["condition"][0]
    assert not TrustedTokenIssuer.objects.exists()


def test_nor_can_its_condition_be_removed(shared_issuer):
    with pytest.raises(ValidationError) as caught:
        flows.update_trusted_token_issuer(shared_issuer, condition="")
    assert WHY in caught.value.message_dict["condition"][0]


def test_a_preset_with_a_fixed_issuer_keeps_it(db):
    with pytest.raises(ValidationError) as caught:
        flows.create_trusted_token_issuer(name="CI", issuer="https://evil.example", preset="github_actions",
                                          jwks_uri="https://evil.example/keys", condition=OWNER_CONDITION)
    assert "token.actions.githubusercontent.com" in caught.value.message_dict["issuer"][0]


def test_a_condition_beyond_the_cost_bound_is_refused_at_save_time(shared_issuer):
    with pytest.raises(ValidationError) as caught:
        flows.update_trusted_token_issuer(shared_issuer, condition="claims.a.exists(x, claims.a.exists(y, x == y))")
    assert "condition" in caught.value.message_dict
    shared_issuer.refresh_from_db()
    assert shared_issuer.condition == OWNER_CONDITION


# -- the command ----------------------------------------------------------------------------------------


def test_the_command_refuses_a_preset_without_a_condition(db, oidc_server, shared_key):
    with pytest.raises(CommandError, match=WHY):
        call_command("create_trusted_token_issuer", "--name", "K8s", "--preset", "kubernetes",
                     "--issuer", oidc_server.issuer)
    assert not TrustedTokenIssuer.objects.exists()


def test_the_command_discovers_and_takes_a_condition(db, oidc_server, shared_key):
    out = StringIO()
    call_command("create_trusted_token_issuer", "--name", "K8s", "--preset", "kubernetes", "--issuer", oidc_server.issuer,
                 "--condition", OWNER_CONDITION, "--json", stdout=out)
    created = json.loads(out.getvalue())
    assert created["jwks_uri"] == oidc_server.url and created["allowed_algorithms"] == ["RS256"]
    assert created["condition"] == OWNER_CONDITION and created["preset"] == "kubernetes"
    # --update changes the condition of the existing issuer, still under the rules.
    call_command("create_trusted_token_issuer", "--name", "K8s", "--update", "--condition",
                 'claims.sub == "system:serviceaccount:ci:deployer"', stdout=StringIO())
    assert TrustedTokenIssuer.objects.get().condition == 'claims.sub == "system:serviceaccount:ci:deployer"'
    with pytest.raises(CommandError, match="cannot be nested"):
        call_command("create_trusted_token_issuer", "--name", "K8s", "--update", "--condition",
                     "claims.a.all(x, [1].all(y, y == 1))")


def test_the_command_discover_refuses_a_mismatching_issuer(oidc_server, db):
    oidc_server.discovery["issuer"] = "https://someone.else"
    with pytest.raises(CommandError, match="names another issuer"):
        call_command("create_trusted_token_issuer", "--name", "X", "--issuer", oidc_server.issuer, "--discover")


# -- the API -------------------------------------------------------------------------------------------


def test_the_api_refuses_a_preset_without_a_condition(workload_api, oidc_server, shared_key):
    response = workload_api.post("/api/server/v1/trusted-token-issuers", {
        "name": "K8s", "issuer": oidc_server.issuer, "preset": "kubernetes", "discover": True,
    })
    assert_problem(response, 400, field="condition", contains=WHY)


def test_the_api_discovers_and_carries_the_condition(workload_api, oidc_server, shared_key):
    response = workload_api.post("/api/server/v1/trusted-token-issuers", {
        "name": "K8s", "issuer": oidc_server.issuer, "preset": "kubernetes", "discover": True,
        "condition": OWNER_CONDITION,
    })
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["jwks_uri"], body["condition"], body["preset"]) == (oidc_server.url, OWNER_CONDITION, "kubernetes")
    changed = workload_api.patch(f"/api/server/v1/trusted-token-issuers/{body['id']}",
                                 {"condition": "claims.a.map(x, x).size() > 0"})
    assert_problem(changed, 400, field="condition", contains="map() is not available")


def test_the_api_discovery_refuses_a_mismatching_issuer(workload_api, oidc_server):
    oidc_server.discovery["issuer"] = oidc_server.issuer + "/"
    response = workload_api.post("/api/server/v1/trusted-token-issuers", {
        "name": "X", "issuer": oidc_server.issuer, "discover": True,
    })
    assert_problem(response, 400, field="issuer", contains="names another issuer")


def test_the_openapi_schema_carries_the_condition(workload_api):
    schema = workload_api.get("/api/server/v1/schema?format=json")
    text = schema.content.decode()
    assert schema.status_code == 200 and '"condition"' in text and '"discover"' in text and "github_actions" in text


# -- the console ---------------------------------------------------------------------------------------

WIZARD = "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/"


def _wizard_step_one(console, issuer):
    response = console.post(WIZARD, {"name": "Shared CI", "issuer": issuer, "alias": ""})
    assert response.status_code == 302, response.content


def test_the_wizard_discovers_and_refuses_a_preset_without_a_condition(workload_admin, oidc_server, shared_key):
    _wizard_step_one(workload_admin, oidc_server.issuer)
    page = workload_admin.post(WIZARD + "certificate/", {"mode": "jwks", "jwks_uri": "", "action": "discover",
                                                         "preset": "kubernetes"})
    assert page.status_code == 200 and oidc_server.url in page.content.decode()
    refused = workload_admin.post(WIZARD + "certificate/", {"mode": "jwks", "jwks_uri": oidc_server.url,
                                                            "action": "finish", "preset": "kubernetes"})
    assert refused.status_code == 200 and WHY in refused.content.decode()
    assert not TrustedTokenIssuer.objects.exists()
    created = workload_admin.post(WIZARD + "certificate/", {
        "mode": "jwks", "jwks_uri": oidc_server.url, "action": "finish", "preset": "kubernetes",
        "guided_claim": "repository_owner_id", "guided_operator": "equals", "guided_values": "424242",
    })
    assert created.status_code == 302, created.content
    trusted = TrustedTokenIssuer.objects.get()
    assert trusted.condition == 'claims.repository_owner_id == "424242"' and trusted.preset == "kubernetes"


def test_the_wizard_shows_a_discovery_mismatch(workload_admin, oidc_server):
    oidc_server.discovery["issuer"] = "https://someone.else"
    _wizard_step_one(workload_admin, oidc_server.issuer)
    page = workload_admin.post(WIZARD + "certificate/", {"mode": "jwks", "action": "discover"})
    assert "names another issuer" in page.content.decode()


def test_the_validation_tab_writes_the_guided_condition(workload_admin, shared_issuer):
    url = f"/console/exchange/trustedtokenissuer/{shared_issuer.pk}/change/?tab=validation"
    form = {"allowed_algorithms": ["RS256"], "clock_skew": 60, "max_token_age": 3600, "reject_replayed_jti": "on",
            "required_type": "", "preset": "kubernetes"}
    refused = workload_admin.post(url, {**form, "condition": ""})
    assert refused.status_code == 200 and WHY in refused.content.decode()
    saved = workload_admin.post(url, {**form, "guided_claim": "event_name", "guided_operator": "one_of",
                                      "guided_values": "push, workflow_dispatch"})
    assert saved.status_code == 302, saved.content
    shared_issuer.refresh_from_db()
    assert shared_issuer.condition == 'claims.event_name in ["push", "workflow_dispatch"]'
