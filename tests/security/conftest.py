"""Fixtures of the hostile suites: issuers A and B (from tests/conftest.py), issuer C and the attacker M.

A is ``pem_issuer`` (RSA-2048, PEM certificate), B is ``jwks_issuer`` (P-256 behind a JWKS on 127.0.0.1,
kid ``k1``), C publishes its own kid ``k1``; M's listener records any fetch a token header could cause.
"""

import pytest

from exchange import flows

from ..factories import b64url, claims_for, private_key, public_jwk, signed
from ..utils import JWKSServer

ATTACKER = private_key("rsa", "attacker-m")
ATTACKER_EC = private_key("ec", "attacker-m")


class Ctx:
    """What a case builder may use: A's key and issuer, B's key and issuer, a listener URL."""

    def __init__(self, a_key, a, b_key, b, listener):
        self.a_key, self.a, self.b_key, self.b, self.listener = a_key, a, b_key, b, listener

    def a_claims(self, **overrides):
        return claims_for(self.a.issuer, **overrides)

    def a_signed(self, header=None, **claims):
        return signed(self.a_key, {"alg": "RS256", **(header or {})}, self.a_claims(**claims))

    def b_signed(self, header=None, **claims):
        return signed(self.b_key, {"alg": "ES256", "kid": "k1", **(header or {})}, claims_for(self.b.issuer, **claims))

    @property
    def a_public(self):
        return self.a_key.public_key()


@pytest.fixture(scope="module")
def servers():
    """Issuer C's JWKS (it also publishes a kid "k1") and the attacker's listener; one pair per module."""
    c_server, listener = JWKSServer(), JWKSServer()
    c_server.serve_keys((private_key("ec", "issuer-c"), "k1"))
    listener.serve_keys((ATTACKER, "m"), (ATTACKER_EC, "m"))
    yield c_server, listener
    c_server.close()
    listener.close()


@pytest.fixture
def ctx(pem_issuer, jwks_issuer, jwks_server, rsa_key, ec_key, servers):
    """A, B and C registered (B with a symmetric and a weak key added to its JWKS); no header URL is ever fetched."""
    c_server, listener = servers
    listener.requests.clear()
    jwks_issuer.alias = "console-at-b"
    jwks_issuer.save()
    jwks_server.document["keys"] += [
        {"kty": "oct", "kid": "sym", "k": b64url(b"symmetric-secret-32-bytes-long!!"), "alg": "HS256"},
        public_jwk(private_key("rsa1024", "weak"), "weak"),
    ]
    flows.create_trusted_token_issuer(name="C", issuer="https://c.issuer.test", jwks_uri=c_server.url)
    yield Ctx(rsa_key, pem_issuer, ec_key, jwks_issuer, listener.url)
    assert listener.requests == [], "a URL from a token header was fetched"
