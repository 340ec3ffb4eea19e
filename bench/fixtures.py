"""What every benchmark needs: keys, a PEM- and a JWKS-backed trusted issuer, an application, subject tokens.

Keys live in the bench work folder (``var/bench/`` by default) and are generated once.
Subject tokens are minted here, before any load is driven, by several processes.
The bench issuers keep the product defaults, jti replay protection included, so
each minted token can be exchanged exactly once.
"""

import datetime
import json
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

PEM_ISSUER = "https://bench-pem-issuer.invalid"
JWKS_ISSUER = "https://bench-jwks-issuer.invalid"
JWKS_KID = "bench-jwks-1"
CONSOLE_ISSUER = "http://localhost:8000/oauth2/token"

TOKEN_EXCHANGE_FORM = (
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
    "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt"
    "&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
    "&subject_token="
)
CLIENT_CREDENTIALS_FORM = "grant_type=client_credentials"


def key_file(folder, name, kind):
    """A private key PEM under ``folder``, generated on first use ("rsa" or "ec")."""
    path = Path(folder) / f"{name}.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
        path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        path.chmod(0o600)
    return path


def load_key(path):
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def certificate_pem(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def jwks_document(key):
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": JWKS_KID, "alg": "RS256", "use": "sig"})
    return {"keys": [jwk]}


def _mint_chunk(args):
    key_path, issuer, kid, count, audience, lifetime = args
    key = load_key(key_path)
    headers = {"typ": "JWT", **({"kid": kid} if kid else {})}
    now = int(time.time())
    out = []
    for _ in range(count):
        claims = {"iss": issuer, "sub": "bench-user-" + uuid.uuid4().hex[:8], "aud": audience,
                  "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
        out.append(jwt.encode(claims, key, algorithm="RS256", headers=headers))
    return out


def mint_tokens(path, key_path, issuer, count, *, kid=None, audience=CONSOLE_ISSUER, lifetime=3000, processes=None):
    """Write ``count`` fresh subject tokens (RS256, unique jti) to ``path``, one per line."""
    processes = processes or os.cpu_count() or 1
    chunks = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        parts = pool.map(_mint_chunk, [(str(key_path), issuer, kid, n, audience, lifetime) for n in chunks if n])
        with open(path, "w") as out:
            for part in parts:
                out.write("\n".join(part) + "\n")
    return path


def write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2))
