"""The hostile PEMs of tests/security/test_pem_linear_time.py through the management API (issue 13, finding 3):
two parallel posts of one of them once held both workers ~28 s."""

from http import HTTPStatus

import pytest

from exchange.models import TrustedTokenIssuer

from ..security.test_pem_linear_time import HOSTILE, finishes_quickly


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_api_create_issuer_refuses_hostile_pem_quickly(api, text):
    body = {"name": "Hostile", "issuer": "https://hostile.test", "certificates": [text]}
    with finishes_quickly():
        response = api.post("trusted-token-issuers", body)
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert not TrustedTokenIssuer.objects.filter(name="Hostile").exists()


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_api_add_certificate_refuses_hostile_pem_quickly(api, pem_issuer, text):
    with finishes_quickly():
        response = api.post(f"trusted-token-issuers/{pem_issuer.pk}/certificates", {"certificate": text})
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert pem_issuer.certificates.count() == 1
