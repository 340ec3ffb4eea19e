"""Validation on save: trusted issuers, certificates, applications."""

import datetime

import pytest
from django.core.exceptions import ValidationError

from exchange import flows
from exchange.certificates import CertificateError, inspect_pem
from exchange.models import Application, TrustedTokenIssuer

from ..factories import certificate_pem, private_key


def create(**kwargs):
    defaults = {"name": "Issuer", "issuer": "https://issuer.example", "jwks_uri": "https://issuer.example/jwks"}
    return flows.create_trusted_token_issuer(**{**defaults, **kwargs})


@pytest.mark.parametrize("field, value", [
    ("issuer", " https://issuer.example"),
    ("issuer", "https://issuer.example\n"),
    ("name", "Issuer "),
    ("alias", " console"),
])
def test_stray_whitespace_is_refused(db, field, value):
    with pytest.raises(ValidationError) as exc:
        create(**{field: value})
    assert field in exc.value.message_dict


@pytest.mark.parametrize("url, ok", [
    ("https://idp.example/jwks", True),
    ("http://127.0.0.1:8080/jwks", True),
    ("http://localhost/jwks", True),
    ("http://idp.example/jwks", False),
    ("ftp://idp.example/jwks", False),
    ("https://user:pw@idp.example/jwks", False),
    ("file:///etc/passwd", False),
    ("javascript:alert(1)", False),
    ("https://keycloak:8443/realms/corp/protocol/openid-connect/certs", True),
    ("http://[::1", False),
    ("https://idp.example:99999/jwks", False),
    ("https://idp.example/jw ks", False),
])
def test_jwks_uri_shape(db, url, ok):
    if ok:
        assert create(jwks_uri=url).jwks_uri == url
    else:
        with pytest.raises(ValidationError):
            create(jwks_uri=url)


def test_plain_http_allowed_by_setting(db, settings):
    settings.TOKEN_EXCHANGE = {"JWKS_ALLOW_HTTP": True}
    assert create(jwks_uri="http://idp.example/jwks").pk


def test_private_addresses_refused_by_setting(db, settings):
    settings.TOKEN_EXCHANGE = {"JWKS_ALLOW_PRIVATE_ADDRESSES": False}
    with pytest.raises(ValidationError):
        create(jwks_uri="https://10.1.2.3/jwks")


def test_names_and_issuers_are_unique(db):
    create()
    with pytest.raises(ValidationError) as exc:
        create(name="Other")
    assert "issuer" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        create(issuer="https://other.example")
    assert "name" in exc.value.message_dict


@pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["RS256", "HS512"], [], "RS256", ["rs256"]])
def test_only_asymmetric_algorithms(db, algorithms):
    with pytest.raises(ValidationError) as exc:
        create(allowed_algorithms=algorithms)
    assert "allowed_algorithms" in exc.value.message_dict


def test_defaults_are_safe_and_visible(db):
    issuer = create()
    assert issuer.allowed_algorithms == ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                         "ES256", "ES384", "ES512", "EdDSA"]
    assert (issuer.clock_skew, issuer.max_token_age, issuer.reject_replayed_jti, issuer.require_jti) == (60, 3600, True, False)


def test_exactly_one_key_source(db):
    pem = certificate_pem(private_key("rsa", "m1"))
    with pytest.raises(ValidationError):
        create(certificates=[pem])  # both
    with pytest.raises(ValidationError):
        create(jwks_uri="")  # neither
    assert not TrustedTokenIssuer.objects.exists()


def test_failed_certificate_saves_nothing(db):
    with pytest.raises(ValidationError):
        create(jwks_uri="", certificates=[certificate_pem(private_key("rsa", "m1")), "garbage"])
    assert not TrustedTokenIssuer.objects.exists()


def test_bare_public_key_is_accepted(db):
    from cryptography.hazmat.primitives import serialization

    key = private_key("ec", "bare").public_key()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    issuer = create(jwks_uri="", certificates=[pem])
    cert = issuer.certificates.get()
    assert (cert.key_description, cert.not_after) == ("EC P-256", None)


@pytest.mark.parametrize("make, message", [
    (lambda: certificate_pem(private_key("rsa", "old"), not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc), days=30), "expired"),
    (lambda: certificate_pem(private_key("rsa", "new"), not_before=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3)), "not valid until"),
    (lambda: certificate_pem(private_key("rsa1024", "weak")), "at least 2048"),
    (lambda: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "private key"),
    (lambda: certificate_pem(private_key("rsa", "a")) + certificate_pem(private_key("rsa", "b")), "several"),
    (lambda: certificate_pem(private_key("rsa", "a")) + "trailing", "before or after"),
    (lambda: "hello", "not a PEM"),
    (lambda: "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----", "base64"),
])
def test_certificate_hygiene(make, message):
    with pytest.raises(CertificateError, match=message):
        inspect_pem(make())


def test_certificate_details():
    info = inspect_pem(certificate_pem(private_key("rsa", "details"), common_name="Acme IdP"))
    assert info.subject == "CN=Acme IdP" and info.key_description == "RSA 2048"
    assert len(info.fingerprint) == 95 and info.fingerprint.count(":") == 31


def test_crlf_pem_is_normalized(db):
    pem = certificate_pem(private_key("rsa", "crlf")).replace("\n", "\r\n")
    cert = create(jwks_uri="", certificates=[pem]).certificates.get()
    assert "\r" not in cert.pem


def test_spa_is_public_and_cannot_use_token_exchange(db):
    with pytest.raises(ValidationError) as exc:
        flows.create_application(name="SPA", application_type="spa", grant_types=["token_exchange"])
    assert "single-page" in str(exc.value)
    app, _ = flows.create_application(name="SPA", application_type="spa")
    assert app.client_type == Application.CLIENT_PUBLIC
    app.allowed_grant_types = ["urn:ietf:params:oauth:grant-type:token-exchange"]
    assert not app.allows_grant_type("urn:ietf:params:oauth:grant-type:token-exchange")


def test_allows_grant_type_understands_dot_names(db):
    app, _ = flows.create_application(name="M2M", grant_types=["client_credentials"])
    assert app.allows_grant_type("client-credentials") and app.allows_grant_type("client_credentials")
    assert not app.allows_grant_type("refresh_token")
