"""Published metadata: the JWKS and discovery documents."""

from exchange.models import SigningKey


def test_jwks_publishes_the_signing_key(client, db):
    keys = client.get("/oauth2/jwks").json()["keys"]
    row = SigningKey.objects.get()
    assert [(k["kid"], k["alg"], k["use"], k["kty"]) for k in keys] == [(row.kid, "RS256", "sig", "RSA")]
    assert not any(private in keys[0] for private in ("d", "p", "q"))


def test_signing_algorithm_setting(client, db, settings):
    settings.TOKEN_EXCHANGE = {"SIGNING_ALGORITHM": "ES256"}
    assert client.get("/oauth2/jwks").json()["keys"][0]["alg"] == "ES256"


def test_signing_key_from_file(client, db, settings, tmp_path):
    from exchange.signing import generate_private_key, private_pem

    path = tmp_path / "signing.pem"
    path.write_text(private_pem(generate_private_key("ES256")))
    settings.TOKEN_EXCHANGE = {"SIGNING_KEY_FILE": str(path), "SIGNING_KEY_ID": "ops-2026"}
    keys = client.get("/oauth2/jwks").json()["keys"]
    assert [k["kid"] for k in keys] == ["ops-2026"]
    assert not SigningKey.objects.exists()


def test_discovery_lists_token_exchange(client, db, settings):
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        document = client.get(path).json()
        assert document["issuer"] == settings.CONSOLE_ISSUER
        assert "urn:ietf:params:oauth:grant-type:token-exchange" in document["grant_types_supported"]
        assert document["token_endpoint"] == "http://testserver/oauth2/token"
        assert document["jwks_uri"] == "http://testserver/oauth2/jwks"


def test_root_redirects_to_console(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/console/"
