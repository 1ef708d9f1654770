"""A local OpenID Connect issuer for `make demo` and the tests on the node: discovery document and
JWKS, and ES256 tokens for demo users. Development only - it signs whatever it is asked to.

    python demo_issuer.py serve --dir DIR --port PORT     # http://127.0.0.1:PORT, runs until stopped
    python demo_issuer.py serve --dir DIR --port PORT --host 10.244.0.1 --tls
        # https://10.244.0.1:PORT with a certificate from a CA of its own, written to DIR/ca.crt:
        # pods trust it through an McpTenant's spec.auth.issuerCaRef (a ConfigMap holding ca.crt)
    python demo_issuer.py token --dir DIR --issuer URL --aud URL --tenant NAME --roles analyst[,manager] [--hours 8]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import os
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KID = "mcp-fleet-demo"


def b64url(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def load_key(directory: str) -> ec.EllipticCurvePrivateKey:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "issuer-key.pem")
    if not os.path.exists(path):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def jwks(key: ec.EllipticCurvePrivateKey) -> dict:
    nums = key.public_key().public_numbers()
    return {"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID, "x": b64url(nums.x), "y": b64url(nums.y)}]}


def write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def tls_context(directory: str, host: str) -> ssl.SSLContext:
    """A CA of this issuer's own (DIR/ca.crt) and a serving certificate for `host` it signed."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-fleet demo issuer CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    try:
        san = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(os.path.join(directory, "ca.crt"), "wb") as f:
        f.write(ca.public_bytes(pem))
    write_private(os.path.join(directory, "tls.crt"), cert.public_bytes(pem) + ca.public_bytes(pem))
    write_private(
        os.path.join(directory, "tls.key"),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key"))
    return ctx


def serve(directory: str, port: int, host: str, tls: bool) -> None:
    key = load_key(directory)
    issuer = f"{'https' if tls else 'http'}://{host}:{port}"
    keys = json.dumps(jwks(key)).encode()
    discovery = json.dumps({
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks",
        "id_token_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    }).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            body = {"/jwks": keys, "/.well-known/openid-configuration": discovery}.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    # The CA is written before the port opens: whoever sees the port open finds DIR/ca.crt.
    ctx = tls_context(directory, host) if tls else None
    server = ThreadingHTTPServer((host, port), Handler)
    if ctx:
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"demo issuer at {issuer}", flush=True)
    server.serve_forever()


def token(directory: str, issuer: str, aud: str, tenant: str, roles: list[str], subject: str, hours: float) -> str:
    key = load_key(directory)
    now = int(time.time())
    claims = {"iss": issuer, "aud": aud, "sub": subject, "tenant": tenant, "roles": roles, "iat": now, "nbf": now - 5, "exp": now + int(hours * 3600)}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": KID})


def main() -> None:
    p = argparse.ArgumentParser(description="Local OIDC issuer for the mcp-fleet demo (development only)")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve discovery and JWKS")
    s.add_argument("--dir", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on and to name in the issuer URL")
    s.add_argument("--tls", action="store_true", help="serve HTTPS with a certificate from a CA written to DIR/ca.crt")
    t = sub.add_parser("token", help="print a signed token")
    t.add_argument("--dir", required=True)
    t.add_argument("--issuer", required=True)
    t.add_argument("--aud", required=True)
    t.add_argument("--tenant", required=True)
    t.add_argument("--roles", default="analyst")
    t.add_argument("--subject", default="demo-user")
    t.add_argument("--hours", type=float, default=8)
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a.dir, a.port, a.host, a.tls)
    else:
        print(token(a.dir, a.issuer, a.aud, a.tenant, [r for r in a.roles.split(",") if r], a.subject, a.hours))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
