"""App Store sandbox: plays Apple's side of in-app purchases.

Independent of src/: pure Python with `cryptography`. It keeps its own test
PKI (a root shaped like Apple Root CA - G3, an intermediate carrying Apple's
WWDR OID 1.2.840.113635.100.6.2.1, a P-256 signing leaf carrying
1.2.840.113635.100.6.11.1) and signs, as Apple does (JWS compact form, alg
ES256 with the raw r||s signature, x5c = [leaf, intermediate, root] in
standard base64 DER):
  - StoreKit 2 transactions (what the app hands to the shop's backend),
  - App Store Server Notifications V2 ({"signedPayload": JWS} whose data
    carries another JWS, signedTransactionInfo).
Faults for the attack tests: a chain to another root, a leaf without the
OID, an expired leaf, a tampered payload, alg none / HS256, another bundle.

Use as a library (tests) or `python3 sandbox/appstore_gw.py DIR` to write the
PKI into DIR (root.pem is what paygate's [appstore] root_cert names).
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

OID_LEAF = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
OID_WWDR = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sandbox Apple Inc."),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "US")])


def _cert(subject, key, issuer, issuer_key, ca, oid=None, not_before=None, not_after=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before or now - datetime.timedelta(days=1))
         .not_valid_after(not_after or now + datetime.timedelta(days=3650))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                      key_encipherment=False, data_encipherment=False,
                                      key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                      encipher_only=False, decipher_only=False), critical=True))
    if oid is not None:
        b = b.add_extension(x509.UnrecognizedExtension(oid, b"\x05\x00"), critical=False)
    return b.sign(issuer_key, hashes.SHA384())


def _write(path, data, mode):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class Chain:
    """A leaf key and the x5c list that goes with it."""

    def __init__(self, leaf_key, certs):
        self.key = leaf_key
        self.certs = certs

    def x5c(self):
        return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in self.certs]


class AppleSigner:
    """The sandbox's Apple: a PKI and the signing of Apple's JWS."""

    ROOT_CN = "Sandbox Apple Root CA - G3"
    WWDR_CN = "Sandbox Apple Worldwide Developer Relations CA - G6"
    LEAF_CN = "Sandbox Prod ECC Mac App Store and iTunes Store Receipt Signing"

    def __init__(self, bundle_id="com.example.shop", app_apple_id=1234567890, environment="Production",
                 state_dir=None):
        """state_dir: keep the PKI there (made on first use, loaded after),
        so that a restarted sandbox signs under the root paygate trusts."""
        self.bundle_id = bundle_id
        self.app_apple_id = app_apple_id
        self.environment = environment
        self._faults = {}
        if state_dir and self._load(state_dir):
            return
        p384, p256 = ec.SECP384R1(), ec.SECP256R1()
        self.root_key = ec.generate_private_key(p384)
        self.root = _cert(self.ROOT_CN, self.root_key, self.ROOT_CN, self.root_key, True)
        self.wwdr_key = ec.generate_private_key(p384)
        self.wwdr = _cert(self.WWDR_CN, self.wwdr_key, self.ROOT_CN, self.root_key, True, OID_WWDR)
        leaf_key = ec.generate_private_key(p256)
        self.good = Chain(leaf_key, [_cert(self.LEAF_CN, leaf_key, self.WWDR_CN, self.wwdr_key, False, OID_LEAF),
                                     self.wwdr, self.root])
        if state_dir:
            self._save(state_dir)

    _FILES = ("appstore_root", "appstore_wwdr", "appstore_leaf")

    def _load(self, directory):
        paths = [os.path.join(directory, n + ext) for n in self._FILES for ext in (".pem", "_key.pem")]
        if not all(os.path.exists(p) for p in paths):
            return False
        objs = []
        for n in self._FILES:
            with open(os.path.join(directory, n + ".pem"), "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            with open(os.path.join(directory, n + "_key.pem"), "rb") as f:
                key = serialization.load_pem_private_key(f.read(), None)
            objs.append((cert, key))
        (self.root, self.root_key), (self.wwdr, self.wwdr_key), (leaf, leaf_key) = objs
        self.good = Chain(leaf_key, [leaf, self.wwdr, self.root])
        return True

    def _save(self, directory):
        os.makedirs(directory, exist_ok=True)
        pairs = [(self.root, self.root_key), (self.wwdr, self.wwdr_key), (self.good.certs[0], self.good.key)]
        for n, (cert, key) in zip(self._FILES, pairs):
            _write(os.path.join(directory, n + "_key.pem"),
                   key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()), 0o600)
            _write(os.path.join(directory, n + ".pem"), cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def write(self, directory):
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "appstore_root.pem")
        with open(path, "wb") as f:
            f.write(self.root.public_bytes(serialization.Encoding.PEM))
        return path

    # -- broken chains (made on first use) --------------------------------
    def chain(self, fault=None):
        if fault is None:
            return self.good
        if fault not in self._faults:
            self._faults[fault] = self._make_fault(fault)
        return self._faults[fault]

    def _make_fault(self, fault):
        p384, p256 = ec.SECP384R1(), ec.SECP256R1()
        k = ec.generate_private_key(p256)
        if fault == "other_root":
            rk = ec.generate_private_key(p384)
            root = _cert(self.ROOT_CN, rk, self.ROOT_CN, rk, True)
            ik = ec.generate_private_key(p384)
            inter = _cert(self.WWDR_CN, ik, self.ROOT_CN, rk, True, OID_WWDR)
            leaf = _cert(self.LEAF_CN, k, self.WWDR_CN, ik, False, OID_LEAF)
            return Chain(k, [leaf, inter, self.root])   # claims our root as its third element
        if fault == "leaf_without_oid":
            return Chain(k, [_cert(self.LEAF_CN, k, self.WWDR_CN, self.wwdr_key, False), self.wwdr, self.root])
        if fault == "expired":
            old = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
            return Chain(k, [_cert(self.LEAF_CN, k, self.WWDR_CN, self.wwdr_key, False, OID_LEAF,
                                   old, old + datetime.timedelta(days=365)), self.wwdr, self.root])
        raise ValueError("unknown fault " + fault)

    # -- JWS -------------------------------------------------------------
    def sign(self, payload, fault=None):
        """Compact JWS of payload (a dict). fault: None, other_root,
        leaf_without_oid, expired, tampered, alg_none, hs256."""
        if fault in ("alg_none", "hs256"):
            alg = "none" if fault == "alg_none" else "HS256"
            h = b64url(json.dumps({"alg": alg, "x5c": self.good.x5c()}).encode())
            b = b64url(json.dumps(payload).encode())
            if alg == "none":
                return "%s.%s." % (h, b)
            mac = hmac.new(base64.b64decode(self.good.x5c()[0]), ("%s.%s" % (h, b)).encode(), hashlib.sha256)
            return "%s.%s.%s" % (h, b, b64url(mac.digest()))
        ch = self.chain(fault if fault not in (None, "tampered") else None)
        h = b64url(json.dumps({"alg": "ES256", "x5c": ch.x5c()}).encode())
        b = b64url(json.dumps(payload).encode())
        der = ch.key.sign(("%s.%s" % (h, b)).encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        if fault == "tampered":
            p = dict(payload)
            p["price"] = 10
            b = b64url(json.dumps(p).encode())
        return "%s.%s.%s" % (h, b, sig)

    # -- Apple's payloads ------------------------------------------------
    def transaction(self, product_id, app_account_token=None, transaction_id=None, price_milli=98000,
                    currency="CNY", revoked=False, **over):
        now_ms = int(time.time() * 1000)
        tid = transaction_id or str(2000000000000000 + int.from_bytes(os.urandom(5), "big"))
        tx = {
            "transactionId": tid, "originalTransactionId": tid, "bundleId": self.bundle_id,
            "productId": product_id, "purchaseDate": now_ms - 5000, "originalPurchaseDate": now_ms - 5000,
            "quantity": 1, "type": "Non-Consumable", "inAppOwnershipType": "PURCHASED",
            "signedDate": now_ms, "environment": self.environment, "transactionReason": "PURCHASE",
            "storefront": "CHN", "storefrontId": "143465", "price": price_milli, "currency": currency,
        }
        if app_account_token:
            tx["appAccountToken"] = app_account_token
        if revoked:
            tx["revocationDate"] = now_ms
            tx["revocationReason"] = 0
        tx.update(over)
        return tx

    def notification(self, notification_type, tx=None, subtype=None, fault=None, inner_fault=None,
                     bundle_id=None, notification_uuid=None):
        """The POST body Apple sends: {"signedPayload": JWS}."""
        data = {"appAppleId": self.app_apple_id, "bundleId": bundle_id or self.bundle_id,
                "bundleVersion": "1", "environment": self.environment}
        if tx is not None:
            data["signedTransactionInfo"] = self.sign(tx, inner_fault)
        p = {"notificationType": notification_type, "notificationUUID": notification_uuid or str(uuid.uuid4()),
             "data": data, "version": "2.0", "signedDate": int(time.time() * 1000)}
        if subtype:
            p["subtype"] = subtype
        return json.dumps({"signedPayload": self.sign(p, fault)})


class AppStoreServerApi:
    """The App Store Server API's GET /inApps/v1/transactions/{id}: the
    bearer token must be an ES256 JWT of the issued key (header kid; claims
    iss, aud "appstoreconnect-v1", bid, iat, exp <= iat + 3600, not
    expired); the answer is the transaction signed by the signer."""

    def __init__(self, signer, issuer_id="57246542-96fe-1a63-e053-0824d011072a", key_id="2X9R4HXF34",
                 p8_path=None):
        """p8_path: the In-App Purchase key the merchant downloads, kept
        there (made on first use, loaded after)."""
        self.signer = signer
        self.issuer_id = issuer_id
        self.key_id = key_id
        if p8_path and os.path.exists(p8_path):
            with open(p8_path, "rb") as f:
                self.key = serialization.load_pem_private_key(f.read(), None)
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())
            if p8_path:
                _write(p8_path, self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()), 0o600)
        self.transactions = {}
        self.calls = []
        self.tokens = []         # the bearer tokens received (interop checks)
        self.base = None

    def write_p8(self, path):
        with open(path, "wb") as f:
            f.write(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        os.chmod(path, 0o644)
        return path

    def public_pem(self):
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def add(self, tx):
        self.transactions[tx["transactionId"]] = tx

    def _auth_ok(self, auth):
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
        try:
            h, c, sig = auth[len("Bearer "):].split(".")
            head = json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))
            claims = json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)))
            raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
            if head.get("alg") != "ES256" or head.get("kid") != self.key_id or len(raw) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            self.key.public_key().verify(der, ("%s.%s" % (h, c)).encode(), ec.ECDSA(hashes.SHA256()))
            now = time.time()
            return (claims["iss"] == self.issuer_id and claims["aud"] == "appstoreconnect-v1"
                    and claims["bid"] == self.signer.bundle_id and claims["exp"] <= claims["iat"] + 3600
                    and claims["exp"] > now and claims["iat"] <= now + 60)
        except Exception:  # noqa: BLE001
            return False

    def handle(self, method, path, headers):
        self.calls.append((method, path))
        self.tokens.append(headers.get("Authorization", "")[len("Bearer "):])
        if not self._auth_ok(headers.get("Authorization", "")):
            return 401, {"errorCode": 4010000, "errorMessage": "Unauthenticated"}
        prefix = "/inApps/v1/transactions/"
        if method != "GET" or not path.startswith(prefix):
            return 404, {"errorCode": 4040000, "errorMessage": "Not found"}
        tx = self.transactions.get(path[len(prefix):])
        if tx is None:
            return 404, {"errorCode": 4040010, "errorMessage": "Transaction id not found."}
        return 200, {"signedTransactionInfo": self.signer.sign(tx)}


def serve_api(api, host="127.0.0.1", port=0):
    """The App Store Server API in a thread (plain HTTP on loopback); sets api.base."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, obj = api.handle("GET", self.path, self.headers)
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer((host, port), Handler)
    srv.daemon_threads = True
    api.base = "http://%s:%d" % (host, srv.server_address[1])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


if __name__ == "__main__":
    s = AppleSigner()
    print(s.write(sys.argv[1] if len(sys.argv) > 1 else "."))
