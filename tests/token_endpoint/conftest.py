"""Fixtures of the token-endpoint tests."""

import pytest

from ..factories import mint


@pytest.fixture
def new_subject_token(pem_issuer, rsa_key):
    """Mints a fresh valid subject token of ``pem_issuer`` on each call (each has its own jti)."""
    return lambda: mint(rsa_key, pem_issuer.issuer)
