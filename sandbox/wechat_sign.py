"""WeChat Pay API v2 signing, XML and refund-notification crypto, written
from the published protocol (see /work/shared/PROTOCOLS.md).

string_to_sign: every field except ``sign``, empty values dropped, keys
sorted by their UTF-8 bytes, ``key=value`` joined by ``&``, then
``&key=<API key>`` appended. MD5 -> uppercase hex; HMAC-SHA256 (HMAC key =
the API key) -> uppercase hex. ``sign_type`` is signed like any other field.

XML: v2 messages are a flat ``<xml>`` element whose children hold text or
CDATA. The parser here refuses any DOCTYPE (so no entity can be declared,
let alone fetched), nested elements, and oversized documents.

Refund notifications: ``req_info`` = base64(AES-256-ECB, PKCS#7) of a
``<root>`` document; the AES key is the lowercase hex MD5 of the API key
used as 32 ASCII bytes.
"""

import base64
import binascii
import hashlib
import hmac
import re
import xml.parsers.expat

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)
MAX_XML = 256 * 1024

# Fields WeChat writes as plain text rather than CDATA (amounts and counts).
_PLAIN_RE = re.compile(
    r"(total_fee|cash_fee|settlement_total_fee|coupon_fee(_[0-9]+)?|coupon_count"
    r"|refund_fee(_[0-9]+)?|settlement_refund_fee(_[0-9]+)?|refund_count"
    r"|cash_refund_fee(_[0-9]+)?|coupon_refund_fee(_[0-9]+)?)\Z")


def string_to_sign(params, api_key):
    """The exact text that is hashed: sorted k=v pairs plus &key=API_KEY."""
    items = params.items() if hasattr(params, "items") else params
    kept = {}
    for key, value in items:
        if key == "sign" or value is None:
            continue
        if not isinstance(value, str):
            value = str(value)
        if value == "":
            continue
        kept[key] = value
    keys = sorted(kept, key=lambda k: k.encode("utf-8"))
    body = "&".join("%s=%s" % (k, kept[k]) for k in keys)
    return body + "&key=" + api_key


def digest(text, api_key, sign_type=MD5):
    data = text.encode("utf-8")
    if sign_type == MD5:
        return hashlib.md5(data).hexdigest().upper()
    if sign_type == HMAC_SHA256:
        return hmac.new(api_key.encode("utf-8"), data, hashlib.sha256).hexdigest().upper()
    raise ValueError("unknown sign_type %r" % (sign_type,))


def sign(params, api_key, sign_type=MD5):
    """Uppercase hex sign of params (a dict or list of pairs of str)."""
    return digest(string_to_sign(params, api_key), api_key, sign_type)


def sign_type_of(params, default=MD5):
    """The algorithm a message names in its sign_type field (absent -> default)."""
    value = params.get("sign_type")
    return value if value else default


def verify(params, api_key, sign_type=None):
    """True when params['sign'] is right for the message's (or the given) sign_type."""
    given = params.get("sign")
    if not given or not isinstance(given, str):
        return False
    algo = sign_type or sign_type_of(params)
    if algo not in SIGN_TYPES:
        return False
    return hmac.compare_digest(given, sign(params, api_key, algo))


# --------------------------------------------------------------------------
# XML


class XmlError(ValueError):
    pass


def parse_xml(data, root="xml", max_size=MAX_XML):
    """Flat v2 XML -> dict of str. Refuses DOCTYPE/entities, nesting, duplicates."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > max_size:
        raise XmlError("document too large")
    if not data.strip():
        raise XmlError("empty document")
    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    state = {"depth": 0, "root": None, "key": None, "text": [], "fields": {}}

    def refuse(*_args):
        raise XmlError("DOCTYPE and entity declarations are not allowed")

    def start(name, _attrs):
        state["depth"] += 1
        if state["depth"] == 1:
            state["root"] = name
            if name != root:
                raise XmlError("root element must be <%s>" % root)
        elif state["depth"] == 2:
            state["key"] = name
            state["text"] = []
        else:
            raise XmlError("nested element <%s> inside <%s>" % (name, state["key"]))

    def end(_name):
        if state["depth"] == 2:
            key = state["key"]
            if key in state["fields"]:
                raise XmlError("element <%s> given twice" % key)
            state["fields"][key] = "".join(state["text"])
            state["key"] = None
        state["depth"] -= 1

    def chars(text):
        if state["depth"] == 2:
            state["text"].append(text)
        elif state["depth"] == 1 and text.strip():
            raise XmlError("text directly inside <%s>" % root)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SkippedEntityHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise XmlError("malformed XML: %s" % exc)
    if state["root"] is None:
        raise XmlError("no root element")
    return state["fields"]


def _cdata(value):
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(fields, root="xml"):
    """dict -> v2 XML text: amounts/counts as plain text, everything else CDATA."""
    parts = ["<%s>" % root]
    for key, value in fields.items():
        if value is None:
            continue
        value = value if isinstance(value, str) else str(value)
        if _PLAIN_RE.match(key) and value.isdigit():
            inner = value
        else:
            inner = _cdata(value)
        parts.append("<%s>%s</%s>" % (key, inner, key))
    parts.append("</%s>" % root)
    return "".join(parts)


# --------------------------------------------------------------------------
# Refund notification req_info


def refund_aes_key(api_key):
    """The 32 ASCII bytes of the lowercase hex MD5 of the API key."""
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().lower().encode("ascii")


def encrypt_req_info(plain_xml, api_key):
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain_xml.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(refund_aes_key(api_key)), modes.ECB()).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode("ascii")


def decrypt_req_info(b64, api_key):
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("req_info is not base64")
    if not raw or len(raw) % 16:
        raise ValueError("req_info length is not a multiple of the AES block")
    dec = Cipher(algorithms.AES(refund_aes_key(api_key)), modes.ECB()).decryptor()
    data = dec.update(raw) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(data) + unpadder.finalize()).decode("utf-8")
