"""Behaviours that no test stated until mutation testing found them unguarded (issue 22, docs/testing.md).

Each test names what it protects; the mutation it kills is in its docstring.
"""

import socket
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from django.contrib.auth.hashers import make_password

from exchange import certificates, client_auth, flows, key_sources
from exchange.models import ExchangeEvent
from exchange.subject_token import SubjectTokenRejected, validate_subject_token

from ..factories import DROP, certificate_for, certificate_pem, mint, private_key
from ..utils import exchange_body, post_form


# -- subject tokens: jti -------------------------------------------------------------------------

@pytest.mark.parametrize("require_jti", [False, True])
def test_tokens_with_a_jti_are_accepted_whether_or_not_the_issuer_requires_one(db, rsa_key, require_jti):
    """Kills ``jti is None and issuer.require_jti`` → ``or`` (every token of a jti-requiring issuer refused)."""
    issuer = flows.create_trusted_token_issuer(
        name="Issuer", issuer="https://jti.issuer.test", certificates=[certificate_pem(rsa_key)], require_jti=require_jti,
    )
    report = validate_subject_token(mint(rsa_key, issuer.issuer))
    assert report.ok


def test_jti_less_tokens_are_accepted_from_issuers_not_requiring_jti(db, rsa_key):
    """Kills ``jti is None and issuer.require_jti`` → ``or`` (every token without jti refused)."""
    issuer = flows.create_trusted_token_issuer(
        name="Issuer", issuer="https://nojti.issuer.test", certificates=[certificate_pem(rsa_key)], require_jti=False,
    )
    report = validate_subject_token(mint(rsa_key, issuer.issuer, jti=DROP))
    assert report.ok
    assert [s.detail for s in report.steps if s.name == "replay"] == ["no jti"]


def test_jti_less_tokens_are_refused_by_issuers_requiring_jti(db, rsa_key):
    issuer = flows.create_trusted_token_issuer(
        name="Issuer", issuer="https://needsjti.issuer.test", certificates=[certificate_pem(rsa_key)], require_jti=True,
    )
    with pytest.raises(SubjectTokenRejected) as caught:
        validate_subject_token(mint(rsa_key, issuer.issuer, jti=DROP))
    assert caught.value.cause == "missing_claim"


# -- client authentication -----------------------------------------------------------------------

@pytest.mark.parametrize("client_id, plausible", [
    ("a", True),  # one character is a client id like any other
    ("x" * client_auth.MAX_CLIENT_ID_LENGTH, True),
    ("", False),
    ("x" * (client_auth.MAX_CLIENT_ID_LENGTH + 1), False),
    ("a\x00b", False),
])
def test_client_id_plausibility_bounds(client_id, plausible):
    """Kills ``0 < len(client_id)`` → ``1 <``, ``<=`` → ``<``, and the NUL check changed."""
    assert client_auth.plausible_client_id(client_id) is plausible


def _loader(applications):
    asked = []

    def load(client_id):
        asked.append(client_id)
        return applications.get(client_id)

    load.asked = asked
    return load


def test_one_character_client_ids_authenticate():
    """A client whose id is one character is looked up and authenticated (``0 <`` → ``1 <`` locks it out)."""
    application = SimpleNamespace(client_secret=make_password("s3cret", hasher="hmac_sha256"), is_usable=lambda request: True)
    load = _loader({"a": application})
    result = client_auth.authenticate(None, "a", "s3cret", load)
    assert result.ok and result.application is application
    assert load.asked == ["a"]


def test_authentication_without_a_secret_still_names_the_application():
    """Kills ``if credentials.client_secret is None:`` → ``if False:`` (the application would be lost)."""
    application = SimpleNamespace(client_secret=make_password("s3cret", hasher="hmac_sha256"), is_usable=lambda request: True)
    result = client_auth.authenticate(None, "known-client", None, _loader({"known-client": application}))
    assert not result.ok
    assert result.application is application
    assert result.credentials.method == "none"


def test_audit_names_the_application_when_no_secret_is_sent(client, application, subject_token):
    """The rejected exchange's audit row says which application asked, although it sent no secret."""
    response = post_form(client, "/oauth2/token", exchange_body(subject_token, client_id=application.client_id))
    assert response.status_code == 401
    event = ExchangeEvent.objects.get()
    assert (event.outcome, event.cause, event.application_id) == ("rejected", "invalid_client", application.pk)


# -- JWKS: the shared cache and the watchdog -----------------------------------------------------

@pytest.mark.parametrize("kid", ["k1", None])
def test_shared_jwks_cache_is_served_when_fresh(jwks_issuer, jwks_server, kid):
    """A JWKS document another process fetched (in the shared cache, no cooldown running) is used, not refetched.

    Kills ``fresh and (kid is None or any(...))`` → ``fresh and (kid is None and any(...))``.
    """
    key_sources.refresh_jwks(jwks_issuer)  # as another process would: the document lands in the shared cache
    fetches = len(jwks_server.requests)
    keys = key_sources.jwks_keys(jwks_issuer, kid)
    assert [k.kid for k in keys] == ["k1"]
    assert len(jwks_server.requests) == fetches


def _connected_pair():
    left, right = socket.socketpair()
    left.settimeout(2)
    right.settimeout(2)
    return left, right


def test_watchdog_shuts_down_a_socket_connecting_after_the_deadline():
    """Kills ``_Watchdog.watch``'s ``if self.expired:`` → ``if False:`` (a late socket would drip on for ever)."""
    watchdog = key_sources._Watchdog(30)
    left, right = _connected_pair()
    try:
        watchdog.expire()  # the total deadline passed before this connection was made
        watchdog.watch(left)
        assert left.recv(1) == b""  # shut down at once: without it, this read would wait for the peer
        assert watchdog.passed
    finally:
        watchdog.cancel()
        left.close()
        right.close()


def test_watchdog_leaves_a_socket_alone_before_the_deadline_and_shuts_it_at_the_deadline():
    watchdog = key_sources._Watchdog(30)
    left, right = _connected_pair()
    try:
        watchdog.watch(left)
        right.sendall(b"x")
        assert left.recv(1) == b"x"
        assert not watchdog.passed
        watchdog.expire()
        assert left.recv(1) == b""
    finally:
        watchdog.cancel()
        left.close()
        right.close()


# -- certificates ---------------------------------------------------------------------------------

def _csr_pem(key):
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "request")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def test_certificate_request_block_is_refused_with_its_message():
    """Kills the removal of ``raise CertificateError(f"A {label} block ...")``: the caller would get None."""
    with pytest.raises(certificates.CertificateError) as caught:
        certificates.inspect_pem(_csr_pem(private_key("rsa", "issuer-a")))
    assert str(caught.value) == "A CERTIFICATE REQUEST block is not a certificate or public key."


@pytest.mark.parametrize("text", ["", "   \n\t ", "\r\n"])
def test_empty_input_has_its_message(text):
    with pytest.raises(certificates.CertificateError) as caught:
        certificates.inspect_pem(text)
    assert str(caught.value) == "Paste or upload a PEM certificate."


def test_non_ascii_pem_upload_has_its_message():
    pem = certificate_pem(private_key("rsa", "issuer-a")).encode("ascii")
    upload = pem.replace(b"-----END", "é-----END".encode("utf-8"))
    with pytest.raises(certificates.CertificateError) as caught:
        certificates.inspect_pem(upload)
    assert str(caught.value) == "The PEM file contains non-ASCII bytes."


def _certificate_with_long_names(key):
    # Each attribute within X.509's upper bound (64); together more than 500 characters.
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"unit {i:02d} " + "x" * 50) for i in range(12)])
    certificate = certificate_for(key)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(certificate.not_valid_before_utc).not_valid_after(certificate.not_valid_after_utc))
    return builder.sign(key, hashes.SHA256())


def test_subject_and_issuer_are_capped_at_500_characters():
    """The stored subject and issuer fit their columns (max_length=500; PostgreSQL refuses 501).

    Kills ``rfc4514_string()[:500]`` → ``[:501]``.
    """
    certificate = _certificate_with_long_names(private_key("rsa", "issuer-a"))
    full = certificate.subject.rfc4514_string()
    assert len(full) > 500
    info = certificates.inspect_pem(certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))
    assert info.subject == full[:500]
    assert info.issuer == certificate.issuer.rfc4514_string()[:500]
