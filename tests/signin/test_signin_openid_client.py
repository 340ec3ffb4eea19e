"""The held-out acceptance, rehearsed: node's openid-client (v6, from the npm registry) runs discovery →
authorization code with PKCE → token (ID token validated by openid-client) → refresh → userinfo against
a live server on 127.0.0.1. Slow (npm install); skipped when node/npm or the registry is unavailable."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from exchange.accounts import local_subject

from .conftest import PASSWORD
from .test_signin_interop import user_agent_signs_in

pytestmark = [pytest.mark.slow, pytest.mark.live, pytest.mark.django_db(transaction=True)]

SCRIPT = Path(__file__).parent / "node" / "rp.mjs"
CALLBACK = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def openid_client(tmp_path_factory):
    """A folder with openid-client installed (and rp.mjs), or a skip."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed")
    folder = tmp_path_factory.mktemp("openid-client")
    (folder / "package.json").write_text('{"private": true, "type": "module"}')
    try:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "openid-client@6"], cwd=folder, check=True,
                       capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"openid-client could not be installed from the npm registry: {exc}")
    shutil.copy(SCRIPT, folder / "rp.mjs")
    return folder


def run(folder, step, **env):
    result = subprocess.run(["node", "rp.mjs", step], cwd=folder, capture_output=True, text=True, timeout=60,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("application_type", ["traditional", "spa"])
def test_openid_client_signs_in_refreshes_and_reads_userinfo(settings, live_server, openid_client, make_application,
                                                           local_user, application_type):
    settings.CONSOLE_ISSUER = f"{live_server.url}/oauth2/token"  # discovery checks the issuer it started from
    app = make_application(name=f"openid-client {application_type}", application_type=application_type,
                           grant_types=["authorization_code", "refresh_token"], scopes="openid profile",
                           redirect_uris=CALLBACK)
    env = {"ISSUER": settings.CONSOLE_ISSUER, "CLIENT_ID": app.client_id, "CLIENT_SECRET": app.raw_secret or "",
           "REDIRECT_URI": CALLBACK}
    start = run(openid_client, "start", **env)
    callback = user_agent_signs_in(start["url"], password=PASSWORD)
    done = run(openid_client, "finish", **env, CALLBACK=callback, VERIFIER=start["verifier"], STATE=start["state"],
               NONCE=start["nonce"])
    assert done["sub"] == local_subject(local_user) and done["iss"] == settings.CONSOLE_ISSUER
    assert done["scope"] == "openid profile" and done["rotated"] is True
    assert done["refreshed_sub"] == done["sub"] and done["userinfo"]["sub"] == done["sub"]
    assert done["userinfo"]["preferred_username"] == "carol"
