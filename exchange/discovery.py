"""Issuer set-up from its URL: OpenID Connect Discovery 1.0 (``<issuer>/.well-known/openid-configuration``).

The document is fetched with the JWKS fetching rules (key_sources.fetch_json: timeouts, size
cap, no redirects, no credentials; https except loopback) and trusted only when its ``issuer``
equals the URL exactly (OIDC Discovery §4.3): otherwise another host could name itself. It
yields the JWKS URL and the signing algorithms the issuer lists, intersected with those we allow.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from . import key_sources
from .conf import ASYMMETRIC_ALGORITHMS
from .models import validate_jwks_uri

WELL_KNOWN = "/.well-known/openid-configuration"


class DiscoveryError(Exception):
    """Discovery failed; ``str()`` is a fixed, safe sentence for administrators (no document content)."""


@dataclass(frozen=True)
class Discovered:
    issuer: str
    jwks_uri: str
    algorithms: list  # allowed ones the issuer lists, in our order; empty when it lists none we allow


def discovery_url(issuer):
    """Where an issuer publishes its configuration (a trailing slash of the issuer is not doubled)."""
    return issuer.rstrip("/") + WELL_KNOWN


def _checked_url(value, what):
    try:
        validate_jwks_uri(value)
    except ValidationError as exc:
        raise DiscoveryError(f"The {what} is not acceptable: {exc.messages[0]}") from None


def discover(issuer):
    """Read the issuer's discovery document; a Discovered. Raises DiscoveryError."""
    if not isinstance(issuer, str) or not issuer or issuer != issuer.strip():
        raise DiscoveryError("Enter the issuer URL without surrounding spaces.")
    _checked_url(issuer, "issuer URL")
    try:
        document = key_sources.fetch_json(discovery_url(issuer), "discovery")
    except key_sources.KeySourceError as exc:
        raise DiscoveryError(exc.detail) from None
    if not isinstance(document, dict):
        raise DiscoveryError("The discovery response is not a JSON object.")
    if document.get("issuer") != issuer:
        raise DiscoveryError(
            "The discovery document names another issuer than this URL; it must be exactly the same "
            "(OpenID Connect Discovery 1.0 §4.3)."
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise DiscoveryError("The discovery document has no jwks_uri.")
    _checked_url(jwks_uri, "JWKS URL of the discovery document")
    listed = document.get("id_token_signing_alg_values_supported")
    listed = [a for a in listed if isinstance(a, str)] if isinstance(listed, list) else []
    algorithms = [a for a in ASYMMETRIC_ALGORITHMS if a in listed]
    return Discovered(issuer, jwks_uri, algorithms)
