"""manage.py scopes (the scope registry), create_trusted_token_issuer --claim-mappings, explain_token's mapped claims."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from exchange import flows
from exchange.models import Scope, TrustedTokenIssuer

from ..factories import certificate_pem, mint


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_scopes_lists_adds_and_removes(db):
    assert json.loads(run("scopes", "--json"))["scopes"] == [
        {"name": "console:manage", "description": "Manage trusted token issuers and applications through the API",
         "protected": True},
        {"name": "email", "description": "Your email address", "protected": False},
        {"name": "openid", "description": "Sign you in (OpenID Connect)", "protected": True},
        {"name": "profile", "description": "Your name and username", "protected": False},
    ]
    assert run("scopes", "--add", "orders:read", "--description", "Read orders").strip() == (
        "Scope 'orders:read' registered.")
    assert Scope.objects.get(name="orders:read").description == "Read orders"
    assert "orders:read  Read orders" in run("scopes")
    assert json.loads(run("scopes", "--remove", "orders:read", "--json")) == {"deleted": "orders:read"}
    assert not Scope.objects.filter(name="orders:read").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--add", "two words"), "name: Enter a scope name"),
    (("--remove", "openid"), "needed by the server"),
    (("--remove", "nope"), "No registered scope has this name."),
    (("--description", "x"), "--description goes with --add."),
])
def test_scopes_refusals(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("scopes", *args)


def test_an_issuer_with_claim_mappings(db, rsa_key, tmp_path):
    pem = tmp_path / "issuer.pem"
    pem.write_text(certificate_pem(rsa_key))
    mappings = [{"source": "email", "target": "email", "type": "string", "required": True}]
    out = json.loads(run("create_trusted_token_issuer", "--name", "Partner", "--issuer", "https://partner.test",
                         "--certificate", str(pem), "--claim-mappings", json.dumps(mappings), "--json"))
    assert out["claim_mappings"] == mappings
    with pytest.raises(CommandError, match="set by this server"):
        run("create_trusted_token_issuer", "--name", "Partner", "--update",
            "--claim-mappings", '[{"source": "x", "target": "Sub", "type": "string"}]')
    with pytest.raises(CommandError, match="must be a JSON list"):
        run("create_trusted_token_issuer", "--name", "Partner", "--update", "--claim-mappings", "{nope")
    run("create_trusted_token_issuer", "--name", "Partner", "--update", "--claim-mappings", "[]")
    assert TrustedTokenIssuer.objects.get(name="Partner").claim_mappings == []


def test_explain_token_shows_the_mapped_claims(pem_issuer, rsa_key):
    flows.update_trusted_token_issuer(pem_issuer, claim_mappings=[
        {"source": "groups", "target": "groups", "type": "string_list"}])
    token = mint(rsa_key, pem_issuer.issuer, groups=["buyers"])
    out = run("explain_token", "--token", token)
    assert 'Mapped claims: groups=["buyers"]' in out
    assert "PASS  Mapped claims" in out
    data = json.loads(run("explain_token", "--token", token, "--json"))
    assert data["mapped_claims"] == {"groups": ["buyers"]}
