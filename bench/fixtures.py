"""What every benchmark needs: keys, a PEM- and a JWKS-backed trusted issuer, an application, subject tokens.

Keys live in the bench work folder (``var/bench/`` by default) and are generated once.
Subject tokens are minted here, before any load is driven, by several processes.
The bench issuers keep the product defaults, jti replay protection included, so
each minted token can be exchanged exactly once.
"""

import json
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.factories import mint, new_key, public_jwk

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
        key = new_key(kind)
        path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        path.chmod(0o600)
    return path


def load_key(path):
    """The private key in the PEM file at ``path``."""
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def jwks_document(key):
    """The JWKS the bench JWKS issuer serves: ``key``'s public half as RS256 signing key ``JWKS_KID``."""
    return {"keys": [public_jwk(key, JWKS_KID, alg="RS256", use="sig")]}


def _mint_chunk(args):
    key_path, issuer, kid, count, audience, lifetime = args
    key = load_key(key_path)
    now = int(time.time())
    return [mint(key, issuer, kid=kid, alg="RS256", sub="bench-user-" + uuid.uuid4().hex[:8], aud=audience,
                 iat=now, exp=now + lifetime) for _ in range(count)]


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
