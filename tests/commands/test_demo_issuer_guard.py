"""The demo issuer exists only where it is safe (issue 13, finding 9).

Attack: on a production server, ``demo_token`` silently registered a trusted "Demo issuer" whose
private key sits in ``var/demo_issuer/key.pem``: anyone who can read that file mints tokens for any
``sub``. Now it refuses when DEBUG is off and CONSOLE_ISSUER is not a loopback URL, unless given
``--allow-on-production``; the console marks the demo issuer wherever it is listed.
"""

import io
import os
import stat
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from exchange import demo
from exchange.models import TrustedTokenIssuer

pytestmark = pytest.mark.django_db

PRODUCTION_ISSUERS = [
    "https://idp.example.com/oauth2/token",
    "https://10.0.0.5/oauth2/token",
    "https://localhost.example.com/oauth2/token",
    "https://127.0.0.1.nip.io/oauth2/token",
    "http://[::ffff:10.0.0.1]:8000/oauth2/token",
]
LOOPBACK_ISSUERS = [
    "http://localhost:8000/oauth2/token",
    "http://127.0.0.1:8000/oauth2/token",
    "http://127.8.9.10/oauth2/token",
    "http://[::1]:8000/oauth2/token",
    "http://console.localhost:8000/oauth2/token",
]


def demo_token(*args):
    out = io.StringIO()
    call_command("demo_token", *args, stdout=out)
    return out.getvalue().strip()


@pytest.mark.parametrize("issuer", PRODUCTION_ISSUERS)
def test_demo_token_refuses_on_a_production_server(settings, issuer):
    settings.DEBUG, settings.CONSOLE_ISSUER = False, issuer
    with pytest.raises(CommandError, match="--allow-on-production"):
        demo_token()
    assert not TrustedTokenIssuer.objects.exists()
    assert not (settings.VAR_DIR / "demo_issuer" / "key.pem").exists()


@pytest.mark.parametrize("issuer", LOOPBACK_ISSUERS)
def test_demo_token_works_on_a_loopback_issuer(settings, issuer):
    settings.DEBUG, settings.CONSOLE_ISSUER = False, issuer
    assert demo_token().count(".") == 2
    assert TrustedTokenIssuer.objects.get().is_demo


def test_demo_token_works_with_debug_on(settings):
    settings.DEBUG, settings.CONSOLE_ISSUER = True, PRODUCTION_ISSUERS[0]
    assert demo_token().count(".") == 2


def test_the_flag_allows_it_explicitly(settings):
    settings.DEBUG, settings.CONSOLE_ISSUER = False, PRODUCTION_ISSUERS[0]
    assert demo_token("--allow-on-production").count(".") == 2
    assert TrustedTokenIssuer.objects.get().issuer == demo.DEMO_ISSUER


def test_an_existing_demo_issuer_is_not_used_on_production_either(settings):
    demo_token()
    settings.DEBUG, settings.CONSOLE_ISSUER = False, PRODUCTION_ISSUERS[0]
    with pytest.raises(demo.DemoNotAllowed):
        demo.demo_subject_token()


def test_the_demo_private_key_is_owner_only(settings):
    demo_token()
    folder = settings.VAR_DIR / "demo_issuer"
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(folder / "key.pem").st_mode) == 0o600


def test_the_console_marks_the_demo_issuer(client, pem_issuer):
    admin_client = client
    admin_client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.com", "pw"))
    demo_token()
    trusted = TrustedTokenIssuer.objects.get(issuer=demo.DEMO_ISSUER)
    listing = admin_client.get("/console/exchange/trustedtokenissuer/").content.decode()
    assert listing.count("Demo: local key, not for production") == 1
    page = admin_client.get(f"/console/exchange/trustedtokenissuer/{trusted.pk}/change/")
    assert page.status_code == HTTPStatus.OK
    assert "Demo: local key, not for production" in page.content.decode()
    other = admin_client.get(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/")
    assert "Demo: local key" not in other.content.decode()
