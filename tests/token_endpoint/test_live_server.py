"""The documented token-exchange request (the curl example of the design, ``../shared/DESIGN.md``, beside the
repository), sent with curl to a live server: Basic client authentication, a form body, a JSON answer."""

import json
import shutil
import subprocess

import pytest

from ..factories import mint
from ..utils import basic_auth

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_design_curl_request_against_live_server(live_server, pem_issuer, rsa_key, make_application):
    application = make_application(name="Curl app")
    token = mint(rsa_key, pem_issuer.issuer, sub="alice")
    command = [
        "curl", "--silent", "--show-error", "--location", f"{live_server.url}/oauth2/token",
        "--header", "Content-Type: application/x-www-form-urlencoded",
        "--header", f"Authorization: {basic_auth(application.client_id, application.raw_secret)}",
        "--data-urlencode", f"subject_token={token}",
        "--data-urlencode", "subject_token_type=urn:ietf:params:oauth:token-type:jwt",
        "--data-urlencode", "requested_token_type=urn:ietf:params:oauth:token-type:access_token",
        "--data-urlencode", "grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
        "--write-out", "\n%{http_code}",
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    body, status = output.rsplit("\n", 1)
    assert status == "200", body
    response = json.loads(body)
    assert response["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert response["access_token"].count(".") == 2
