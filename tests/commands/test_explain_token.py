"""manage.py explain_token: each validation step with pass/fail, the endpoint's own code path."""

import io
import json
import sys

import pytest
from django.contrib.auth.hashers import make_password
from django.core.management import CommandError, call_command

from ..factories import mint, private_key


def explain(*args, stdin=None):
    out = io.StringIO()
    old = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        call_command("explain_token", *args, stdout=out)
    finally:
        sys.stdin = old
    return out.getvalue()


def test_accepted_token_explained_and_not_consumed(pem_issuer, rsa_key, exchange):
    token = mint(rsa_key, pem_issuer.issuer, sub="alice")
    output = explain("--token", token)
    assert "PASS  Signature" in output and "PASS  Replay (jti)" in output
    assert output.strip().endswith("Accepted.")
    assert exchange(token).status_code == 200  # explaining did not use up the jti


@pytest.mark.parametrize("build, cause, failed_step", [
    (lambda k, i: mint(k, i.issuer, aud="https://other.example"), "audience_mismatch", "FAIL  Audience (aud)"),
    (lambda k, i: mint(private_key("rsa", "attacker"), i.issuer), "bad_signature", "FAIL  Signature"),
    (lambda k, i: "not-a-token", "malformed", "FAIL  Token format"),
    (lambda k, i: mint(k, i.issuer, sub="\x1b[31mred"), "invalid_claim", "FAIL  Subject (sub)"),
])
def test_rejected_token_exits_non_zero(build, cause, failed_step, pem_issuer, rsa_key):
    with pytest.raises(CommandError) as failed:
        explain("--token", build(rsa_key, pem_issuer))
    assert failed.value.returncode == 1
    assert cause in str(failed.value)


def test_output_lists_every_step_and_escapes_control_characters(pem_issuer, rsa_key, capsys):
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("explain_token", "--token", mint(rsa_key, pem_issuer.issuer, sub="\x1b[31mred"), stdout=out)
    text = out.getvalue()
    assert "\x1b" not in text
    assert "FAIL  Subject (sub)" in text and "----  Replay (jti)" in text
    assert "Rejected (invalid_claim): A claim in the subject token has an invalid value." in text


def test_token_from_stdin_and_json(pem_issuer, rsa_key):
    data = json.loads(explain("--token", "-", "--json", stdin=mint(rsa_key, pem_issuer.issuer) + "\n"))
    assert data["valid"] is True and data["issuer"] == pem_issuer.name
    assert [s["ok"] for s in data["steps"]] == [True] * len(data["steps"])


def test_client_id_checked(pem_issuer, rsa_key, application, make_application):
    token = mint(rsa_key, pem_issuer.issuer)
    assert "PASS  Client" in explain("--token", token, "--client-id", application.client_id)
    other = make_application(name="No exchange", grant_types=["client_credentials"])
    for client_id in (other.client_id, "no-such-client"):
        with pytest.raises(CommandError):
            explain("--token", token, "--client-id", client_id)


def test_same_cause_as_the_endpoint(pem_issuer, rsa_key, exchange):
    from exchange.models import ExchangeEvent

    token = mint(rsa_key, pem_issuer.issuer, exp=1)
    with pytest.raises(CommandError) as failed:
        explain("--token", token)
    exchange(token)
    assert ExchangeEvent.objects.get().cause in str(failed.value)


@pytest.mark.parametrize("application_type, grant_types", [
    ("spa", ["authorization_code"]),  # a public client
    ("standard", ["client_credentials"]),  # a confidential client without the token-exchange grant
])
def test_client_refused_for_the_endpoint_s_own_reason(application_type, grant_types, pem_issuer, rsa_key,
                                                      make_application, exchange):
    """--client-id answers with the grant's client policy: the same refusal, in the same words."""
    other = make_application(name="Refused", application_type=application_type, grant_types=grant_types)
    if other.raw_secret is None:
        # A public client has no secret (security/test_management_plane.py); a row from before that
        # rule still holds one, and then meets the client policy: the case compared here.
        other.raw_secret = "secret-from-before"
        type(other).objects.filter(pk=other.pk).update(
            client_secret=make_password(other.raw_secret, hasher="hmac_sha256"), hash_client_secret=True)
    token = mint(rsa_key, pem_issuer.issuer)
    with pytest.raises(CommandError):
        explain("--token", token, "--client-id", other.client_id, "--json")
    response = exchange(mint(rsa_key, pem_issuer.issuer), app=other)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("explain_token", "--token", token, "--client-id", other.client_id, "--json", stdout=out)
    client = json.loads(out.getvalue())["client"]
    assert client["ok"] is False
    assert client["detail"] == f"Refused: {response.json()['error_description']}"
