"""The flows the console added: issuer updates, enable/disable, application updates."""

import pytest
from django.core.exceptions import ValidationError

from exchange import flows
from exchange.models import TOKEN_EXCHANGE

from ..factories import mint

pytestmark = pytest.mark.django_db


def test_update_issuer_validates_with_the_model(pem_issuer, jwks_issuer):
    with pytest.raises(ValidationError) as excinfo:
        flows.update_trusted_token_issuer(pem_issuer, name="JWKS issuer")
    assert "name" in excinfo.value.message_dict
    with pytest.raises(ValidationError) as excinfo:
        flows.update_trusted_token_issuer(pem_issuer, issuer=" https://pem.issuer.test")
    assert excinfo.value.message_dict["issuer"] == ["Remove the leading or trailing whitespace."]
    with pytest.raises(ValidationError):
        flows.update_trusted_token_issuer(pem_issuer, allowed_algorithms=["HS256"])
    assert pem_issuer.name == "PEM issuer" and pem_issuer.allowed_algorithms != ["HS256"]
    pem_issuer.refresh_from_db()
    assert pem_issuer.name == "PEM issuer"


def test_update_issuer_keeps_its_key_source(pem_issuer, jwks_issuer):
    with pytest.raises(ValidationError) as excinfo:
        flows.update_trusted_token_issuer(jwks_issuer, jwks_uri="")
    assert "jwks_uri" in excinfo.value.message_dict
    with pytest.raises(ValidationError):
        flows.update_trusted_token_issuer(pem_issuer, jwks_uri="https://pem.issuer.test/jwks")
    with pytest.raises(TypeError):
        flows.update_trusted_token_issuer(pem_issuer, keys_fetched_at=None)
    flows.update_trusted_token_issuer(jwks_issuer, jwks_uri="https://jwks.issuer.test/v2/jwks", clock_skew=5)
    jwks_issuer.refresh_from_db()
    assert (jwks_issuer.jwks_uri, jwks_issuer.clock_skew) == ("https://jwks.issuer.test/v2/jwks", 5)


def test_disabled_issuer_tokens_are_refused(exchange, pem_issuer, rsa_key):
    flows.set_issuer_enabled(pem_issuer, False)
    response = exchange(mint(rsa_key, pem_issuer.issuer))
    assert response.json()["error_description"] == "The subject token's issuer is disabled."
    flows.set_issuer_enabled(pem_issuer, True)
    assert exchange(mint(rsa_key, pem_issuer.issuer)).status_code == 200


def test_update_application(make_application):
    app = make_application(grant_types=())
    flows.update_application(app, allowed_grant_types=["refresh_token", "token_exchange"], access_token_lifetime=600)
    app.refresh_from_db()
    assert app.allowed_grant_types == [TOKEN_EXCHANGE, "refresh_token"]
    assert app.token_lifetime == 600
    spa = make_application(name="SPA", application_type="spa", grant_types=())
    with pytest.raises(ValidationError) as excinfo:
        flows.update_application(spa, allowed_grant_types=["token_exchange"])
    assert "single-page" in excinfo.value.message_dict["allowed_grant_types"][0]
    assert spa.allowed_grant_types == []
    with pytest.raises(TypeError):
        flows.update_application(app, client_secret="x")
