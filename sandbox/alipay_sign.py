"""Alipay open-platform signing rules, written from the published protocol.

string_to_sign: every parameter except ``sign`` (and, for notifications and
return parameters, also ``sign_type``), empty values dropped, keys sorted by
their UTF-8 bytes, ``key=value`` joined by ``&``, values raw (not URL-encoded).

RSA2 = SHA256withRSA, PKCS#1 v1.5 padding, standard base64 of the signature.

Keys are accepted as PEM (PKCS#1 or PKCS#8 private keys, SPKI or PKCS#1
public keys) or as bare base64 of the DER, which is what Alipay's key tool
exports.
"""

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def string_to_sign(params, drop_sign_type=False):
    """Build the text Alipay signs from a dict (or list of pairs) of str."""
    items = params.items() if hasattr(params, "items") else params
    kept = {}
    for key, value in items:
        if key == "sign":
            continue
        if drop_sign_type and key == "sign_type":
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            value = str(value)
        if value == "":
            continue
        kept[key] = value
    keys = sorted(kept, key=lambda k: k.encode("utf-8"))
    return "&".join("%s=%s" % (k, kept[k]) for k in keys)


def _as_bytes(data):
    if isinstance(data, bytes):
        return data
    return data.encode("ascii")


def _bare_der(data):
    """Decode bare base64 DER (no PEM armour); None when it is not that."""
    text = b"".join(_as_bytes(data).split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def load_private_key(key):
    """A private key object from PEM (PKCS#1/PKCS#8) or bare base64 DER."""
    if not isinstance(key, (str, bytes)):
        return key
    raw = _as_bytes(key)
    if b"-----BEGIN" in raw:
        return serialization.load_pem_private_key(raw, password=None)
    der = _bare_der(raw)
    if der is None:
        raise ValueError("private key is neither PEM nor base64 DER")
    return serialization.load_der_private_key(der, password=None)


def load_public_key(key):
    """A public key object from PEM (SPKI/PKCS#1) or bare base64 DER."""
    if not isinstance(key, (str, bytes)):
        return key
    raw = _as_bytes(key)
    if b"-----BEGIN" in raw:
        return serialization.load_pem_public_key(raw)
    der = _bare_der(raw)
    if der is None:
        raise ValueError("public key is neither PEM nor base64 DER")
    return serialization.load_der_public_key(der)


def rsa2_sign(private_pem, text):
    """SHA256withRSA (PKCS#1 v1.5) over the UTF-8 text; standard base64."""
    key = load_private_key(private_pem)
    data = text.encode("utf-8") if isinstance(text, str) else text
    signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa2_verify(public_pem, text, b64):
    """True when b64 is a valid RSA2 signature of text under the key."""
    if not b64 or not isinstance(b64, (str, bytes)):
        return False
    try:
        signature = base64.b64decode(_as_bytes(b64), validate=True)
    except (binascii.Error, ValueError):
        return False
    key = load_public_key(public_pem)
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def sign_params(private_pem, params, drop_sign_type):
    """Return the base64 RSA2 signature of params' string_to_sign."""
    return rsa2_sign(private_pem, string_to_sign(params, drop_sign_type))


def verify_params(public_pem, params, drop_sign_type):
    """Verify params['sign'] over the other parameters."""
    return rsa2_verify(public_pem, string_to_sign(params, drop_sign_type),
                       params.get("sign", ""))
