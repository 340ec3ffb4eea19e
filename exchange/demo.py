"""A local "Demo issuer": a key and certificate kept under var/ so a newcomer can mint subject tokens."""

import datetime
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .conf import project_settings
from .flows import add_certificate, create_trusted_token_issuer
from .models import TrustedTokenIssuer

DEMO_NAME = "Demo issuer"
DEMO_ISSUER = "https://demo-issuer.invalid"


def _paths():
    folder = project_settings.VAR_DIR / "demo_issuer"
    folder.mkdir(parents=True, exist_ok=True)
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
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def ensure_demo_issuer():
    """The "Demo issuer" trusted token issuer, registered with the current demo certificate."""
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


def demo_subject_token(sub="alice", ttl=300, audience=None):
    key, _ = demo_key()
    issuer = ensure_demo_issuer()
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
