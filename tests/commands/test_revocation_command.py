"""manage.py revoke_tokens (revocation by provenance) and create_application --outlive-subject-token."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from exchange.models import AccessToken, Application, RefreshToken

from ..factories import mint
from ..utils import exchanged, introspected


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("by", ["name", "issuer"])
def test_revoking_one_subject_by_name_or_issuer_value(client, alice_and_bob_tokens, pem_issuer, by):
    app, bodies = alice_and_bob_tokens
    out = run("revoke_tokens", "--issuer", getattr(pem_issuer, by), "--subject", "alice", "--json")
    assert json.loads(out) == {"issuer": pem_issuer.issuer, "subject": "alice", "access_tokens": 1,
                               "refresh_tokens": 1, "dry_run": False}
    assert introspected(client, app, bodies["alice"]["access_token"]) == {"active": False}
    assert introspected(client, app, bodies["alice"]["refresh_token"]) == {"active": False}
    assert introspected(client, app, bodies["bob"]["access_token"])["active"] is True


def test_revoking_every_subject_in_words(client, alice_and_bob_tokens, pem_issuer):
    out = run("revoke_tokens", "--issuer", pem_issuer.name)
    assert out.strip() == (f"Revoked the tokens issued from {pem_issuer.name} ({pem_issuer.issuer}): "
                           "2 access token(s), 2 refresh token(s).")
    assert not AccessToken.objects.exists()
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


def test_dry_run_counts_and_changes_nothing(client, alice_and_bob_tokens, pem_issuer):
    out = run("revoke_tokens", "--issuer", pem_issuer.issuer, "--dry-run")
    assert out.startswith("Would revoke") and "2 access token(s), 2 refresh token(s)" in out
    assert json.loads(run("revoke_tokens", "--issuer", pem_issuer.issuer, "--dry-run", "--json"))["dry_run"] is True
    assert AccessToken.objects.count() == 2 and RefreshToken.objects.filter(revoked__isnull=True).count() == 2


@pytest.mark.parametrize("args, message", [
    (["--issuer", "https://nobody.test"], "No trusted token issuer"),
    (["--issuer", "PEM issuer", "--subject", ""], "subject"),
    (["--issuer", "PEM issuer", "--subject", "x" * 256], "subject"),
    (["--issuer", "PEM issuer", "--subject", "a\x00b"], "subject"),
])
def test_refusals(pem_issuer, args, message):
    with pytest.raises(CommandError, match=message):
        run("revoke_tokens", *args)


def test_the_issuer_is_required(db):
    with pytest.raises(CommandError):
        run("revoke_tokens")


def test_create_application_is_bound_unless_told(db):
    bound = json.loads(run("create_application", "--name", "Bound", "--json"))
    assert bound["bound_to_subject_token"] is True
    free = json.loads(run("create_application", "--name", "Free", "--outlive-subject-token", "--json"))
    assert free["bound_to_subject_token"] is False
    assert Application.objects.get(name="Free").bound_to_subject_token is False
