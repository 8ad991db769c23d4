"""The WeChat Pay API v3 side of the sandbox (JSON, SHA256withRSA, AES-256-GCM).

It shares the trades, refunds, "phone" pages, notification retries and fault
switches of the v2 provider (wechat_gw.WechatProvider): a trade made through
v3 carries "api": "v3" and is notified in the v3 format. What is its own:

- the calls /v3/pay/transactions/native|jsapi|h5, query by out_trade_no,
  close, /v3/refund/domestic/refunds (+ query), /v3/certificates; every
  request's Authorization header is verified against the merchant API
  certificate (the same certificate as v2's mutual TLS; v3 has no mutual TLS);
- its own WeChat Pay key pair in two modes: "pubkey" (replies and
  notifications signed under the WeChat Pay public key ID PUB_KEY_ID_...,
  the mode a merchant opened today has) and "platform" (signed by a platform
  certificate, Wechatpay-Serial = its serial, listed by /v3/certificates);
- notifications {id, create_time, event_type, resource_type, summary,
  resource {algorithm AEAD_AES_256_GCM, ciphertext, nonce, associated_data,
  original_type}}, acknowledged by HTTP 200/204;
- control API under /_sandbox/wechat_v3/: config (GET; POST {"mode"}),
  notify (a hand-made, possibly broken, payment notification), refund_notify.

Pure Python with `cryptography`; independent of src/.
"""

import base64
import datetime
import gzip
import hashlib
import json
import os
import re
import secrets
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

import core
from core import BEIJING, BadRequest, Response, beijing_now, json_response, log
from wechat_gw import MD5, BizFail, ReturnFail, nonce, uuid_hex
from wechat_v3_transfer import MchTransfers

AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
CLOCK_SKEW = 300
BILL_URL_TTL = 30.0
BILL_FAULTS = (None, "hash_mismatch")
JSON_CTYPE = "application/json; charset=utf-8"
OUT_TRADE_NO_RE = re.compile(r"[A-Za-z0-9_\-|*]{6,32}\Z")
RFC3339_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")
KINDS = {"native": "NATIVE", "jsapi": "JSAPI", "h5": "MWEB"}
V2_TO_V3_REFUND = {"PROCESSING": "PROCESSING", "SUCCESS": "SUCCESS", "REFUNDCLOSE": "CLOSED",
                   "CHANGE": "ABNORMAL"}
REFUND_EVENTS = {"SUCCESS": "REFUND.SUCCESS", "ABNORMAL": "REFUND.ABNORMAL",
                 "CLOSED": "REFUND.CLOSED"}
STATE_DESC = {"SUCCESS": "支付成功", "REFUND": "转入退款", "NOTPAY": "未支付", "CLOSED": "已关闭"}
MODES = ("pubkey", "platform")
PLATFORM_CERT = "wechatpay_platform_cert.pem"
PLATFORM_KEY = "wechatpay_platform_key.pem"
PUBKEY_PRIVATE = "wechatpay_pub_private.pem"
PUBKEY_PUBLIC = "wechatpay_pub_key.pem"


class V3Error(Exception):
    """An error reply {"code","message"} with an HTTP status."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code


def rfc3339(moment=None):
    return (moment or beijing_now()).astimezone(BEIJING).strftime("%Y-%m-%dT%H:%M:%S+08:00")


def serial_hex(cert):
    """The serial as WeChat shows it (and `openssl x509 -serial` prints it)."""
    digits = "%X" % cert.serial_number
    return digits if len(digits) % 2 == 0 else "0" + digits


def ensure_platform_cert(state_dir):
    """WeChat Pay's platform key and a self-signed platform certificate."""
    cert_path = os.path.join(state_dir, PLATFORM_CERT)
    key_path = os.path.join(state_dir, PLATFORM_KEY)
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return
    key = core.new_rsa_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenpay.com sandbox"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com sandbox platform")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1825))
            .sign(key, hashes.SHA256()))
    core._write_private(key_path, core.private_pem(key))  # noqa: SLF001 - same package
    core._write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))  # noqa: SLF001


def _load_private(path):
    with open(path, "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), password=None)


def _load_cert(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def rsa_sign(key, message):
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(public_key, message, signature_b64):
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), message,
                          padding.PKCS1v15(), hashes.SHA256())
    except Exception:  # noqa: BLE001 - any failure is "does not verify"
        return False
    return True


def gcm_encrypt(key, plaintext, nonce_text, aad):
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    return base64.b64encode(AESGCM(key.encode("ascii")).encrypt(
        nonce_text.encode("utf-8"), data, aad.encode("utf-8"))).decode()


def parse_authorization(value):
    """WECHATPAY2-SHA256-RSA2048 k="v",... -> dict, or None."""
    if not value or not value.startswith(AUTH_SCHEMA + " "):
        return None
    out = {}
    for part in re.findall(r'(\w+)="([^"]*)"', value[len(AUTH_SCHEMA) + 1:]):
        if part[0] in out:
            return None
        out[part[0]] = part[1]
    return out


class WechatV3Api:
    channel = "wechat_v3"

    def __init__(self, app, v2, state_dir, api_v3_key, pubkey_id, mode="pubkey"):
        if mode not in MODES:
            raise ValueError("mode must be pubkey or platform")
        if len(api_v3_key.encode("ascii")) != 32:
            raise ValueError("api_v3_key must be 32 ASCII bytes")
        self.app = app
        self.v2 = v2
        self.v2.v3 = self
        self.api_v3_key = api_v3_key
        self.pubkey_id = pubkey_id
        self.mode = mode
        core.ensure_key_pair(os.path.join(state_dir, PUBKEY_PRIVATE),
                             os.path.join(state_dir, PUBKEY_PUBLIC))
        self.transfers = MchTransfers(self)
        ensure_platform_cert(state_dir)
        self.pubkey_private = _load_private(os.path.join(state_dir, PUBKEY_PRIVATE))
        self.platform_key = _load_private(os.path.join(state_dir, PLATFORM_KEY))
        self.platform_cert = _load_cert(os.path.join(state_dir, PLATFORM_CERT))
        self.platform_serial = serial_hex(self.platform_cert)
        self.merchant_cert = _load_cert(v2.client_cert_files["client_cert"])
        self.merchant_serial = serial_hex(self.merchant_cert)
        self.bill_files = {}   # token -> (bytes, monotonic expiry)
        # "hash_mismatch": the tradebill's hash_value is not the served
        # bill's (a bill changed or cut on the way)
        self.bill_fault = None
        self.files = {"wechatpay_public_key": os.path.join(state_dir, PUBKEY_PUBLIC),
                      "platform_cert": os.path.join(state_dir, PLATFORM_CERT)}

    def routes(self):
        base = "/_sandbox/wechat_v3"
        tx = r"/v3/pay/transactions"
        return [
            ("POST", tx + r"/(native|jsapi|h5)", self.prepay),
            ("GET", tx + r"/out-trade-no/([^/?]+)", self.query),
            ("POST", tx + r"/out-trade-no/([^/?]+)/close", self.close),
            ("POST", r"/v3/refund/domestic/refunds", self.refund),
            ("GET", r"/v3/refund/domestic/refunds/([^/?]+)", self.refund_query),
            ("GET", r"/v3/certificates", self.certificates),
            ("GET", r"/v3/bill/tradebill", self.tradebill),
            ("GET", r"/v3/billdownload/file", self.bill_download),
            ("GET|POST", base + r"/config", self.ctl_config),
            ("POST", base + r"/notify", self.ctl_notify),
            ("POST", base + r"/refund_notify", self.ctl_refund_notify),
        ] + self.transfers.routes()

    def reset(self):
        """Trades live in the v2 provider, which resets them; transfers here."""
        self.bill_fault = None
        self.transfers.reset()

    @staticmethod
    def knows(_out_trade_no):
        """The v2 provider answers for every WeChat trade (v2 or v3)."""
        return False

    # ------------------------------------------------------------------
    # signatures

    def signing_key(self, mode=None):
        """(private key, Wechatpay-Serial) of the current mode."""
        if (mode or self.mode) == "platform":
            return self.platform_key, self.platform_serial
        return self.pubkey_private, self.pubkey_id

    def sign_headers(self, body, mode=None, timestamp=None, nonce_text=None, signature=None,
                     serial=None):
        key, default_serial = self.signing_key(mode)
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce_text = nonce_text or nonce(32)
        message = ts.encode() + b"\n" + nonce_text.encode() + b"\n" + body + b"\n"
        return [("Wechatpay-Timestamp", ts), ("Wechatpay-Nonce", nonce_text),
                ("Wechatpay-Signature", signature or rsa_sign(key, message)),
                ("Wechatpay-Serial", serial or default_serial),
                ("Request-ID", "sandbox-" + secrets.token_hex(8))]

    def reply(self, status, value=None):
        body = b"" if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return Response(status, body, JSON_CTYPE, self.sign_headers(body))

    def error(self, exc):
        return self.reply(exc.status, {"code": exc.code, "message": str(exc)})

    def check_request(self, req):
        """Verifies the merchant's Authorization header as WeChat Pay does."""
        auth = parse_authorization(req.headers.get("Authorization"))
        if auth is None:
            raise V3Error(401, "SIGN_ERROR", "Authorization头缺失或格式错误 (missing or malformed)")
        for key in ("mchid", "nonce_str", "signature", "timestamp", "serial_no"):
            if not auth.get(key):
                raise V3Error(401, "SIGN_ERROR", "Authorization缺少%s" % key)
        if auth["mchid"] != self.v2.mch_id:
            raise V3Error(401, "SIGN_ERROR", "mchid与证书不匹配 (unknown mchid)")
        try:
            serial = int(auth["serial_no"], 16)
        except ValueError:
            serial = None
        if serial != self.merchant_cert.serial_number:
            raise V3Error(401, "SIGN_ERROR", "商户证书序列号有误 (serial_no is not the merchant "
                          "certificate's)")
        if not auth["timestamp"].isdigit() or abs(int(auth["timestamp"]) - time.time()) > CLOCK_SKEW:
            raise V3Error(401, "SIGN_ERROR", "timestamp more than 5 minutes off")
        message = ("%s\n%s\n%s\n%s\n" % (req.method, req.target, auth["timestamp"],
                                         auth["nonce_str"])).encode() + (req.body or b"") + b"\n"
        if not rsa_verify(self.merchant_cert.public_key(), message, auth["signature"]):
            raise V3Error(401, "SIGN_ERROR", "签名错误 (signature does not verify)")

    def jsapi_pay_sign_ok(self, query):
        """The v3 JSAPI client object's paySign: SHA256withRSA by the merchant
        key over "appId\ntimeStamp\nnonceStr\npackage\n"."""
        message = "".join(query[k] + "\n" for k in ("appId", "timeStamp", "nonceStr", "package"))
        return rsa_verify(self.merchant_cert.public_key(), message.encode("utf-8"), query["paySign"])

    def server_call(self, req, handler, *args):
        faults = self.app.faults.snapshot()
        if faults["http_5xx"]:
            return Response(502, "<html><body><h1>502 Bad Gateway</h1></body></html>",
                            "text/html; charset=utf-8")
        if faults["timeout"]:
            self.app.stop_event.wait(30.0)
        if faults["server_delay_ms"]:
            self.app.stop_event.wait(faults["server_delay_ms"] / 1000.0)
        try:
            self.check_request(req)
            body = None
            if req.method == "POST":
                try:
                    body = json.loads((req.body or b"").decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    raise V3Error(400, "PARAM_ERROR", "请求体不是JSON (body is not JSON)")
                if not isinstance(body, dict):
                    raise V3Error(400, "PARAM_ERROR", "请求体必须是JSON对象")
            return handler(req, body, *args)
        except V3Error as exc:
            return self.error(exc)
        except ReturnFail as exc:
            return self.error(V3Error(400, "PARAM_ERROR", str(exc)))
        except BizFail as exc:
            return self.error(self.biz_error(exc))

    @staticmethod
    def biz_error(exc):
        code = {"ORDERNOTEXIST": (404, "ORDER_NOT_EXIST"), "ORDERPAID": (400, "ORDERPAID"),
                "SYSTEMERROR": (500, "SYSTEM_ERROR"),
                "ORDERCLOSED": (400, "ORDER_CLOSED"), "REFUNDNOTEXIST": (404, "RESOURCE_NOT_EXISTS"),
                "PARAM_ERROR": (400, "PARAM_ERROR")}.get(exc.err_code, (400, "INVALID_REQUEST"))
        return V3Error(code[0], code[1], exc.err_code_des)

    # ------------------------------------------------------------------
    # calls

    @staticmethod
    def _amount(body, *keys):
        amount = body.get("amount")
        if not isinstance(amount, dict):
            raise V3Error(400, "PARAM_ERROR", "缺少amount")
        out = []
        for key in keys:
            value = amount.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10 ** 10:
                raise V3Error(400, "PARAM_ERROR", "amount.%s必须是正整数（分） (integer fen)" % key)
            out.append(value)
        if amount.get("currency", "CNY") != "CNY":
            raise V3Error(400, "PARAM_ERROR", "currency must be CNY")
        return out

    @staticmethod
    def _str(body, key, required=True):
        value = body.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise V3Error(400, "PARAM_ERROR", "缺少参数%s (missing %s)" % (key, key))
        return value

    def prepay(self, req):
        return self.server_call(req, self._prepay, req.match.group(1))

    def _prepay(self, _req, body, kind):
        if self._str(body, "appid") != self.v2.appid or self._str(body, "mchid") != self.v2.mch_id:
            raise V3Error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        description = self._str(body, "description")
        if len(description.encode("utf-8")) > 127:
            raise V3Error(400, "PARAM_ERROR", "description longer than 127 bytes")
        out_trade_no = self._str(body, "out_trade_no")
        if not OUT_TRADE_NO_RE.match(out_trade_no):
            raise V3Error(400, "PARAM_ERROR", "out_trade_no: 6..32 of A-Z a-z 0-9 _-|*")
        (total,) = self._amount(body, "total")
        params = {"body": description, "out_trade_no": out_trade_no, "total_fee": str(total),
                  "notify_url": self._str(body, "notify_url"), "trade_type": KINDS[kind],
                  "spbill_create_ip": "127.0.0.1", "_api": "v3"}
        expire = self._str(body, "time_expire", required=False)
        if expire is not None:
            if not RFC3339_RE.match(expire):
                raise V3Error(400, "PARAM_ERROR", "time_expire: RFC 3339")
            moment = datetime.datetime.fromisoformat(expire.replace("Z", "+00:00"))
            params["time_expire"] = moment.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
        if kind == "jsapi":
            payer = body.get("payer")
            if not isinstance(payer, dict) or not isinstance(payer.get("openid"), str):
                raise V3Error(400, "PARAM_ERROR", "缺少payer.openid")
            params["openid"] = payer["openid"]
        if kind == "h5":
            scene = body.get("scene_info")
            h5 = scene.get("h5_info") if isinstance(scene, dict) else None
            if not isinstance(h5, dict) or h5.get("type") not in ("Wap", "iOS", "Android"):
                raise V3Error(400, "PARAM_ERROR", "缺少scene_info.h5_info.type")
            params["spbill_create_ip"] = self._str(scene, "payer_client_ip")
            params["scene_info"] = json.dumps(scene, ensure_ascii=False)
        reply = self.v2._unifiedorder(params, MD5)  # noqa: SLF001 - shared trade store
        log("wechat v3 prepay %s out_trade_no=%s total=%d" % (kind, out_trade_no, total))
        if kind == "native":
            return self.reply(200, {"code_url": reply["code_url"]})
        if kind == "jsapi":
            return self.reply(200, {"prepay_id": reply["prepay_id"]})
        return self.reply(200, {"h5_url": reply["mweb_url"]})

    def transaction(self, trade):
        """The v3 transaction object of a trade (query reply, notification)."""
        with self.v2.lock:
            self.v2._expire_if_due(trade)  # noqa: SLF001
            state = trade["trade_state"]
            out = {"appid": self.v2.appid, "mchid": self.v2.mch_id,
                   "out_trade_no": trade["out_trade_no"], "trade_state": state,
                   "trade_state_desc": STATE_DESC.get(state, state),
                   "amount": {"total": trade["total_fee"], "currency": "CNY"}}
            if trade["transaction_id"]:
                paid_at = datetime.datetime.strptime(trade["time_end"], "%Y%m%d%H%M%S")
                out.update({"transaction_id": trade["transaction_id"],
                            "trade_type": trade["trade_type"],
                            "bank_type": trade["bank_type"] or "OTHERS", "attach": "",
                            "success_time": rfc3339(paid_at.replace(tzinfo=BEIJING)),
                            "payer": {"openid": trade["openid"]}})
                out["amount"].update({"payer_total": trade["total_fee"], "payer_currency": "CNY"})
            return out

    def query(self, req):
        return self.server_call(req, self._query, req.match.group(1))

    def _query(self, req, _body, out_trade_no):
        if dict(req.query_pairs()).get("mchid") != self.v2.mch_id:
            raise V3Error(400, "PARAM_ERROR", "mchid must be the merchant's")
        trade = self.v2._find_trade({"out_trade_no": urllib.parse.unquote(out_trade_no)})  # noqa: SLF001
        return self.reply(200, self.transaction(trade))

    def close(self, req):
        return self.server_call(req, self._close, req.match.group(1))

    def _close(self, _req, body, out_trade_no):
        if self._str(body, "mchid") != self.v2.mch_id:
            raise V3Error(400, "PARAM_ERROR", "mchid must be the merchant's")
        self.v2._closeorder({"out_trade_no": urllib.parse.unquote(out_trade_no)}, MD5)  # noqa: SLF001
        return self.reply(204)

    def refund_object(self, refund):
        with self.v2.lock:
            status = V2_TO_V3_REFUND.get(refund["refund_status"], "PROCESSING")
            out = {"refund_id": refund["refund_id"], "out_refund_no": refund["out_refund_no"],
                   "transaction_id": refund["transaction_id"],
                   "out_trade_no": refund["out_trade_no"], "channel": "ORIGINAL",
                   "user_received_account": "支付用户零钱", "create_time": rfc3339(),
                   "status": status, "funds_account": "AVAILABLE",
                   "amount": {"total": refund["total_fee"], "refund": refund["refund_fee"],
                              "payer_total": refund["total_fee"],
                              "payer_refund": refund["refund_fee"],
                              "settlement_refund": refund["refund_fee"],
                              "settlement_total": refund["total_fee"], "discount_refund": 0,
                              "currency": "CNY", "refund_fee": 0}}
            if refund["success_time"]:
                moment = datetime.datetime.strptime(refund["success_time"], "%Y-%m-%d %H:%M:%S")
                out["success_time"] = rfc3339(moment.replace(tzinfo=BEIJING))
            return out

    def refund(self, req):
        reply = self.server_call(req, self._refund)
        if self.app.faults.snapshot()["refund_timeout"]:
            log("wechat v3 refund reply held back 30 s (refund_timeout fault)")
            self.app.stop_event.wait(30.0)
        return reply

    def _refund(self, _req, body):
        refund_fen, total_fen = self._amount(body, "refund", "total")
        params = {"out_trade_no": self._str(body, "out_trade_no"),
                  "out_refund_no": self._str(body, "out_refund_no"),
                  "total_fee": str(total_fen), "refund_fee": str(refund_fen),
                  "refund_desc": self._str(body, "reason", required=False),
                  "notify_url": self._str(body, "notify_url", required=False), "_api": "v3"}
        self.v2._refund({k: v for k, v in params.items() if v is not None}, MD5)  # noqa: SLF001
        with self.v2.lock:
            refund = self.v2.refunds[params["out_refund_no"]]
        return self.reply(200, self.refund_object(refund))

    def refund_query(self, req):
        return self.server_call(req, self._refund_query, req.match.group(1))

    def _refund_query(self, _req, _body, out_refund_no):
        with self.v2.lock:
            refund = self.v2.refunds.get(urllib.parse.unquote(out_refund_no))
        if refund is None:
            raise V3Error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self.reply(200, self.refund_object(refund))

    def certificates(self, req):
        return self.server_call(req, self._certificates)

    def _certificates(self, _req, _body):
        nonce_text = nonce(12)
        pem = self.platform_cert.public_bytes(serialization.Encoding.PEM).decode()
        entry = {"serial_no": self.platform_serial,
                 "effective_time": rfc3339(self.platform_cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)),
                 "expire_time": rfc3339(self.platform_cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)),
                 "encrypt_certificate": {
                     "algorithm": "AEAD_AES_256_GCM", "nonce": nonce_text,
                     "associated_data": "certificate",
                     "ciphertext": gcm_encrypt(self.api_v3_key, pem, nonce_text, "certificate")}}
        return self.reply(200, {"data": [entry]})

    # ------------------------------------------------------------------
    # trade bill: GET /v3/bill/tradebill -> {hash_type, hash_value,
    # download_url}; the download (signed request, unsigned reply) serves the
    # v2 bill's text, gzip when tar_type=GZIP; the SHA1 is the text's.

    def tradebill(self, req):
        return self.server_call(req, self._tradebill)

    def _tradebill(self, req, _body):
        query = dict(req.query_pairs())
        day = query.get("bill_date") or ""
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", day):
            raise V3Error(400, "PARAM_ERROR", "bill_date格式错误 (yyyy-MM-dd)")
        bill_type = query.get("bill_type") or "ALL"
        if bill_type not in ("ALL", "SUCCESS", "REFUND"):
            raise V3Error(400, "PARAM_ERROR", "bill_type取值错误")
        tar_type = query.get("tar_type") or ""
        if tar_type not in ("", "GZIP"):
            raise V3Error(400, "PARAM_ERROR", "tar_type取值错误")
        text = self.v2.bill_bytes(day, bill_type)
        if text is None:
            raise V3Error(400, "NO_STATEMENT_EXIST", "账单文件不存在 (no bill for %s)" % day)
        digest = hashlib.sha1(text + (b"x" if self.bill_fault == "hash_mismatch" else b"")).hexdigest()
        data = gzip.compress(text, mtime=0) if tar_type == "GZIP" else text
        token = secrets.token_hex(16)
        now = time.monotonic()
        with self.v2.lock:
            for old in [t for t, (_d, exp) in self.bill_files.items() if exp < now]:
                del self.bill_files[old]
            self.bill_files[token] = (data, now + BILL_URL_TTL)
        host = req.headers.get("Host") or "127.0.0.1"
        log("wechat v3 bill %s %s: %d bytes%s" % (day, bill_type, len(text),
                                                 " (gzip)" if tar_type else ""))
        return self.reply(200, {"hash_type": "SHA1", "hash_value": digest,
                                "download_url": "%s://%s/v3/billdownload/file?token=%s"
                                                % (req.scheme, host, token)})

    def bill_download(self, req):
        try:
            self.check_request(req)
        except V3Error as exc:
            return self.error(exc)
        token = dict(req.query_pairs()).get("token") or ""
        with self.v2.lock:
            item = self.bill_files.get(token)
        if item is None or item[1] < time.monotonic():
            return self.error(V3Error(400, "INVALID_REQUEST", "下载地址无效或已过期 (unknown or expired)"))
        return Response(200, item[0], "application/octet-stream")

    # ------------------------------------------------------------------
    # notifications (the v2 provider's retry loop calls these for v3 owners)

    def envelope(self, event_type, original_type, resource, summary, aad=None, key=None,
                 tamper=False):
        nonce_text = nonce(12)
        aad = original_type if aad is None else aad
        ciphertext = gcm_encrypt(key or self.api_v3_key,
                                 json.dumps(resource, ensure_ascii=False, separators=(",", ":")), nonce_text, aad)
        if tamper:
            raw = bytearray(base64.b64decode(ciphertext))
            raw[-1] ^= 1
            ciphertext = base64.b64encode(bytes(raw)).decode()
        return {"id": uuid_hex(),
                "create_time": rfc3339(), "resource_type": "encrypt-resource",
                "event_type": event_type, "summary": summary,
                "resource": {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                             "ciphertext": ciphertext, "associated_data": aad,
                             "nonce": nonce_text}}

    def refund_resource(self, refund, wrong_amount=False):
        with self.v2.lock:
            status = V2_TO_V3_REFUND.get(refund["refund_status"], "PROCESSING")
            out = {"mchid": self.v2.mch_id, "out_trade_no": refund["out_trade_no"],
                   "transaction_id": refund["transaction_id"],
                   "out_refund_no": refund["out_refund_no"], "refund_id": refund["refund_id"],
                   "refund_status": status, "user_received_account": "支付用户零钱",
                   "amount": {"total": refund["total_fee"],
                              "refund": refund["refund_fee"] + (1 if wrong_amount else 0),
                              "payer_total": refund["total_fee"],
                              "payer_refund": refund["refund_fee"]}}
        obj = self.refund_object(refund)
        if "success_time" in obj:
            out["success_time"] = obj["success_time"]
        return out

    def build_notify(self, owner, note, faults):
        """The body of an automatic v3 notification for a trade, refund or transfer."""
        if note["kind"] == "transfer":
            resource = self.transfers.notify_resource(owner, faults["wrong_amount"])
            env = self.envelope("MCHTRANSFER.BILL.FINISHED", "mch_payment", resource, "商家转账单据终态通知")
        elif note["kind"] == "refund":
            resource = self.refund_resource(owner, faults["wrong_amount"])
            env = self.envelope(REFUND_EVENTS.get(resource["refund_status"], "REFUND.SUCCESS"),
                                "refund", resource, "退款成功")
        else:
            resource = self.transaction(owner)
            if faults["wrong_amount"]:
                resource["amount"]["total"] += 1
                resource["amount"]["payer_total"] = resource["amount"]["total"]
            env = self.envelope("TRANSACTION.SUCCESS", "transaction", resource, "支付成功")
        note["v3_bad_signature"] = bool(faults["bad_signature"])
        return json.dumps(env, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def post_notify(self, note, body):
        """POSTs a v3 notification; acknowledged by 200 or 204."""
        spec = note.get("v3_headers") or {}
        headers = self.sign_headers(body, mode=spec.get("mode"), timestamp=spec.get("timestamp"),
                                    signature=spec.get("signature"), serial=spec.get("serial"))
        if note.get("v3_bad_signature") and not spec.get("signature"):
            sig = headers[2][1]
            headers[2] = ("Wechatpay-Signature", ("B" if sig[0] != "B" else "C") + sig[1:])
        status, data, error = core.post(note["url"], body, "application/json", 10.0,
                                        headers=[h for h in headers if h[1] is not None])
        return status, data, error, status in (200, 204)

    # ------------------------------------------------------------------
    # control API

    def ctl_config(self, req):
        if req.method == "POST":
            body = req.json()
            mode = body.get("mode", self.mode)
            if mode not in MODES:
                raise BadRequest("mode must be pubkey or platform")
            fault = body.get("bill_fault", self.bill_fault)
            if fault not in BILL_FAULTS:
                raise BadRequest("bill_fault must be null or hash_mismatch")
            self.mode = mode
            self.bill_fault = fault
        return json_response({"mode": self.mode, "pubkey_id": self.pubkey_id,
                              "platform_serial": self.platform_serial,
                              "merchant_serial": self.merchant_serial,
                              "mchid": self.v2.mch_id, "appid": self.v2.appid,
                              "api_v3_key": self.api_v3_key, "files": self.files,
                              "bill_fault": self.bill_fault})

    def _manual(self, owner, body, event_type, original_type, resource, summary):
        """A hand-made notification; body options (all optional):
        overrides (resource fields; null removes), wrong_key, tamper, aad,
        mode, timestamp (int), signature ("bad" or a literal), serial,
        raw_body, notify_url, retry."""
        for key, value in (body.get("overrides") or {}).items():
            if value is None:
                resource.pop(key, None)
            else:
                resource[key] = value
        wrong_key = ("x" + self.api_v3_key)[:32] if body.get("wrong_key") else None
        env = self.envelope(event_type, original_type, resource, summary, aad=body.get("aad"),
                            key=wrong_key, tamper=bool(body.get("tamper")))
        data = (body["raw_body"].encode("utf-8") if isinstance(body.get("raw_body"), str)
                else json.dumps(env, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        url = body.get("notify_url") or (owner and owner.get("notify_url"))
        if not url:
            raise BadRequest("no notify_url")
        note = self.v2._new_note(owner, "manual", "SUCCESS", url, None, fixed_body=data)  # noqa: SLF001
        note["api"] = "v3"
        spec = {"mode": body.get("mode"), "timestamp": body.get("timestamp"),
                "serial": body.get("serial")}
        if body.get("signature") == "bad":
            note["v3_bad_signature"] = True
        elif isinstance(body.get("signature"), str):
            spec["signature"] = body["signature"]
        note["v3_headers"] = spec
        outcome = self.v2.attempt(owner, note, 0, retry=bool(body.get("retry", False)))
        status, reply, _acked = outcome[0]
        return json_response({"http_status": status, "body": reply.decode("utf-8", "replace"),
                              "acked": note["acked"], "json": data.decode("utf-8"),
                              "resource": resource, "id": note["id"]})

    def ctl_notify(self, req):
        body = req.json()
        with self.v2.lock:
            trade = self.v2.trades.get(str(body.get("out_trade_no", "")))
        if trade is None:
            return json_response({"error": "unknown out_trade_no"}, 404)
        return self._manual(trade, body, "TRANSACTION.SUCCESS", "transaction",
                            self.transaction(trade), "支付成功")

    def ctl_refund_notify(self, req):
        body = req.json()
        with self.v2.lock:
            refund = self.v2.refunds.get(str(body.get("out_refund_no", "")))
        if refund is None:
            return json_response({"error": "unknown out_refund_no"}, 404)
        resource = self.refund_resource(refund)
        return self._manual(refund, body, REFUND_EVENTS.get(resource["refund_status"],
                                                            "REFUND.SUCCESS"),
                            "refund", resource, "退款成功")
