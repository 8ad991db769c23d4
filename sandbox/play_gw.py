"""Google Play sandbox: plays Google's side of Play billing for one-time
products. Independent of src/: pure Python (`cryptography`, stdlib HTTP).

  GET  /oauth2/v3/certs                      the JWKS of the Pub/Sub push signer
  POST /token                                service-account JWT grant (RS256 verified:
                                             iss, aud = this URL, scope, exp <= iat + 3600)
  GET  /androidpublisher/v3/applications/{pkg}/purchases/products/{id}/tokens/{token}
  POST .../tokens/{token}:acknowledge
The test (or a person) drives it through methods: buy() makes a purchase,
void() voids one, push_body()/push_token() make a Pub/Sub push as Google
sends it (a real-time developer notification, signed OIDC token). Fault
switches: ack_fails (acknowledge answers 500), forged tokens (another key,
audience, email, expired, alg none).
"""

import base64
import hashlib
import http.server
import json
import os
import re
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCOPE = "https://www.googleapis.com/auth/androidpublisher"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _uint(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def rs256(key, claims, kid=None, alg="RS256"):
    h = {"alg": alg, "typ": "JWT"}
    if kid:
        h["kid"] = kid
    head = b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(claims).encode())
    if alg == "none":
        return head + "."
    return head + "." + b64url(key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256()))


def _key(state_dir, name):
    """An RSA key: loaded from STATE_DIR/NAME, else made (and kept there)."""
    path = os.path.join(state_dir, name) if state_dir else None
    if path and os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if path:
        os.makedirs(state_dir, exist_ok=True)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        os.replace(path + ".tmp", path)
    return key


class PlayState:
    def __init__(self, package_name, push_audience, push_email, state_dir=None):
        """state_dir: keep Google's push key and the service account's key
        there (made on first use, loaded after)."""
        self.package_name = package_name
        self.push_audience = push_audience
        self.push_email = push_email
        self.push_key = _key(state_dir, "play_push_key.pem")
        self.kid = hashlib.sha256(self.push_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()[:32]
        self.sa_key = _key(state_dir, "play_service_account_key.pem")
        self.sa_email = "paygate@example-project.iam.gserviceaccount.com"
        self.purchases = {}      # token -> dict
        self.tokens = {}         # access token -> expiry
        self.ack_fails = False
        self.calls = []
        self.assertions = []     # the service-account JWTs received (interop checks)
        self.lock = threading.Lock()
        self.base = None

    # -- the operator's files ---------------------------------------------
    def service_account_json(self, path):
        pem = self.sa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        with open(path, "w") as f:
            json.dump({"type": "service_account", "client_email": self.sa_email, "private_key": pem,
                       "token_uri": self.base + "/token", "project_id": "example-project"}, f)
        os.chmod(path, 0o644)
        return path

    def sa_public_pem(self):
        return self.sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def jwks(self):
        n = self.push_key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": _uint(n.n),
                          "e": _uint(n.e)}]}

    # -- purchases ----------------------------------------------------------
    def buy(self, product_id, account_id=None, state=0, package_name=None):
        token = "gp." + b64url(os.urandom(48))
        with self.lock:
            self.purchases[token] = {
                "package": package_name or self.package_name, "product": product_id,
                "purchaseState": state, "acknowledgementState": 0, "consumptionState": 0,
                "orderId": "GPA.%04d-%04d-%04d-%05d" % tuple(int.from_bytes(os.urandom(2), "big") % 10000
                                                            for _ in range(4)),
                "purchaseTimeMillis": str(int(time.time() * 1000) - 3000), "quantity": 1,
                "regionCode": "CN", "kind": "androidpublisher#productPurchase",
            }
            if account_id:
                self.purchases[token]["obfuscatedExternalAccountId"] = account_id
        return token

    def void(self, token):
        with self.lock:
            self.purchases[token]["purchaseState"] = 1

    def acknowledged(self, token):
        return self.purchases[token]["acknowledgementState"] == 1

    # -- Pub/Sub pushes -------------------------------------------------------
    def rtdn(self, kind, token=None, product_id=None, package_name=None):
        n = {"version": "1.0", "packageName": package_name or self.package_name,
             "eventTimeMillis": str(int(time.time() * 1000))}
        if kind == "purchased":
            n["oneTimeProductNotification"] = {"version": "1.0", "notificationType": 1, "purchaseToken": token,
                                               "sku": product_id}
        elif kind == "voided":
            n["voidedPurchaseNotification"] = {"purchaseToken": token, "orderId": self.purchases[token]["orderId"],
                                               "productType": 2, "refundType": 1}
        else:
            n["testNotification"] = {"version": "1.0"}
        return json.dumps({"message": {"data": base64.b64encode(json.dumps(n).encode()).decode(),
                                       "messageId": str(int.from_bytes(os.urandom(6), "big")),
                                       "publishTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                           "subscription": "projects/example-project/subscriptions/play-rtdn"})

    def push_token(self, fault=None):
        now = int(time.time())
        claims = {"iss": "https://accounts.google.com", "aud": self.push_audience, "azp": "1234567890",
                  "email": self.push_email, "email_verified": True, "iat": now, "exp": now + 3600,
                  "sub": "1234567890"}
        key, kid, alg = self.push_key, self.kid, "RS256"
        if fault == "other_key":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif fault == "audience":
            claims["aud"] = "https://attacker.example/push"
        elif fault == "email":
            claims["email"] = "attacker@evil.iam.gserviceaccount.com"
        elif fault == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif fault == "alg_none":
            alg = "none"
        elif fault == "unknown_kid":
            kid = "not-a-google-key"
        return rs256(key, claims, kid, alg)

    # -- the HTTP side ----------------------------------------------------------
    def handle(self, method, path, headers, body):
        self.calls.append((method, path))
        if method == "GET" and path == "/oauth2/v3/certs":
            return 200, self.jwks()
        if method == "POST" and path == "/token":
            return self._token(body)
        m = re.match(r"^/androidpublisher/v3/applications/([^/]+)/purchases/products/([^/]+)/tokens/([^/:]+)"
                     r"(:acknowledge)?$", path)
        if not m:
            return 404, {"error": {"code": 404, "message": "not found"}}
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or self.tokens.get(auth[7:], 0) < time.time():
            return 401, {"error": {"code": 401, "message": "invalid credentials"}}
        pkg, product, token = m.group(1), m.group(2), m.group(3)
        p = self.purchases.get(token)
        if p is None or p["package"] != pkg or p["product"] != product:
            return 404, {"error": {"code": 404, "message": "The purchase token was not found."}}
        if m.group(4):
            if self.ack_fails:
                return 500, {"error": {"code": 500, "message": "backend error"}}
            p["acknowledgementState"] = 1
            return 204, None
        return 200, {k: v for k, v in p.items() if k not in ("package", "product")}

    def _token(self, body):
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        assertion = form.get("assertion", "")
        self.assertions.append(assertion)
        try:
            h, c, s = assertion.split(".")
            self.sa_key.public_key().verify(b64url_dec(s), ("%s.%s" % (h, c)).encode(), padding.PKCS1v15(),
                                            hashes.SHA256())
            claims = json.loads(b64url_dec(c))
            ok = (json.loads(b64url_dec(h)).get("alg") == "RS256" and claims["iss"] == self.sa_email
                  and claims["aud"] == self.base + "/token" and claims["scope"] == SCOPE
                  and claims["exp"] <= claims["iat"] + 3600 and claims["exp"] > time.time())
        except Exception:  # noqa: BLE001
            ok = False
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not ok:
            return 400, {"error": "invalid_grant"}
        tok = "ya29." + b64url(os.urandom(32))
        self.tokens[tok] = time.time() + 3600
        return 200, {"access_token": tok, "expires_in": 3599, "token_type": "Bearer"}


class _Handler(http.server.BaseHTTPRequestHandler):
    def _serve(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        status, obj = self.server.state.handle(method, self.path, self.headers, body)
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def log_message(self, *args):
        pass


def serve(state, host="127.0.0.1", port=0):
    """Starts the sandbox's Google in a thread; returns the server (shutdown() to stop)."""
    srv = http.server.ThreadingHTTPServer((host, port), _Handler)
    srv.state = state
    srv.daemon_threads = True
    state.base = "http://%s:%d" % (host, srv.server_address[1])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
