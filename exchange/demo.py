"""A local "Demo issuer": a key and certificate kept under var/ so a newcomer can mint subject tokens.

Whoever can read var/ can then mint tokens for any ``sub``: the demo issuer is for a development
server only. ``check_demo_allowed`` refuses it when DEBUG is off and CONSOLE_ISSUER is not a
loopback URL, unless explicitly allowed.
"""

import datetime
import ipaddress
import os
import time
import uuid
from urllib.parse import urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings

from .conf import project_settings
from .flows import add_certificate, create_trusted_token_issuer
from .models import DEMO_ISSUER, TrustedTokenIssuer

DEMO_NAME = "Demo issuer"


class DemoNotAllowed(Exception):
    """The demo issuer would be a standing backdoor here (message is safe to show)."""


def is_loopback_url(url):
    """True if ``url``'s host is localhost (or a .localhost name) or a loopback address."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_demo_allowed(allow_on_production=False):
    """Raise DemoNotAllowed unless this is a development server (DEBUG, or a loopback CONSOLE_ISSUER)."""
    if settings.DEBUG or is_loopback_url(project_settings.CONSOLE_ISSUER) or allow_on_production:
        return
    raise DemoNotAllowed(
        "Refusing to register the demo issuer: DEBUG is off and CONSOLE_ISSUER is not a loopback URL, so "
        "this looks like a production server, where a trusted issuer whose private key sits in var/ lets "
        "anyone who reads that file mint tokens for any subject. Pass --allow-on-production to do it anyway."
    )


def _paths():
    folder = project_settings.VAR_DIR / "demo_issuer"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / "key.pem", folder / "certificate.pem"


def demo_key():
    """The demo issuer's private key and certificate, generated once."""
    key_path, cert_path = _paths()
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1):
            return key, cert
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Identity Console demo issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_path.unlink(missing_ok=True)
    with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def ensure_demo_issuer(allow_on_production=False):
    """The "Demo issuer" trusted token issuer, registered with the current demo certificate.

    Raises DemoNotAllowed on what looks like a production server (see ``check_demo_allowed``).
    """
    check_demo_allowed(allow_on_production)
    key, cert = demo_key()
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    issuer = TrustedTokenIssuer.objects.filter(name=DEMO_NAME).first()
    if issuer is None:
        return create_trusted_token_issuer(name=DEMO_NAME, issuer=DEMO_ISSUER, certificates=[pem])
    if not issuer.certificates.filter(pem=pem).exists():
        issuer.certificates.all().delete()
        issuer.jwks_uri = ""
        issuer.save(update_fields=["jwks_uri"])
        add_certificate(issuer, pem)
    return issuer


def demo_subject_token(sub="alice", ttl=300, audience=None, allow_on_production=False):
    """A subject token of the demo issuer (registered on first use); DemoNotAllowed on production."""
    issuer = ensure_demo_issuer(allow_on_production)
    key, _ = demo_key()
    now = int(time.time())
    claims = {
        "iss": issuer.issuer,
        "sub": sub,
        "aud": audience or project_settings.CONSOLE_ISSUER,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"typ": "JWT"})
