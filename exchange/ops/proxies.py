"""The client's address behind reverse proxies we trust (``TRUSTED_PROXIES``).

Behind a proxy every request arrives from the proxy's address, so per-address
throttling of failed client authentications (exchange/throttling.py) would count
all clients together, and logs and audit rows would name the proxy. With
``TRUSTED_PROXIES`` (comma-separated CIDRs) set, a request whose peer is one of
them gets ``REMOTE_ADDR`` from ``X-Forwarded-For``: the right-most address that is
not itself a trusted proxy (addresses to its left were written by the client and
prove nothing). The peer's own address stays in ``META["PEER_ADDR"]``.

A request from any other peer keeps its ``REMOTE_ADDR``, whatever it claims. An
``X-Forwarded-For`` entry that is not an IP address ends the walk at the nearest
trusted hop. Without ``TRUSTED_PROXIES`` the middleware is not installed.
"""

import ipaddress

from ..conf import project_settings


def parse_networks(values):
    """CIDRs (or single addresses) → networks; raises ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip())


def _address(value):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _inside(address, networks):
    return any(address in network for network in networks)


def in_networks(value, networks):
    """True when ``value`` is an IP address inside one of ``networks`` (from ``parse_networks``)."""
    address = _address(value)
    return address is not None and _inside(address, networks)


def client_address(peer, forwarded_for, networks):
    """The client's address for a request from ``peer`` carrying ``X-Forwarded-For: forwarded_for``."""
    if not forwarded_for or not in_networks(peer, networks):
        return peer
    nearest = peer
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            return nearest
        if not _inside(address, networks):
            return str(address)
        nearest = str(address)
    return nearest


class TrustedProxyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.networks = parse_networks(project_settings.TRUSTED_PROXIES)

    def __call__(self, request):
        peer = request.META.get("REMOTE_ADDR", "")
        request.META["PEER_ADDR"] = peer
        request.META["REMOTE_ADDR"] = client_address(peer, request.META.get("HTTP_X_FORWARDED_FOR", ""), self.networks)
        return self.get_response(request)
