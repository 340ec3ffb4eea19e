"""manage.py link_account, and explain_token's linking step."""

import io
import json

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command

from exchange import flows
from exchange.models import LinkedIdentity

from ..factories import mint


def run(name, *args):
    out = io.StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def test_link_account_links_and_removes_with_history(make_local_user, pem_issuer):
    user = make_local_user(username="dana")
    output = run("link_account", "--issuer", pem_issuer.name, "--subject", "ext-1", "--username", "dana", "--json")
    assert json.loads(output) == {"issuer": pem_issuer.issuer, "subject": "ext-1", "username": "dana", "linked": True}
    assert LinkedIdentity.objects.get().user == user
    with pytest.raises(CommandError, match="already linked"):
        run("link_account", "--issuer", pem_issuer.issuer, "--subject", "ext-1", "--username", "dana")
    assert "Removed the link" in run("link_account", "--issuer", pem_issuer.issuer, "--subject", "ext-1", "--remove")
    assert not LinkedIdentity.objects.exists()
    messages = list(LogEntry.objects.filter(object_id=str(user.pk)).values_list("change_message", flat=True))
    assert len(messages) == 2 and all("by the command line" in m for m in messages)


@pytest.mark.parametrize("args, message", [
    (["--issuer", "nope", "--subject", "s", "--username", "dana"], "No trusted token issuer"),
    (["--issuer", "PEM issuer", "--subject", "s", "--username", "nobody"], "No local user"),
    (["--issuer", "PEM issuer", "--subject", "s"], "Give --username"),
    (["--issuer", "PEM issuer", "--subject", "s", "--remove"], "not linked"),
    (["--issuer", "PEM issuer", "--subject", " s", "--username", "dana"], "subject"),
    (["--issuer", "PEM issuer", "--subject", "x" * 256, "--username", "dana"], "subject"),
    (["--issuer", "PEM issuer", "--subject", "s", "--username", "root"], "never linked"),
])
def test_link_account_refusals(make_local_user, pem_issuer, args, message):
    make_local_user(username="dana")
    make_local_user(username="root", is_staff=True)
    with pytest.raises(CommandError, match=message):
        run("link_account", *args)
    assert not LinkedIdentity.objects.exists()


def test_explain_token_shows_the_linking_step(make_application, make_local_user, pem_issuer, rsa_key):
    required = make_application(name="Strict", linked_accounts="require")
    plain = make_application(name="Plain")
    token = mint(rsa_key, pem_issuer.issuer, sub="ext-2")
    with pytest.raises(CommandError, match="linked account"):
        run("explain_token", "--token", token, "--client-id", required.client_id)
    flows.link_identity(pem_issuer, "ext-2", make_local_user(username="erin"))
    output = run("explain_token", "--token", token, "--client-id", required.client_id)
    assert "PASS  Linked account" in output and "linked to local user erin" in output
    assert output.strip().endswith("Accepted.")
    data = json.loads(run("explain_token", "--token", token, "--client-id", plain.client_id, "--json"))
    assert data["linked_account"] == {"ok": True, "detail": "linked accounts are not used by this application"}


def test_explain_token_says_an_implicit_link_would_be_made_and_makes_none(
        make_application, make_local_user, pem_issuer, rsa_key):
    flows.update_trusted_token_issuer(pem_issuer, link_lookup_primary="email")
    make_local_user(username="fay", email="fay@example.com")
    app = make_application(name="Strict", linked_accounts="require")
    token = mint(rsa_key, pem_issuer.issuer, sub="ext-3", email="fay@example.com", email_verified=True)
    output = run("explain_token", "--token", token, "--client-id", app.client_id)
    assert "would be linked implicitly to local user fay" in output
    assert not LinkedIdentity.objects.exists()
    missing = mint(rsa_key, pem_issuer.issuer, sub="ext-4")
    out = io.StringIO()
    with pytest.raises(CommandError, match="linked account"):
        call_command("explain_token", "--token", missing, "--client-id", app.client_id, stdout=out)
    assert "FAIL  Linked account" in out.getvalue() and "lookup_attributes_missing" in out.getvalue()
