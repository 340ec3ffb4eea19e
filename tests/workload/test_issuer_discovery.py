"""Issuer set-up from its URL: OpenID discovery with the JWKS fetching rules, and its issuer check."""

import pytest
from django.core.exceptions import ValidationError

from exchange import discovery, flows


def test_discovery_fills_the_jwks_url_and_the_allowed_algorithms(oidc_server):
    oidc_server.discovery["id_token_signing_alg_values_supported"] = ["HS256", "none", "PS256", "RS256", 7]
    found = discovery.discover(oidc_server.issuer)
    assert found.jwks_uri == oidc_server.url
    assert found.algorithms == ["RS256", "PS256"]  # intersected with what we allow, in our order


@pytest.mark.parametrize("named", [
    lambda url: url + "/",  # OIDC Discovery §4.3: exactly the same string
    lambda url: url.replace("127.0.0.1", "localhost"),
    lambda url: "https://token.actions.githubusercontent.com",  # a host naming itself someone else
    lambda url: None,
    lambda url: [url],
])
def test_a_document_naming_another_issuer_is_refused(oidc_server, named):
    oidc_server.discovery["issuer"] = named(oidc_server.issuer)
    if oidc_server.discovery["issuer"] is None:
        oidc_server.discovery["issuer"] = ""
    with pytest.raises(discovery.DiscoveryError, match="names another issuer"):
        discovery.discover(oidc_server.issuer)


@pytest.mark.parametrize(("change", "phrase"), [
    ({"status": 302, "headers": {"Location": "http://127.0.0.1:1/x"}}, "redirects are not followed"),
    ({"status": 500}, "answered HTTP 500"),
    ({"discovery": {"jwks_uri": None}}, "no jwks_uri"),
    ({"discovery": {"jwks_uri": "http://jwks.example.com/keys"}}, "must use https"),
    ({"discovery": {"jwks_uri": "https://user:pw@example.com/keys"}}, "credentials"),
    ({"discovery": {"padding": "x" * 70000}}, "larger than"),
])
def test_discovery_follows_the_jwks_fetching_rules(oidc_server, change, phrase):
    for name, value in change.items():
        if name == "discovery":
            oidc_server.discovery.update(value)
        else:
            setattr(oidc_server, name, value)
    with pytest.raises(discovery.DiscoveryError) as caught:
        discovery.discover(oidc_server.issuer)
    assert phrase in str(caught.value)


@pytest.mark.parametrize("issuer", ["http://issuer.example.com", "ftp://127.0.0.1", "https://u:p@idp.example", " https://x"])
def test_unacceptable_issuer_urls_are_refused_before_any_request(issuer):
    with pytest.raises(discovery.DiscoveryError):
        discovery.discover(issuer)


def test_without_listed_algorithms_the_presets_are_used(oidc_server):
    oidc_server.discovery["id_token_signing_alg_values_supported"] = None
    assert flows.discovered_issuer_settings(oidc_server.issuer, "kubernetes")["allowed_algorithms"] == ["RS256", "ES256"]


def test_the_flow_reports_discovery_problems_on_the_issuer(oidc_server):
    oidc_server.discovery["issuer"] = "https://elsewhere.example"
    with pytest.raises(ValidationError) as caught:
        flows.discovered_issuer_settings(oidc_server.issuer)
    assert "names another issuer" in caught.value.message_dict["issuer"][0]
