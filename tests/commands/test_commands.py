"""The developers' interface: stable command names and flags, --json output, errors on stderr."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from exchange.models import Application, TrustedTokenIssuer

from ..factories import certificate_der, certificate_pem, private_key


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def run_json(*args):
    return json.loads(run(*args, "--json"))


def test_create_trusted_token_issuer_with_jwks(db):
    data = run_json("create_trusted_token_issuer", "--name", "Corp IdP", "--issuer", "https://idp.corp",
                    "--alias", "console", "--jwks-uri", "https://idp.corp/jwks")
    assert data["name"] == "Corp IdP" and data["issuer"] == "https://idp.corp" and data["key_source"] == "jwks"
    assert TrustedTokenIssuer.objects.get(pk=data["id"]).alias == "console"


def test_create_trusted_token_issuer_with_pem_and_der_files(db, tmp_path):
    pem = tmp_path / "a.pem"
    pem.write_text(certificate_pem(private_key("rsa", "cmd-a")))
    der = tmp_path / "b.cer"
    der.write_bytes(certificate_der(private_key("ec", "cmd-b")))
    data = run_json("create_trusted_token_issuer", "--name", "Files", "--issuer", "https://files",
                    "--certificate", str(pem), "--certificate", str(der))
    certs = TrustedTokenIssuer.objects.get(pk=data["id"]).certificates.all()
    assert [c.key_description for c in certs] == ["RSA 2048", "EC P-256"]
    assert all(c.pem.startswith("-----BEGIN CERTIFICATE-----") for c in certs)


@pytest.mark.parametrize("args, message", [
    (["--jwks-uri", "ftp://x/jwks"], r"http\(s\) URL"),
    (["--jwks-uri", "http://idp.example/jwks"], "https"),
    (["--certificate", "/nonexistent.pem"], "Cannot read"),
])
def test_create_trusted_token_issuer_errors(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_trusted_token_issuer", "--name", "Bad", "--issuer", "https://bad", *args)
    assert not TrustedTokenIssuer.objects.exists()


def test_create_trusted_token_issuer_with_links_and_required_type(make_application):
    app = make_application(name="Partner portal")
    data = run_json("create_trusted_token_issuer", "--name", "Partner", "--issuer", "https://partner",
                    "--jwks-uri", "https://partner/jwks", "--required-type", "at+jwt", "--application", app.client_id)
    assert data["applications"] == [app.client_id] and data["required_type"] == "at+jwt"
    issuer = TrustedTokenIssuer.objects.get(pk=data["id"])
    assert list(issuer.applications.all()) == [app] and issuer.required_type == "at+jwt"


@pytest.mark.parametrize("args, message", [
    (["--application", "no-such-client"], "No application has the client_id 'no-such-client'"),
    (["--required-type", "at +jwt"], "media type"),
])
def test_create_trusted_token_issuer_refuses_bad_links_and_types(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_trusted_token_issuer", "--name", "Bad", "--issuer", "https://bad", "--jwks-uri", "https://bad/jwks", *args)
    assert not TrustedTokenIssuer.objects.exists()


def test_duplicate_issuer_is_refused(db):
    run("create_trusted_token_issuer", "--name", "One", "--issuer", "https://same", "--jwks-uri", "https://same/jwks")
    with pytest.raises(CommandError, match="issuer"):
        run("create_trusted_token_issuer", "--name", "Two", "--issuer", "https://same", "--jwks-uri", "https://same/jwks")


def test_not_a_certificate_file(db, tmp_path):
    junk = tmp_path / "junk.crt"
    junk.write_bytes(b"\x00\x01not a certificate")
    with pytest.raises(CommandError, match="neither a PEM nor a DER"):
        run("create_trusted_token_issuer", "--name", "J", "--issuer", "https://j", "--certificate", str(junk))


def test_create_application_prints_secret_once(db):
    data = run_json("create_application", "--name", "Svc", "--grant-type", "token_exchange",
                    "--grant-type", "urn:ietf:params:oauth:grant-type:token-exchange", "--grant-type", "refresh_token")
    app = Application.objects.get(client_id=data["client_id"])
    assert data["client_secret"] and app.client_secret != data["client_secret"]
    assert app.client_secret.startswith("hmac_sha256$")
    assert app.allowed_grant_types == ["urn:ietf:params:oauth:grant-type:token-exchange", "refresh_token"]
    assert app.client_type == "confidential"


def test_spa_cannot_get_token_exchange(db):
    with pytest.raises(CommandError, match="single-page"):
        run("create_application", "--name", "Web", "--type", "spa", "--grant-type", "token_exchange")
    data = run_json("create_application", "--name", "Web", "--type", "spa", "--grant-type", "authorization_code")
    assert Application.objects.get(client_id=data["client_id"]).client_type == "public"


def test_unknown_grant_type(db):
    with pytest.raises(CommandError, match="Unknown grant type"):
        run("create_application", "--name", "X", "--grant-type", "magic")


def test_set_grant_types(db):
    data = run_json("create_application", "--name", "Svc")
    out = run_json("set_grant_types", data["client_id"], "token_exchange", "client_credentials")
    assert out["grant_types"] == ["urn:ietf:params:oauth:grant-type:token-exchange", "client_credentials"]
    with pytest.raises(CommandError, match="No application"):
        run("set_grant_types", "nope", "token_exchange")


def test_demo_token_is_accepted(db, exchange):
    data = run_json("demo_token", "--sub", "alice", "--ttl", "120")
    assert data["sub"] == "alice"
    response = exchange(data["subject_token"])
    assert response.status_code == 200, response.content


def test_demo_token_reuses_its_key(db):
    first = run("demo_token").strip()
    second = run("demo_token").strip()
    assert first != second
    assert TrustedTokenIssuer.objects.filter(name="Demo issuer").count() == 1


def test_bootstrap_creates_admin_once(db, monkeypatch):
    monkeypatch.setenv("CONSOLE_ADMIN_PASSWORD", "correct horse battery")
    out = run("bootstrap")
    assert "Created administrator 'admin'" in out and "correct horse" not in out
    assert "Created administrator" not in run("bootstrap")
    from django.contrib.auth import get_user_model
    assert get_user_model().objects.get(username="admin").check_password("correct horse battery")


def test_command_errors_go_to_stderr_with_nonzero_exit(db, tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "create_application", "--name", "X", "--grant-type", "magic", "--json"],
        capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "VAR_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Unknown grant type" in result.stderr
