"""Management API: the OpenAPI contract, the docs page, and a schemathesis run against a live server."""

import os
import re
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from drf_spectacular.validation import validate_schema

from exchange import key_sources

from .helpers import API, assert_problem, obtain_token

OPERATIONS = {
    "/api/server/v1/trusted-token-issuers": {"get", "post"},
    "/api/server/v1/trusted-token-issuers/{id}": {"get", "patch", "delete"},
    "/api/server/v1/trusted-token-issuers/{id}/keys": {"get"},
    "/api/server/v1/trusted-token-issuers/{id}/keys/refresh": {"post"},
    "/api/server/v1/trusted-token-issuers/{id}/certificates": {"post"},
    "/api/server/v1/trusted-token-issuers/{id}/certificates/{fingerprint}": {"delete"},
    "/api/server/v1/trusted-token-issuers/{id}/revoke-tokens": {"post"},
    "/api/server/v1/applications": {"get", "post"},
    "/api/server/v1/applications/{id}": {"get", "patch", "delete"},
    "/api/server/v1/applications/{id}/protocol": {"get", "put"},
    "/api/server/v1/applications/{id}/regenerate-secret": {"post"},
    "/api/server/v1/scopes": {"get", "post"},
    "/api/server/v1/scopes/{id}": {"get", "patch", "delete"},
    "/api/server/v1/token-validations": {"post"},
    "/api/server/v1/users": {"get"},
    "/api/server/v1/users/{id}": {"get", "patch"},
    "/api/server/v1/linked-identities": {"get", "post"},
    "/api/server/v1/linked-identities/{id}": {"get", "delete"},
    "/api/server/v1/roles": {"get"},
    "/api/server/v1/roles/{id}": {"get", "patch"},
}


@pytest.fixture
def schema(client):
    response = client.get(f"{API}/schema?format=json")
    assert response.status_code == HTTPStatus.OK
    return response.json()


def test_schema_is_served_without_credentials_and_is_valid_openapi_3(client, schema):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    yaml = client.get(f"{API}/schema")
    assert yaml.status_code == HTTPStatus.OK
    assert yaml["Content-Type"].startswith("application/vnd.oai.openapi")


def test_schema_lists_every_operation(schema):
    documented = {path: set(item) - {"parameters"} for path, item in schema["paths"].items()}
    assert documented == OPERATIONS


def test_every_operation_documents_auth_and_problem_errors(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            assert {"oauth2": ["console:manage"]} in operation["security"], (method, path)
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (method, path, code)


def test_security_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == "/oauth2/token"
    assert schemes["cookieAuth"] == {"type": "apiKey", "in": "cookie", "name": "sessionid"}


def test_docs_page_uses_only_local_assets(client):
    page = client.get(f"{API}/docs")
    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references
    for reference in references:
        assert not urlsplit(reference).netloc, reference  # no CDN, no other host
        asset = client.get(reference.replace("&amp;", "&"))
        assert asset.status_code == HTTPStatus.OK, reference
        if reference.endswith(".js") or "script" in reference:
            body = b"".join(asset.streaming_content) if asset.streaming else asset.content
            assert b"//cdn." not in body


@pytest.mark.parametrize("path", ["nothing-here", "trusted-token-issuers/1/claims", "applications/1.5"])
def test_unknown_paths_are_problem_404s(api, path):
    assert_problem(api.get(path), HTTPStatus.NOT_FOUND)
    assert_problem(api.post(path, {}), HTTPStatus.NOT_FOUND)


# -- schemathesis --------------------------------------------------------------------------------

SCHEMATHESIS_SEED = 20261125
SCHEMATHESIS_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "40"))
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def loopback_only_jwks(monkeypatch, settings):
    """The API will fetch whatever JWKS URLs schemathesis invents: keep those fetches on this machine.

    A non-loopback host fails the way an unreachable endpoint does, through the real error path.
    """
    real_fetch = key_sources.fetch_jwks

    def fetch(url):
        if urlsplit(url).hostname not in LOOPBACK:
            raise key_sources.KeySourceError("The JWKS endpoint could not be reached.")
        return real_fetch(url)

    monkeypatch.setattr(key_sources, "fetch_jwks", fetch)
    # Short deadlines: invented loopback URLs refuse or hang, and the run should not wait on them.
    settings.TOKEN_EXCHANGE = {**settings.TOKEN_EXCHANGE, "JWKS_CONNECT_TIMEOUT_MS": 200,
                               "JWKS_READ_TIMEOUT_MS": 200, "JWKS_TOTAL_TIMEOUT_MS": 300}


@pytest.mark.slow
@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_errors_or_schema_violations(
    live_server, client, manager_app, loopback_only_jwks, tmp_path,
):
    """Every operation, fuzzed (coverage, fuzzing and stateful phases) with a management token.

    All checks run except positive_data_acceptance: schema-valid requests that break a rule the
    schema cannot express (an issuer needs exactly one key source, a parseable certificate, a
    unique issuer) are rightly refused with 400.
    """
    token = obtain_token(client, manager_app, manager_app.raw_secret)
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "run", f"{live_server.url}{API}/schema?format=json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--max-examples", str(SCHEMATHESIS_EXAMPLES), "--seed", str(SCHEMATHESIS_SEED),
        "--workers", "1", "--request-timeout", "20",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    print(output)  # shown by pytest on failure, and with -s
    assert result.returncode == 0, output[-6000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary and int(summary.group(1)) > 0, output[-3000:]
    # every operation the contract lists (34: 19, the scope registry's 5, users, links and roles' 10)
    assert f"Tested: {sum(map(len, OPERATIONS.values()))}" in output, output[-3000:]
