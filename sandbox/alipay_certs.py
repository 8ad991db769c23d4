"""Alipay public-key certificate mode for the sandbox.

The sandbox is its own "Ant" CA, laid out like Alipay's downloads:
  alipayRootCert.crt            root bundle: an RSA sha256 root, an ECDSA root
                                (stands for Alipay's SM2 root: left out of the
                                root SN) and an RSA sha384 root
  alipayCertPublicKey_RSA2.crt  Alipay's certificate (the sandbox's Alipay key)
                                followed by the CA that issued it
  appCertPublicKey_<app_id>.crt the merchant app's certificate, issued for the
                                app public key the sandbox was started with
Files live in <state>/alipay_certs/ and are kept across restarts.

SN rules as Alipay publishes them (its SDKs): MD5 hex of the issuer written
from its last attribute to its first ("CN=..,OU=..,O=..,C=..") followed by the
serial number in decimal; the root SN joins with "_" the SNs of the root
bundle's certificates signed with RSA (OID arc 1.2.840.113549.1.1).
"""

import datetime
import hashlib
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ROOT_FILE = "alipayRootCert.crt"
ALIPAY_FILE = "alipayCertPublicKey_RSA2.crt"
RSA_SIG_ARC = "1.2.840.113549.1.1."
SHORT = {
    NameOID.COMMON_NAME.dotted_string: "CN",
    NameOID.COUNTRY_NAME.dotted_string: "C",
    NameOID.LOCALITY_NAME.dotted_string: "L",
    NameOID.STATE_OR_PROVINCE_NAME.dotted_string: "ST",
    NameOID.ORGANIZATION_NAME.dotted_string: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string: "OU",
    NameOID.EMAIL_ADDRESS.dotted_string: "E",
}


def cert_sn(cert):
    attrs = [a for rdn in cert.issuer.rdns for a in rdn]
    issuer = ",".join("%s=%s" % (SHORT.get(a.oid.dotted_string, ""), a.value)
                      for a in reversed(attrs))
    return hashlib.md5((issuer + str(cert.serial_number)).encode("utf-8")).hexdigest()


def root_sn(certs):
    return "_".join(cert_sn(c) for c in certs
                    if c.signature_algorithm_oid.dotted_string.startswith(RSA_SIG_ARC))


def _name(cn, ou="Certification Authority", org="Sandbox Ant Financial"):
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, public_key, signer, algo, ca, days=3650):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=days)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(signer, algo)


def _load_all(data):
    """Every certificate of a PEM file (cryptography < 39 has no
    load_pem_x509_certificates)."""
    marker = b"-----END CERTIFICATE-----"
    blocks = [b + marker for b in data.split(marker) if b"-----BEGIN CERTIFICATE-----" in b]
    if not blocks:
        raise ValueError("no certificate")
    return [x509.load_pem_x509_certificate(b.strip() + b"\n") for b in blocks]


def _pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


class CertMode:
    """Certificates and SNs of the sandbox's certificate mode."""

    def __init__(self, state_dir, app_id, app_public_pem, alipay_private_pem):
        self.dir = os.path.join(state_dir, "alipay_certs")
        self.app_id = app_id
        self.app_file = "appCertPublicKey_%s.crt" % app_id
        os.makedirs(self.dir, exist_ok=True)
        app_key = serialization.load_pem_public_key(app_public_pem)
        alipay_key = serialization.load_pem_private_key(alipay_private_pem, password=None)
        if not self._load(app_key, alipay_key):
            self._make(app_key, alipay_key)
            self._load(app_key, alipay_key)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _load(self, app_key, alipay_key):
        try:
            with open(self.path(ROOT_FILE), "rb") as f:
                self.roots = _load_all(f.read())
            with open(self.path(ALIPAY_FILE), "rb") as f:
                self.alipay_chain = _load_all(f.read())
            with open(self.path(self.app_file), "rb") as f:
                self.app_cert = x509.load_pem_x509_certificate(f.read())
        except (OSError, ValueError):
            return False
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        if (self.app_cert.public_key().public_bytes(enc, spki) != app_key.public_bytes(enc, spki)
                or self.alipay_chain[0].public_key().public_bytes(enc, spki)
                != alipay_key.public_key().public_bytes(enc, spki)):
            return False
        self.app_cert_sn = cert_sn(self.app_cert)
        self.alipay_cert_sn = cert_sn(self.alipay_chain[0])
        self.root_cert_sn = root_sn(self.roots)
        return True

    def _make(self, app_key, alipay_key):
        root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        old_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        root_name = _name("Sandbox Ant Financial Certification Authority R1")
        root = _cert(root_name, root_name, root_key.public_key(), root_key, hashes.SHA256(), True)
        ec_name = _name("Sandbox Ant Financial Certification Authority E1")
        ec_root = _cert(ec_name, ec_name, ec_key.public_key(), ec_key, hashes.SHA256(), True)
        old_name = _name("Sandbox Ant Financial Certification Authority Class 1 R1")
        old_root = _cert(old_name, old_name, old_key.public_key(), old_key, hashes.SHA384(), True)
        ca_name = _name("Sandbox Ant Financial Certification Authority Class 2 R1")
        ca = _cert(ca_name, root_name, ca_key.public_key(), root_key, hashes.SHA256(), True)
        alipay = _cert(_name("2088102177846880", "Alipay Open Platform", "Sandbox Alipay"), ca_name,
                       alipay_key.public_key(), ca_key, hashes.SHA256(), False)
        app = _cert(_name(self.app_id, "Alipay", "paygate sandbox merchant"), ca_name,
                    app_key, ca_key, hashes.SHA256(), False, days=365)
        for name, data in ((ROOT_FILE, _pem(ec_root, root, old_root)),
                           (ALIPAY_FILE, _pem(alipay, ca)), (self.app_file, _pem(app))):
            tmp = self.path(name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path(name))

    def describe(self):
        return {"app_cert": self.path(self.app_file), "alipay_cert": self.path(ALIPAY_FILE),
                "alipay_root_cert": self.path(ROOT_FILE), "app_cert_sn": self.app_cert_sn,
                "alipay_cert_sn": self.alipay_cert_sn, "alipay_root_cert_sn": self.root_cert_sn}
