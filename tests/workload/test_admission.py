"""Admission conditions at the token endpoint: tokens of a shared issuer on 127.0.0.1, from several owners."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from exchange import conditions, flows, registry
from exchange.models import ExchangeEvent
from exchange.subject_token import CAUSES, explain_subject_token

from ..factories import DROP, mint
from ..utils import assert_subject_rejected
from .conftest import OWNER_CONDITION


def github_shaped(key, issuer, **claims):
    """A GitHub Actions-shaped OIDC token of the shared issuer."""
    defaults = {"repository_owner_id": "424242", "repository_owner": "acme", "repository": "acme/app",
                "ref": "refs/heads/main", "sub": "repo:acme/app:ref:refs/heads/main"}
    return mint(key, issuer, kid="ci-1", **{**defaults, **claims})


def test_a_token_that_meets_the_condition_is_exchanged(shared_issuer, shared_key, exchange):
    response = exchange(github_shaped(shared_key, shared_issuer.issuer))
    assert response.status_code == 200, response.content
    assert ExchangeEvent.objects.get().outcome == "issued"


@pytest.mark.parametrize("claims", [
    {"repository_owner_id": "999"},  # another owner of the same platform
    {"repository_owner_id": "4242420"},
    {"ref": "refs/tags/v1"},
    {"repository_owner": "acme", "repository_owner_id": "1"},  # a look-alike name does not help
])
def test_a_token_of_another_owner_is_refused_with_its_cause(shared_issuer, shared_key, exchange, claims):
    body = assert_subject_rejected(exchange(github_shaped(shared_key, shared_issuer.issuer, **claims)),
                                   "condition_not_met")
    assert OWNER_CONDITION not in body["error_description"] and "424242" not in body["error_description"]


@pytest.mark.parametrize("claims", [
    {"repository_owner_id": DROP},  # the claim the condition reads is missing
    {"repository_owner_id": 424242},  # a number where the platform sends a string
    {"ref": 7},  # startsWith on a number: an evaluation error
    {"ref": ["refs/heads/main"]},
])
def test_a_condition_that_errors_refuses_rather_than_admits(shared_issuer, shared_key, exchange, claims):
    assert_subject_rejected(exchange(github_shaped(shared_key, shared_issuer.issuer, **claims)), "condition_not_met")


def test_a_refused_token_spends_no_jti(shared_issuer, shared_key, exchange):
    """The condition runs before the replay step: fixing the condition admits the same token."""
    token = github_shaped(shared_key, shared_issuer.issuer, repository_owner_id="777")
    assert_subject_rejected(exchange(token), "condition_not_met")
    flows.update_trusted_token_issuer(shared_issuer, condition='claims.repository_owner_id == "777"')
    assert exchange(token).status_code == 200


def test_the_condition_is_compiled_once_per_change(shared_issuer, shared_key, exchange, monkeypatch):
    compiled = []
    real = conditions.compile_stored
    monkeypatch.setattr(conditions, "compile_stored", lambda e: compiled.append(e) or real(e))
    for _ in range(3):
        assert exchange(github_shaped(shared_key, shared_issuer.issuer)).status_code == 200
    assert compiled == [OWNER_CONDITION]
    flows.update_trusted_token_issuer(shared_issuer, condition='claims.repository_owner_id == "1"')
    assert_subject_rejected(exchange(github_shaped(shared_key, shared_issuer.issuer)), "condition_not_met",
                            issued_before=3)
    assert compiled[-1] == 'claims.repository_owner_id == "1"'


def test_an_issuer_without_condition_admits_as_before(jwks_issuer, ec_key, exchange):
    assert exchange(mint(ec_key, jwks_issuer.issuer, kid="k1")).status_code == 200


def test_explain_shows_the_condition_step(shared_issuer, shared_key):
    report = explain_subject_token(github_shaped(shared_key, shared_issuer.issuer, repository_owner_id="1"))
    assert report.cause == "condition_not_met" and report.description == CAUSES["condition_not_met"]
    step = next(s for s in report.steps if s.name == "condition")
    assert step.ok is False and step.detail == "the condition is false for this token's claims"
    replay = next(s for s in report.steps if s.name == "replay")
    assert replay.ok is None  # not reached
    ok = explain_subject_token(github_shaped(shared_key, shared_issuer.issuer))
    assert ok.ok and next(s for s in ok.steps if s.name == "condition").detail == "true"


def test_a_broken_stored_condition_refuses(shared_issuer, shared_key, exchange):
    """A row changed behind the models' back (e.g. raw SQL) with an expression outside the rules: fail closed."""
    type(shared_issuer).objects.filter(pk=shared_issuer.pk).update(condition="claims.groups.map(g, g).size() > 0")
    registry.registry.clear()
    assert_subject_rejected(exchange(github_shaped(shared_key, shared_issuer.issuer)), "condition_not_met")


def test_the_api_and_the_command_explain_the_condition(shared_issuer, shared_key, workload_api):
    token = github_shaped(shared_key, shared_issuer.issuer, repository_owner_id=DROP)
    body = workload_api.post("token-validations", {"subject_token": token}).json()
    assert (body["valid"], body["cause"]) == (False, "condition_not_met")
    step = next(s for s in body["steps"] if s["name"] == "condition")
    assert step == {"name": "condition", "label": "Admission condition", "ok": False,
                    "detail": "the condition reads a claim the token does not have"}
    out = StringIO()
    with pytest.raises(CommandError, match="condition_not_met"):
        call_command("explain_token", "--token", token, stdout=out)
    assert "Admission condition" in out.getvalue() and "does not have" in out.getvalue()


def test_a_shared_issuer_without_condition_saved_behind_the_models_back_refuses(shared_issuer, shared_key, exchange):
    """E.g. GitHub's issuer registered before conditions existed: its tokens are refused until it gets one."""
    type(shared_issuer).objects.filter(pk=shared_issuer.pk).update(condition="")
    registry.registry.clear()
    assert_subject_rejected(exchange(github_shaped(shared_key, shared_issuer.issuer)), "condition_not_met")
    report = explain_subject_token(github_shaped(shared_key, shared_issuer.issuer))
    assert "has no condition" in next(s for s in report.steps if s.name == "condition").detail
