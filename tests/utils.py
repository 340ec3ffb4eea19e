"""Test helpers: keys, subject-token minting, a real JWKS server on 127.0.0.1, request helpers."""

import base64
import datetime
import json
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from jwt import PyJWKSet
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
FORM = "application/x-www-form-urlencoded"

_KEY_CACHE = {}


def private_key(kind="rsa", name="default"):
    """A private key, generated once per test session for each (kind, name)."""
    marker = (kind, name)
    if marker not in _KEY_CACHE:
        if kind == "rsa":
            _KEY_CACHE[marker] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "rsa1024":
            _KEY_CACHE[marker] = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        elif kind == "ec":
            _KEY_CACHE[marker] = ec.generate_private_key(ec.SECP256R1())
        elif kind == "ec384":
            _KEY_CACHE[marker] = ec.generate_private_key(ec.SECP384R1())
        elif kind == "ed25519":
            _KEY_CACHE[marker] = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(kind)
    return _KEY_CACHE[marker]


def default_alg(key):
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]
    return "EdDSA"


def certificate_for(key, *, days=365, not_before=None, common_name="Test issuer"):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    start = not_before or now - datetime.timedelta(days=1)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .sign(key, algorithm)
    )


def certificate_pem(key, **kwargs):
    return certificate_for(key, **kwargs).public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_der(key, **kwargs):
    return certificate_for(key, **kwargs).public_bytes(serialization.Encoding.DER)


def public_jwk(key, kid, **extra):
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    jwk.pop("key_ops", None)
    jwk["kid"] = kid
    jwk.update(extra)
    return jwk


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims_for(issuer, **overrides):
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "alice",
        "aud": settings.CONSOLE_ISSUER,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


DROP = object()


def mint(key, issuer="https://issuer.test", *, kid=None, alg=None, headers=None, **claims):
    """A subject token signed by ``key`` with sensible default claims (override or DROP them)."""
    header = {"typ": "JWT"}
    if kid:
        header["kid"] = kid
    header.update(headers or {})
    return jwt.encode(claims_for(issuer, **claims), key, algorithm=alg or default_alg(key), headers=header)


def raw_token(header, claims, signature=b"sig"):
    """A token assembled by hand (for shapes PyJWT refuses to produce)."""
    segment = lambda value: value if isinstance(value, str) else b64url(json.dumps(value))  # noqa: E731
    return f"{segment(header)}.{segment(claims)}.{b64url(signature)}"


def basic_auth(client_id, client_secret):
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def exchange_body(subject_token, **extra):
    body = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": JWT_TYPE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def post_form(client, path, data, **headers):
    """POST an application/x-www-form-urlencoded body (a dict or a list of pairs)."""
    return client.post(path, urlencode(data, doseq=True), content_type=FORM, **headers)


def assert_oauth_error(response, status, error):
    """Every token-endpoint error: the status, RFC 6749 JSON, no-store, no token, a safe description."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    description = body.get("error_description", "")
    assert all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in description), description
    return body


class JWKSServer:
    """A real HTTP server on 127.0.0.1 serving a JWKS document; counts and records requests."""

    def __init__(self):
        self.document = {"keys": []}
        self.status = HTTPStatus.OK
        self.body = None  # raw bytes overriding the document
        self.headers = {}
        self.delay = 0.0
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append({"path": self.path, "headers": dict(self.headers)})
                if outer.delay:
                    time.sleep(outer.delay)
                body = outer.body if outer.body is not None else json.dumps(outer.document).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in outer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def serve_keys(self, *pairs, **extra):
        """serve_keys((key, kid), ...) publishes those keys' public halves."""
        self.document = {"keys": [public_jwk(key, kid, **extra) for key, kid in pairs]}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def assert_subject_rejected(response, cause, *, issued_before=0):
    """A subject-token rejection: 400 invalid_request, the cause's fixed sentence, no token, the cause recorded."""
    from exchange.models import AccessToken, ExchangeEvent
    from exchange.subject_token import CAUSES

    body = assert_oauth_error(response, HTTPStatus.BAD_REQUEST, "invalid_request")
    assert body["error_description"] == CAUSES[cause], body
    assert AccessToken.objects.count() == issued_before
    assert ExchangeEvent.objects.order_by("-pk").first().cause == cause
    return body


class RawServer:
    """A TCP server on 127.0.0.1 whose connections are handed to ``handle(conn)``: for misbehaving HTTP peers."""

    def __init__(self, handle):
        import socket

        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.closed = threading.Event()

        def serve():
            while not self.closed.is_set():
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                self.connections += 1
                threading.Thread(target=self._run, args=(handle, conn), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def _run(self, handle, conn):
        try:
            conn.settimeout(10)
            conn.recv(65536)
            handle(conn, self.closed)
        except OSError:
            pass
        finally:
            conn.close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/jwks.json"

    def close(self):
        self.closed.set()
        self.sock.close()


def verify_issued(client, access_token):
    """Verify an issued token with the keys published at /oauth2/jwks, as a resource server would."""
    keys = PyJWKSet.from_dict(client.get("/oauth2/jwks").json())
    header = jwt.get_unverified_header(access_token)
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    return header, jwt.decode(access_token, key, algorithms=[header["alg"]], audience=jwt.decode(
        access_token, options={"verify_signature": False})["aud"], issuer=settings.CONSOLE_ISSUER)
