"""A local OpenID Connect issuer for `make demo`: discovery document and JWKS over HTTP on
127.0.0.1, and ES256 tokens for demo users. Development only - it signs whatever it is asked to.

    python demo_issuer.py serve --dir DIR --port PORT     # runs until stopped
    python demo_issuer.py token --dir DIR --issuer URL --aud URL --tenant NAME --roles analyst[,manager] [--hours 8]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

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


def serve(directory: str, port: int) -> None:
    key = load_key(directory)
    issuer = f"http://127.0.0.1:{port}"
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

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
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
    s = sub.add_parser("serve", help="serve discovery and JWKS on 127.0.0.1")
    s.add_argument("--dir", required=True)
    s.add_argument("--port", type=int, required=True)
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
        serve(a.dir, a.port)
    else:
        print(token(a.dir, a.issuer, a.aud, a.tenant, [r for r in a.roles.split(",") if r], a.subject, a.hours))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
