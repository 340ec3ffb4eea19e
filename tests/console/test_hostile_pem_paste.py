"""The hostile PEMs of tests/security/test_pem_linear_time.py through the console (issue 13, finding 3):
360 KB pasted into *Add certificate* once got the worker killed by gunicorn's timeout."""

from http import HTTPStatus

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from exchange.models import TrustedTokenIssuer

from ..security.test_pem_linear_time import HOSTILE, finishes_quickly

WIZARD = "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/"


def certificates_tab(issuer):
    return f"/console/exchange/trustedtokenissuer/{issuer.pk}/change/?tab=certificates"


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_add_certificate_paste_refused_quickly(console_admin_client, pem_issuer, text):
    with finishes_quickly():
        response = console_admin_client.post(certificates_tab(pem_issuer), {"action": "add", "pem": text})
    assert response.status_code == HTTPStatus.OK
    assert response.context["add_form"].errors["pem"]
    assert pem_issuer.certificates.count() == 1


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_add_certificate_upload_refused_quickly(console_admin_client, pem_issuer, text):
    upload = SimpleUploadedFile("hostile.pem", text.encode("ascii"))
    with finishes_quickly():
        response = console_admin_client.post(certificates_tab(pem_issuer), {"action": "add", "pem_file": upload})
    assert response.status_code == HTTPStatus.OK
    assert response.context["add_form"].errors["pem"]
    assert pem_issuer.certificates.count() == 1


def test_wizard_paste_refused_quickly(console_admin_client):
    console_admin_client.get(WIZARD + "?new=1")
    response = console_admin_client.post(WIZARD, {"name": "Hostile", "issuer": "https://hostile.test", "alias": ""})
    assert response.status_code == HTTPStatus.FOUND
    for text in HOSTILE.values():
        with finishes_quickly():
            response = console_admin_client.post(WIZARD + "certificate/", {"mode": "pem", "pem": text})
        assert response.status_code == HTTPStatus.OK
        assert response.context["form"].errors["pem"]
    assert not TrustedTokenIssuer.objects.filter(name="Hostile").exists()
