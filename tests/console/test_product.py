"""The console as a product (issue 18), without a browser: one issuer for server and commands, the
first-run box, the dashboard's data, record pages, deletion through flows, key health, the wizard's checks."""

import datetime
import json
import os
import subprocess
import sys
from http import HTTPStatus
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from exchange import flows, key_sources
from exchange.admin import dashboard
from exchange.admin.records import explain_cause, rotation_due
from exchange.conf import LOCAL_SERVER_FILE, local_issuer, read_local_server, write_local_server
from exchange.management.commands.bootstrap import box
from exchange.models import ExchangeEvent, SigningKey, TrustedTokenIssuer
from exchange.signing import active_key

from ..factories import certificate_der, certificate_pem, private_key

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


# -- one issuer for the server and every command ---------------------------------------------

def command_issuer(var_dir, **env):
    """``manage.py console_issuer --json`` in a fresh process, as a second shell would run it."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CONSOLE_ISSUER", "DATABASE_URL")}
    environ.update(VAR_DIR=str(var_dir), **env)
    out = subprocess.run([sys.executable, "manage.py", "console_issuer", "--json"], cwd=ROOT, env=environ,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return json.loads(out)


def test_a_recorded_port_is_the_issuer_of_every_later_command(tmp_path):
    assert command_issuer(tmp_path) == {"issuer": "http://localhost:8000/oauth2/token",
                                        "server_url": "http://localhost:8000"}
    write_local_server(tmp_path, local_issuer(8101), "http://localhost:8101")
    assert command_issuer(tmp_path) == {"issuer": "http://localhost:8101/oauth2/token",
                                        "server_url": "http://localhost:8101"}
    # An exported CONSOLE_ISSUER still wins (production sets it everywhere).
    assert command_issuer(tmp_path, CONSOLE_ISSUER="https://id.example.com/oauth2/token")["issuer"] == (
        "https://id.example.com/oauth2/token")


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"issuer": 5}', '{"issuer": ""}', "\x00\xff"])
def test_a_damaged_record_is_ignored(tmp_path, content):
    (tmp_path / LOCAL_SERVER_FILE).write_text(content, errors="surrogateescape")
    assert read_local_server(tmp_path) == {}


def test_bootstrap_port_records_the_server_and_the_issuer(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("CONSOLE_ISSUER", raising=False)
    monkeypatch.delenv("CONSOLE_ADMIN_PASSWORD", raising=False)
    out = StringIO()
    call_command("bootstrap", "--port", "8101", stdout=out)
    assert read_local_server(tmp_path) == {"issuer": "http://localhost:8101/oauth2/token",
                                           "server_url": "http://localhost:8101"}
    text = out.getvalue()
    # The generated password comes last, in a box, with the way to reset it.
    assert text.rstrip().splitlines()[-1].startswith("+-")
    assert "Password:" in text.split("+-", 1)[1] and "bootstrap --reset-admin" in text
    monkeypatch.setenv("CONSOLE_ISSUER", "https://id.example.com/oauth2/token")
    call_command("bootstrap", "--port", "8102", stdout=StringIO())
    assert read_local_server(tmp_path)["issuer"] == "https://id.example.com/oauth2/token"


@pytest.mark.parametrize("args, message", [
    (["--serve"], "--serve needs --port."),
    (["--port", "0"], "--port must be between 1 and 65535."),
    (["--port", "70000"], "--port must be between 1 and 65535."),
    (["--reset-admin", "--username", "nobody"], "There is no user 'nobody'; pass --username."),
])
def test_bootstrap_refuses_bad_options(args, message):
    with pytest.raises(CommandError, match=message.replace(".", r"\.").replace("'", ".")):
        call_command("bootstrap", *args, stdout=StringIO())


def test_reset_admin_gives_a_new_password(monkeypatch):
    monkeypatch.delenv("CONSOLE_ADMIN_PASSWORD", raising=False)
    call_command("bootstrap", stdout=StringIO())
    out = StringIO()
    call_command("bootstrap", "--reset-admin", stdout=out)
    password = next(line for line in out.getvalue().splitlines() if "Password:" in line).split()[2]
    assert get_user_model().objects.get(username="admin").check_password(password)
    monkeypatch.setenv("CONSOLE_ADMIN_PASSWORD", "chosen-password-1")
    out = StringIO()
    call_command("bootstrap", "--reset-admin", stdout=out)
    assert "chosen-password-1" not in out.getvalue()
    assert get_user_model().objects.get(username="admin").check_password("chosen-password-1")


def test_box_frames_every_line():
    lines = box(["a", "longer line"]).splitlines()
    assert lines[0] == lines[-1] == "+" + "-" * 13 + "+"
    assert lines[1] == "| a           |" and len({len(line) for line in lines}) == 1


def test_favicon_has_no_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == HTTPStatus.MOVED_PERMANENTLY
    assert client.get(response["Location"]).status_code == HTTPStatus.OK


# -- the home page ------------------------------------------------------------------------------

def event(outcome, cause="", ago=datetime.timedelta(0), **fields):
    row = ExchangeEvent.objects.create(outcome=outcome, cause=cause, **fields)
    ExchangeEvent.objects.filter(pk=row.pk).update(created=timezone.now() - ago)
    return row


def test_timeline_counts_by_hour_and_by_day():
    now = timezone.now()
    event("issued", ago=datetime.timedelta(hours=5))
    event("rejected", "expired", ago=datetime.timedelta(hours=5))
    event("issued")
    event("issued", ago=datetime.timedelta(days=3))
    event("issued", ago=datetime.timedelta(days=40))  # outside both
    hourly = dashboard.timeline(now, "hour")
    assert len(hourly["bars"]) == 24
    assert [(b["issued"], b["rejected"]) for b in hourly["bars"]][18] == (1, 1)
    assert (hourly["bars"][-1]["issued"], hourly["issued"], hourly["rejected"]) == (1, 2, 1)
    daily = dashboard.timeline(now, "day")
    assert len(daily["bars"]) == 30 and daily["issued"] == 3 and daily["bars"][26]["issued"] == 1
    assert all(b["issued_h"] + b["rejected_h"] <= daily["plot_height"] for b in daily["bars"])


def test_top_causes_link_to_their_events(console_admin_client):
    for _ in range(3):
        event("rejected", "replayed")
    event("rejected", "expired")
    event("rejected", "replayed", ago=datetime.timedelta(days=2))  # older than 24 hours
    causes = dashboard.top_causes(timezone.now())
    assert [(c["cause"], c["count"]) for c in causes] == [("replayed", 3), ("expired", 1)]
    assert causes[0]["what"] == "The subject token has already been used."
    listing = console_admin_client.get(causes[0]["url"])
    assert listing.status_code == HTTPStatus.OK
    assert listing.context["cl"].result_count == 3


def test_warnings_name_expiring_certificates_failing_fetches_and_old_keys(pem_issuer, jwks_issuer, jwks_server):
    flows.add_certificate(pem_issuer, certificate_pem(private_key("rsa", "soon"), days=5, common_name="Soon"))
    jwks_server.status = 503
    with pytest.raises(key_sources.KeySourceError):
        key_sources.refresh_jwks(jwks_issuer)
    key = active_key()
    SigningKey.objects.filter(kid=key.kid).update(created=timezone.now() - datetime.timedelta(days=120))
    found = dashboard.warnings(timezone.now())
    assert {w["kind"] for w in found} == {"certificate", "jwks", "signing_key"}
    assert any("PEM issuer" in w["text"] and "expires" in w["text"] for w in found)
    assert rotation_due(SigningKey.objects.get(kid=key.kid))


def test_the_home_page_shows_the_issuer_and_both_charts(console_admin_client, settings):
    event("issued")
    html = console_admin_client.get("/console/").content.decode()
    assert f'data-testid="console-issuer">{settings.CONSOLE_ISSUER}<' in html
    assert html.count('data-unit="hour"') == 1 and html.count('data-unit="day"') == 1
    assert html.count('class="bucket"') == 54
    assert "Coming later" not in html


# -- record pages, deletion, the app index --------------------------------------------------------

@pytest.mark.parametrize("cause", ["expired", "invalid_client", "", "<script>x</script>"])
def test_event_pages_explain_and_change_nothing(console_admin_client, cause):
    row = event("rejected" if cause else "issued", cause[:40])
    url = f"/console/exchange/exchangeevent/{row.pk}/change/"
    response = console_admin_client.get(url)
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "<script>x" not in html
    assert "What to do:" in html if cause else "An access token was issued." in html
    assert console_admin_client.post(url).status_code == HTTPStatus.FORBIDDEN
    assert console_admin_client.get(f"/console/exchange/exchangeevent/{row.pk}/delete/").status_code == HTTPStatus.FORBIDDEN
    assert console_admin_client.get(f"/console/exchange/exchangeevent/{row.pk}/history/").status_code in (
        HTTPStatus.OK, HTTPStatus.FORBIDDEN)
    assert explain_cause(cause)[1] or not cause


def test_records_have_console_titles(console_admin_client):
    key = active_key()
    html = console_admin_client.get(f"/console/exchange/signingkey/{SigningKey.objects.get(kid=key.kid).pk}/change/").content
    assert f"Signing key {key.kid}".encode() in html and b"SigningKey object" not in html
    for path in ("exchangeevent", "accesstoken", "signingkey"):
        html = console_admin_client.get(f"/console/exchange/{path}/").content.decode()
        assert '<div class="breadcrumbs"><a href="/console/">Home</a> › ' in html
        assert "Token exchange" not in html.split('<div class="breadcrumbs">', 1)[1].split("</div>", 1)[0]


def test_the_app_index_is_the_home_page(console_admin_client):
    response = console_admin_client.get("/console/exchange/")
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == "/console/"


def test_deleting_an_issuer_goes_through_its_flow_and_history(console_admin_client, pem_issuer, monkeypatch):
    called = []
    monkeypatch.setattr(flows, "delete_trusted_token_issuer", lambda obj: called.append(obj) or obj.delete())
    url = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/delete/"
    page = console_admin_client.get(url).content.decode()
    assert "Are you sure" in page and "btn-danger" in page
    response = console_admin_client.post(url, follow=True)
    assert called and not TrustedTokenIssuer.objects.exists()
    assert "The trusted token issuer “PEM issuer” was deleted successfully." in [
        str(m) for m in response.context["messages"]]
    assert LogEntry.objects.get().action_flag == DELETION


# -- key health and the wizard ------------------------------------------------------------------

def test_known_keys_persist_with_first_and_last_seen(jwks_issuer, jwks_server, console_admin_client):
    key_sources.refresh_jwks(jwks_issuer)
    jwks_issuer.refresh_from_db()
    first = jwks_issuer.known_keys
    assert [(k["kid"], k["key"], k["algorithms"], k["source"]) for k in first] == [("k1", "EC P-256", ["ES256"], "jwks")]
    key_sources.refresh_jwks(jwks_issuer)
    jwks_issuer.refresh_from_db()
    assert jwks_issuer.known_keys[0]["first_seen"] == first[0]["first_seen"]
    assert jwks_issuer.known_keys[0]["last_seen"] >= first[0]["last_seen"]
    html = console_admin_client.get(f"/console/exchange/trustedtokenissuer/{jwks_issuer.pk}/change/?tab=certificates")
    assert b'data-testid="jwks-keys"' in html.content and b"k1" in html.content


INSPECT = "/console/exchange/trustedtokenissuer/certificate/inspect/"


@pytest.mark.parametrize("data, expected", [
    ({"pem": "not a certificate"}, "neither a PEM certificate nor base64 DER"),
    ({}, "Paste a PEM certificate or upload a certificate file."),
    ({"pem": "-----BEGIN CERTIFICATE-----\n" + "A" * 100000 + "\n-----END CERTIFICATE-----"}, ""),
])
def test_inspect_refuses_what_is_not_a_certificate(console_admin_client, data, expected):
    body = console_admin_client.post(INSPECT, data).json()
    assert body["ok"] is False and all(expected in e for e in body["errors"]) and body["errors"]


def test_inspect_shows_a_certificate_and_converts_an_upload(console_admin_client):
    body = console_admin_client.post(INSPECT, {"pem": certificate_pem(private_key("rsa", "i"), common_name="Inspected")}).json()
    assert body["ok"] and "CN=Inspected" in body["html"] and "SHA-256 fingerprint" in body["html"]
    upload = SimpleUploadedFile("c.der", certificate_der(private_key("ec", "i"), common_name="Uploaded"))
    body = console_admin_client.post(INSPECT, {"pem_file": upload}).json()
    assert body["ok"] and body["pem"].startswith("-----BEGIN CERTIFICATE-----") and "EC P-256" in body["html"]
    assert console_admin_client.get(INSPECT).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    signed_out = Client(HTTP_HOST="localhost").post(INSPECT, {"pem": "x"})
    assert signed_out.status_code == HTTPStatus.FOUND and "/console/login/" in signed_out["Location"]


def test_duplicate_errors_name_the_issuer_they_clash_with(console_admin_client, pem_issuer):
    wizard = "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/"
    console_admin_client.get(wizard + "?new=1")
    response = console_admin_client.post(wizard, {"name": "Fresh", "issuer": pem_issuer.issuer, "alias": ""})
    assert response.context["form"].errors["issuer"] == [
        f"The issuer {pem_issuer.issuer} already exists: it is the trusted token issuer “PEM issuer”."]
    response = console_admin_client.post(wizard, {"name": "PEM issuer", "issuer": "https://fresh.test", "alias": ""})
    assert response.context["form"].errors["name"] == ["A trusted token issuer named “PEM issuer” already exists."]


def test_one_finish_creates_a_pem_issuer(console_admin_client):
    wizard = "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/"
    console_admin_client.get(wizard + "?new=1")
    console_admin_client.post(wizard, {"name": "Once", "issuer": "https://once.test", "alias": ""})
    page = console_admin_client.get(wizard + "certificate/").content.decode()
    assert page.count('value="finish"') == 1 and 'data-inspect-url="' in page
    pem = certificate_pem(private_key("rsa", "once"))
    response = console_admin_client.post(wizard + "certificate/", {"mode": "pem", "pem": pem, "action": "finish"})
    assert response.status_code == HTTPStatus.FOUND
    assert TrustedTokenIssuer.objects.get(issuer="https://once.test").certificates.count() == 1
