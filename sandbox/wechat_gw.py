"""The WeChat Pay API v2 side of the sandbox: unifiedorder, orderquery,
closeorder, refund (mutual TLS) and refundquery; the "phone" pages where a
payment is made; payment and refund notifications with retries; the test
control API under /_sandbox/wechat/.

Trades live in memory; restarting the sandbox forgets them (the client
certificate persists in the state directory).
"""

import datetime
import html
import ipaddress
import json
import random
import re
import secrets
import string
import threading
import time
import urllib.parse

import bills
import wechat_sign
from core import (BEIJING, BadRequest, Response, beijing_now, beijing_str,
                  html_response, json_response, log, page, post, redirect)
from wechat_sign import MD5, SIGN_TYPES, XmlError

RETRY_DELAYS = [1, 1, 2, 3, 5, 8, 15, 30]
REFUND_DELAY = 1.0           # seconds (x time-scale) from PROCESSING to SUCCESS
ATTEMPT_TIMEOUT = 10.0
HANG_SECONDS = 30.0          # the timeout / refund_timeout faults
DEFAULT_OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
CODE_URL_PREFIX = "weixin://wxpay/bizpayurl?pr="
TRADE_TYPES = ("NATIVE", "JSAPI", "MWEB")
PAID = ("SUCCESS", "REFUND")
OUT_TRADE_NO_RE = re.compile(r"[A-Za-z0-9_\-|*@]{1,32}\Z")
OUT_REFUND_NO_RE = re.compile(r"[A-Za-z0-9_\-|*@]{1,64}\Z")
FEE_RE = re.compile(r"[1-9][0-9]{0,10}\Z")
TIME14_RE = re.compile(r"[0-9]{14}\Z")
MAX_FEE = 100000000 * 100
ALNUM = string.ascii_letters + string.digits
# Same out_trade_no again: these must not change (else INVALID_REQUEST).
IDENTITY_FIELDS = ("body", "total_fee", "trade_type", "openid", "product_id", "attach",
                   "fee_type", "detail", "goods_tag", "limit_pay", "device_info")
STATE_DESC = {
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "NOTPAY": "订单未支付",
    "CLOSED": "已关闭",
}
XML_CTYPE = "text/xml; charset=utf-8"
MIN_CLOSE_AGE = 300          # closeorder: not within 5 minutes of creating the order
PREPAY_TTL = 2 * 3600        # prepay_id and code_url live 2 hours
MWEB_URL_TTL = 300           # an mweb_url 5 minutes


def time14(moment=None):
    return (moment or beijing_now()).strftime("%Y%m%d%H%M%S")


def parse_time14(text):
    if not isinstance(text, str) or not TIME14_RE.match(text):
        return None
    try:
        moment = datetime.datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=BEIJING)


def nonce(length=32):
    return "".join(secrets.choice(ALNUM) for _ in range(length))


def yuan(fen):
    return "%d.%02d" % (fen // 100, fen % 100)


class ReturnFail(Exception):
    """Communication-level failure: return_code FAIL + return_msg, unsigned."""


class BizFail(Exception):
    """Business failure: return_code SUCCESS, result_code FAIL, err_code(_des), signed."""

    def __init__(self, err_code, err_code_des):
        super().__init__(err_code_des)
        self.err_code = err_code
        self.err_code_des = err_code_des


class WechatProvider:
    channel = "wechat"

    def __init__(self, app, appid, mch_id, api_key, time_scale, public_http_base,
                 client_cert_files=None):
        self.app = app
        self.appid = appid
        self.mch_id = mch_id
        self.api_key = api_key
        self.time_scale = time_scale
        self.http_base = public_http_base
        self.client_cert_files = client_cert_files or {}
        self.v3 = None            # wechat_v3_gw.WechatV3Api, when the v3 side is on
        self.lock = threading.RLock()
        self.trades = {}          # out_trade_no -> trade
        self.refunds = {}         # out_refund_no -> refund
        self._serial = 0
        self._prefix = "%06d" % random.SystemRandom().randrange(10 ** 6)

    # ------------------------------------------------------------------
    # routing

    def routes(self):
        base = "/_sandbox/wechat"
        return [
            ("POST", r"/pay/unifiedorder", self.unifiedorder),
            ("POST", r"/pay/orderquery", self.orderquery),
            ("POST", r"/pay/closeorder", self.closeorder),
            ("POST", r"/pay/refundquery", self.refundquery),
            ("POST", r"/secapi/pay/refund", self.refund),
            ("POST", r"/pay/downloadbill", self.downloadbill),
            ("GET", r"/wechat/scan", self.scan_page),
            ("GET", r"/wechat/mweb", self.mweb_page),
            ("GET", r"/wechat/jsapi", self.jsapi_page),
            ("GET", r"/wechat/phone", self.phone_page),
            ("POST", r"/wechat/pay", self.pay_form),
            ("GET", base + r"/config", self.ctl_config),
            ("GET", base + r"/trades", self.ctl_trades),
            ("GET", base + r"/trades/([^/]+)", self.ctl_trade),
            ("GET", base + r"/refunds/([^/]+)", self.ctl_refund),
            ("POST", base + r"/pay", self.ctl_pay),
            ("POST", base + r"/pay_closed", self.ctl_pay_closed),
            ("POST", base + r"/age", self.ctl_age),
            ("POST", base + r"/notify", self.ctl_notify),
            ("POST", base + r"/refund_notify", self.ctl_refund_notify),
            ("POST", base + r"/refund_resolve", self.ctl_refund_resolve),
            ("POST", base + r"/sign", self.ctl_sign),
        ]

    def reset(self):
        with self.lock:
            self.trades.clear()
            self.refunds.clear()

    def knows(self, out_trade_no):
        with self.lock:
            return out_trade_no in self.trades

    @property
    def fee_rate_bp(self):
        return int(self.app.config.get("fee_rate_bp", 60))

    # ------------------------------------------------------------------
    # identifiers

    def _serial_no(self):
        with self.lock:
            self._serial += 1
            return self._serial

    def _transaction_id(self):
        # 28 digits: 4200 + 6 + yyyyMMdd + 10
        return "4200%s%s%010d" % (self._prefix, beijing_now().strftime("%Y%m%d"),
                                  self._serial_no())

    def _refund_id(self):
        # 29 digits: 5030 + 6 + yyyyMMdd + 11
        return "5030%s%s%011d" % (self._prefix, beijing_now().strftime("%Y%m%d"),
                                  self._serial_no())

    @staticmethod
    def _prepay_id():
        # wx + 30 alphanumerics: the Beijing time (14) + 16 random hex
        return "wx" + time14() + secrets.token_hex(8)

    # ------------------------------------------------------------------
    # XML replies

    def _reply(self, fields, sign_type):
        """A signed return_code SUCCESS reply (fields: the business part)."""
        out = {"return_code": "SUCCESS", "return_msg": "OK", "appid": self.appid,
               "mch_id": self.mch_id, "nonce_str": nonce()}
        out.update({k: v for k, v in fields.items() if v is not None and v != ""})
        out["sign"] = wechat_sign.sign(out, self.api_key, sign_type)
        return Response(200, wechat_sign.to_xml(out), XML_CTYPE)

    @staticmethod
    def _fail(msg):
        return Response(200, wechat_sign.to_xml({"return_code": "FAIL", "return_msg": msg}),
                        XML_CTYPE)

    def _server_call(self, req, handler, need_cert=False):
        faults = self.app.faults.snapshot()
        if faults["http_5xx"]:
            return Response(502, "<html><body><h1>502 Bad Gateway</h1></body></html>",
                            "text/html; charset=utf-8")
        if faults["timeout"]:
            self.app.stop_event.wait(HANG_SECONDS)
        if faults["server_delay_ms"]:
            self.app.stop_event.wait(faults["server_delay_ms"] / 1000.0)
        if need_cert and req.peer_cert is None:
            return self._fail("client certificate required")
        try:
            params = wechat_sign.parse_xml(req.body)
        except XmlError as exc:
            return self._fail("XML格式错误: %s" % exc)
        try:
            sign_type = self._check_common(params, req if need_cert else None)
        except ReturnFail as exc:
            return self._fail(str(exc))
        try:
            fields = handler(params, sign_type)
            fields = dict({"result_code": "SUCCESS"}, **fields)
        except ReturnFail as exc:
            return self._fail(str(exc))
        except BizFail as exc:
            fields = {"result_code": "FAIL", "err_code": exc.err_code,
                      "err_code_des": exc.err_code_des}
        return self._reply(fields, sign_type)

    def _check_common(self, params, cert_req=None):
        for key in ("appid", "mch_id", "nonce_str", "sign"):
            if not params.get(key):
                raise ReturnFail("缺少参数%s (missing %s)" % (key, key))
        if params["appid"] != self.appid or params["mch_id"] != self.mch_id:
            raise ReturnFail("appid和mch_id不匹配 (appid/mch_id mismatch)")
        if len(params["nonce_str"]) > 32:
            raise ReturnFail("nonce_str参数长度有误 (nonce_str longer than 32)")
        sign_type = params.get("sign_type") or MD5
        if sign_type not in SIGN_TYPES:
            raise ReturnFail("sign_type参数错误 (sign_type must be MD5 or HMAC-SHA256)")
        if not wechat_sign.verify(params, self.api_key, sign_type):
            raise ReturnFail("签名错误")
        if cert_req is not None:
            subject = dict(item[0] for item in cert_req.peer_cert.get("subject", ()))
            if subject.get("commonName") != self.mch_id:
                raise ReturnFail("client certificate does not belong to mch_id %s"
                                 % self.mch_id)
        return sign_type

    @staticmethod
    def _need(params, *keys):
        for key in keys:
            if not params.get(key):
                raise ReturnFail("缺少参数%s (missing %s)" % (key, key))

    # ------------------------------------------------------------------
    # trades

    def _expire_if_due(self, trade):
        """Unpaid trades past time_expire close by themselves (caller holds lock)."""
        if trade["trade_state"] == "NOTPAY" and trade["time_expire"]:
            deadline = parse_time14(trade["time_expire"])
            if deadline is not None and beijing_now() > deadline:
                trade["trade_state"] = "CLOSED"
                trade["time_close"] = time14()

    def _trade_json(self, trade):
        with self.lock:
            self._expire_if_due(trade)
            out = {k: v for k, v in trade.items() if k not in ("notifications", "refunds",
                                                                 "code_token")}
            out["notifications"] = [self._note_json(n) for n in trade["notifications"]]
            out["refunds"] = [self._refund_json(self.refunds[r]) for r in trade["refunds"]]
            return out

    @staticmethod
    def _note_json(note):
        return {"id": note["id"], "kind": note["kind"], "result_code": note["result_code"],
                "url": note["url"], "sign_type": note["sign_type"],
                "attempts": [dict(a) for a in note["attempts"]],
                "acked": note["acked"], "gave_up": note["gave_up"]}

    def _refund_json(self, refund):
        with self.lock:
            out = {k: v for k, v in refund.items() if k != "notifications"}
            out["notifications"] = [self._note_json(n) for n in refund["notifications"]]
            return out

    def _find_trade(self, params):
        out_trade_no = params.get("out_trade_no")
        transaction_id = params.get("transaction_id")
        if not out_trade_no and not transaction_id:
            raise ReturnFail("缺少参数out_trade_no或transaction_id "
                             "(out_trade_no or transaction_id is required)")
        with self.lock:
            if transaction_id:
                trade = next((t for t in self.trades.values()
                              if t["transaction_id"] == transaction_id), None)
                if trade is not None and out_trade_no and trade["out_trade_no"] != out_trade_no:
                    trade = None
            else:
                trade = self.trades.get(out_trade_no)
            if trade is None:
                raise BizFail("ORDERNOTEXIST", "订单不存在")
            self._expire_if_due(trade)
            return trade

    def _by_prepay_id(self, prepay_id):
        with self.lock:
            for trade in self.trades.values():
                if trade["prepay_id"] == prepay_id:
                    self._expire_if_due(trade)
                    return trade
        return None

    def _by_code_url(self, code_url):
        if not code_url or not code_url.startswith(CODE_URL_PREFIX):
            return None
        token = code_url[len(CODE_URL_PREFIX):]
        with self.lock:
            for trade in self.trades.values():
                if trade["code_token"] and trade["code_token"] == token:
                    self._expire_if_due(trade)
                    return trade
        return None

    def _pay(self, trade, openid=None, allow_closed=False, paid_at=None):
        """NOTPAY -> SUCCESS; returns an error text or None.
        allow_closed: also a CLOSED trade (a late payment).
        paid_at: the payment's moment (an aware datetime), now when None."""
        with self.lock:
            self._expire_if_due(trade)
            if trade["trade_state"] in PAID or trade["transaction_id"]:
                return "trade %s is already paid" % trade["out_trade_no"]
            if trade["trade_state"] != "NOTPAY" and not allow_closed:
                return "trade %s is closed" % trade["out_trade_no"]
            trade["trade_state"] = "SUCCESS"
            trade["transaction_id"] = self._transaction_id()
            trade["time_end"] = time14(paid_at)
            if not trade["openid"]:
                trade["openid"] = openid or DEFAULT_OPENID
            trade["bank_type"] = "OTHERS"
            trade["cash_fee"] = trade["total_fee"]
            trade["is_subscribe"] = "N"
        log("wechat paid out_trade_no=%s transaction_id=%s total_fee=%d" % (
            trade["out_trade_no"], trade["transaction_id"], trade["total_fee"]))
        return None

    # ------------------------------------------------------------------
    # /pay/unifiedorder

    def unifiedorder(self, req):
        return self._server_call(req, self._unifiedorder)

    def _unifiedorder(self, params, sign_type):
        self._need(params, "body", "out_trade_no", "total_fee", "spbill_create_ip",
                   "notify_url", "trade_type")
        if len(params["body"].encode("utf-8")) > 128:
            raise ReturnFail("body参数长度有误 (body longer than 128 bytes)")
        out_trade_no = params["out_trade_no"]
        if not OUT_TRADE_NO_RE.match(out_trade_no):
            raise ReturnFail("out_trade_no参数格式错误 (1..32 of A-Z a-z 0-9 _-|*@)")
        if not FEE_RE.match(params["total_fee"]) or int(params["total_fee"]) > MAX_FEE:
            raise ReturnFail("invalid total_fee")
        total_fee = int(params["total_fee"])
        try:
            ipaddress.ip_address(params["spbill_create_ip"])
        except ValueError:
            raise ReturnFail("spbill_create_ip参数格式错误 (not an IP address)")
        notify_url = params["notify_url"]
        if not re.match(r"https?://[^/\s?#]+(/[^\s?#]*)?\Z", notify_url) or len(notify_url) > 256:
            raise ReturnFail("notify_url参数格式错误 (an http(s) URL of at most 256 "
                             "characters, without parameters)")
        trade_type = params["trade_type"]
        if trade_type not in TRADE_TYPES:
            raise ReturnFail("trade_type参数格式错误 (the sandbox knows NATIVE, JSAPI, MWEB)")
        if params.get("fee_type", "CNY") != "CNY":
            raise ReturnFail("fee_type参数格式错误 (CNY only)")
        if trade_type == "JSAPI" and not params.get("openid"):
            raise BizFail("PARAM_ERROR", "trade_type=JSAPI时（即JSAPI支付），openid为必传参数")
        scene = None
        if params.get("scene_info"):
            try:
                scene = json.loads(params["scene_info"])
            except ValueError:
                raise ReturnFail("scene_info参数格式错误 (not JSON)")
        if trade_type == "MWEB" and params.get("_api") != "v3":
            # H5 needs the site it is paid from: h5_info {type Wap, wap_url, wap_name}
            # (v3's h5_info {type, app_name?, app_url?} is checked by wechat_v3_gw)
            h5 = scene.get("h5_info") if isinstance(scene, dict) else None
            if not isinstance(h5, dict) or not h5.get("wap_url") or not h5.get("wap_name"):
                raise BizFail("PARAM_ERROR", "trade_type=MWEB时，scene_info的h5_info.wap_url和"
                              "wap_name为必传参数 (the site's URL and name)")
        expire = params.get("time_expire")
        if expire:
            deadline = parse_time14(expire)
            if deadline is None:
                raise ReturnFail("time_expire参数格式错误 (yyyyMMddHHmmss, Beijing time)")
            if deadline <= beijing_now():
                raise BizFail("INVALID_REQUEST", "time_expire时间过短 (time_expire is in the past)")
        with self.lock:
            trade = self.trades.get(out_trade_no)
            if trade is not None:
                self._expire_if_due(trade)
                if trade["trade_state"] in PAID:
                    raise BizFail("ORDERPAID", "该订单已支付")
                if trade["trade_state"] == "CLOSED":
                    raise BizFail("ORDERCLOSED", "该订单已关闭")
                for key in IDENTITY_FIELDS:
                    old = trade["request"].get(key) or ""
                    if (params.get(key) or "") != old:
                        raise BizFail("INVALID_REQUEST",
                                      "201 商户订单号重复 (out_trade_no %s exists with another %s)"
                                      % (out_trade_no, key))
            else:
                trade = {
                    "out_trade_no": out_trade_no,
                    "transaction_id": None,
                    "prepay_id": self._prepay_id(),
                    "code_token": None,
                    "code_url": None,
                    "mweb_url": None,
                    "trade_state": "NOTPAY",
                    "trade_type": trade_type,
                    "total_fee": total_fee,
                    "cash_fee": None,
                    "fee_type": "CNY",
                    "body": params["body"],
                    "attach": params.get("attach") or None,
                    "device_info": params.get("device_info") or None,
                    "openid": params.get("openid") or None,
                    "product_id": params.get("product_id") or None,
                    "is_subscribe": None,
                    "bank_type": None,
                    "time_start": params.get("time_start") or time14(),
                    "created": time.time(),
                    "closeorder_calls": [],   # err_code (or SUCCESS) of each closeorder
                    "time_expire": None,
                    "time_end": None,
                    "time_close": None,
                    "notify_url": None,
                    "spbill_create_ip": None,
                    "sign_type": MD5,
                    "sign_type_field": None,
                    "api": params.get("_api", "v2"),   # v3 trades are notified as v3
                    "request": {},
                    "notifications": [],
                    "refunds": [],
                }
                if trade_type == "NATIVE":
                    trade["code_token"] = "".join(secrets.choice(ALNUM) for _ in range(11))
                    trade["code_url"] = CODE_URL_PREFIX + trade["code_token"]
                elif trade_type == "MWEB":
                    trade["mweb_url"] = "%s/wechat/mweb?prepay_id=%s" % (
                        self.http_base, trade["prepay_id"])
                self.trades[out_trade_no] = trade
            trade["request"] = {k: v for k, v in params.items() if k not in ("sign", "_api")}
            trade["notify_url"] = notify_url
            trade["spbill_create_ip"] = params["spbill_create_ip"]
            trade["time_expire"] = expire or trade["time_expire"]
            trade["sign_type"] = sign_type
            trade["sign_type_field"] = params.get("sign_type") or None
            reply = {"device_info": trade["device_info"], "trade_type": trade_type,
                     "prepay_id": trade["prepay_id"], "code_url": trade["code_url"],
                     "mweb_url": trade["mweb_url"]}
        log("wechat unifiedorder out_trade_no=%s trade_type=%s total_fee=%d sign_type=%s" % (
            out_trade_no, trade_type, total_fee, sign_type))
        return reply

    # ------------------------------------------------------------------
    # /pay/orderquery, /pay/closeorder

    def orderquery(self, req):
        return self._server_call(req, self._orderquery)

    def _orderquery(self, params, _sign_type):
        trade = self._find_trade(params)
        with self.lock:
            state = trade["trade_state"]
            reply = {"device_info": trade["device_info"], "out_trade_no": trade["out_trade_no"],
                     "trade_state": state, "trade_state_desc": STATE_DESC.get(state, state),
                     "trade_type": trade["trade_type"], "total_fee": str(trade["total_fee"]),
                     "fee_type": "CNY", "attach": trade["attach"]}
            if state in PAID:
                reply.update({
                    "transaction_id": trade["transaction_id"], "time_end": trade["time_end"],
                    "openid": trade["openid"], "is_subscribe": trade["is_subscribe"],
                    "bank_type": trade["bank_type"], "cash_fee": str(trade["cash_fee"]),
                    "cash_fee_type": "CNY"})
        return reply

    def closeorder(self, req):
        return self._server_call(req, self._closeorder)

    @staticmethod
    def _close_verdict(trade):
        if trade["trade_state"] in PAID:
            return "ORDERPAID"
        if time.time() - trade["created"] < MIN_CLOSE_AGE:
            return "SYSTEMERROR"
        if trade["trade_state"] == "CLOSED" and trade.get("closed_by_call"):
            return "ORDERCLOSED"
        return "SUCCESS"

    def _closeorder(self, params, _sign_type):
        self._need(params, "out_trade_no")
        with self.lock:
            trade = self.trades.get(params["out_trade_no"])
            if trade is None:
                raise BizFail("ORDERNOTEXIST", "订单不存在")
            self._expire_if_due(trade)
            trade["closeorder_calls"].append(self._close_verdict(trade))
            if trade["trade_state"] in PAID:
                raise BizFail("ORDERPAID", "订单已支付，不能发起关单")
            if time.time() - trade["created"] < MIN_CLOSE_AGE:
                # WeChat documents the rule (订单生成后不能马上调用关单接口，
                # 最短调用时间间隔为5分钟) but no err_code of its own for it:
                # the catch-all SYSTEMERROR ("call again later") it is.
                raise BizFail("SYSTEMERROR", "订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟")
            if trade["trade_state"] == "CLOSED" and trade["time_close"] and \
                    trade.get("closed_by_call"):
                raise BizFail("ORDERCLOSED", "订单已关闭，无法重复关闭")
            trade["trade_state"] = "CLOSED"
            trade["time_close"] = trade["time_close"] or time14()
            trade["closed_by_call"] = True
        return {"result_msg": "OK"}

    # ------------------------------------------------------------------
    # refunds (/secapi/pay/refund over mutual TLS, /pay/refundquery)

    def refund(self, req):
        reply = self._server_call(req, self._refund, need_cert=True)
        if self.app.faults.snapshot()["refund_timeout"]:
            # Whatever the refund call did has been done; the caller only
            # sees a timeout.
            log("wechat refund reply held back %.0f s (refund_timeout fault)" % HANG_SECONDS)
            self.app.stop_event.wait(HANG_SECONDS)
        return reply

    def _refund(self, params, sign_type):
        self._need(params, "out_refund_no", "total_fee", "refund_fee")
        out_refund_no = params["out_refund_no"]
        if not OUT_REFUND_NO_RE.match(out_refund_no):
            raise ReturnFail("out_refund_no参数格式错误 (1..64 of A-Z a-z 0-9 _-|*@)")
        for key in ("total_fee", "refund_fee"):
            if not FEE_RE.match(params[key]) or int(params[key]) > MAX_FEE:
                raise ReturnFail("invalid %s" % key)
        total_fee = int(params["total_fee"])
        refund_fee = int(params["refund_fee"])
        notify_url = params.get("notify_url") or None
        if notify_url and not re.match(r"https?://[^/\s?#]+(/[^\s?#]*)?\Z", notify_url):
            raise ReturnFail("notify_url参数格式错误")
        if params.get("refund_fee_type", "CNY") != "CNY":
            raise ReturnFail("refund_fee_type参数格式错误 (CNY only)")
        trade = self._find_trade(params)
        with self.lock:
            existing = self.refunds.get(out_refund_no)
            if existing is not None:
                if (existing["out_trade_no"] != trade["out_trade_no"]
                        or existing["refund_fee"] != refund_fee
                        or existing["total_fee"] != total_fee):
                    raise BizFail("INVALID_REQUEST",
                                  "out_refund_no %s was used with other fields" % out_refund_no)
                refund = existing
            else:
                if trade["trade_state"] not in PAID:
                    raise BizFail("INVALID_REQUEST", "订单状态错误 (trade %s is %s)"
                                  % (trade["out_trade_no"], trade["trade_state"]))
                if total_fee != trade["total_fee"]:
                    raise BizFail("INVALID_REQUEST", "订单金额不一致 (total_fee %d, paid %d)"
                                  % (total_fee, trade["total_fee"]))
                refunded = sum(self.refunds[r]["refund_fee"] for r in trade["refunds"])
                if refund_fee > total_fee - refunded:
                    raise BizFail("INVALID_REQUEST",
                                  "申请退款金额超过订单可退金额 (refund_fee %d, refundable %d)"
                                  % (refund_fee, total_fee - refunded))
                refund = {
                    "out_refund_no": out_refund_no,
                    "refund_id": self._refund_id(),
                    "out_trade_no": trade["out_trade_no"],
                    "transaction_id": trade["transaction_id"],
                    "total_fee": total_fee,
                    "refund_fee": refund_fee,
                    "refund_desc": params.get("refund_desc") or None,
                    "refund_status": "PROCESSING",
                    "created": beijing_str(),
                    "success_time": None,
                    "notify_url": notify_url,
                    "api": params.get("_api", "v2"),
                    "notifications": [],
                    # wechat_refund_change fault: this refund ends abnormal
                    # (the buyer's card was cancelled or frozen).
                    "ends_in": ("CHANGE" if self.app.faults.snapshot()["wechat_refund_change"]
                                else "SUCCESS"),
                }
                self.refunds[out_refund_no] = refund
                trade["refunds"].append(out_refund_no)
                trade["trade_state"] = "REFUND"
                self.app.scheduler.later(REFUND_DELAY * self.time_scale, self._refund_done,
                                         out_refund_no)
                log("wechat refund out_trade_no=%s out_refund_no=%s refund_fee=%d" % (
                    trade["out_trade_no"], out_refund_no, refund_fee))
            return {"transaction_id": refund["transaction_id"],
                    "out_trade_no": refund["out_trade_no"],
                    "out_refund_no": out_refund_no, "refund_id": refund["refund_id"],
                    "refund_fee": str(refund["refund_fee"]),
                    "settlement_refund_fee": str(refund["refund_fee"]),
                    "total_fee": str(refund["total_fee"]),
                    "settlement_total_fee": str(refund["total_fee"]),
                    "fee_type": "CNY", "cash_fee": str(refund["total_fee"]),
                    "cash_fee_type": "CNY", "cash_refund_fee": str(refund["refund_fee"]),
                    "refund_channel": "ORIGINAL"}

    def _refund_done(self, out_refund_no):
        with self.lock:
            refund = self.refunds.get(out_refund_no)
            if refund is None or refund["refund_status"] != "PROCESSING":
                return
            status = refund.get("ends_in", "SUCCESS")
            refund["refund_status"] = status
            if status == "SUCCESS":
                refund["success_time"] = beijing_str()
            url = refund["notify_url"]
        log("wechat refund out_refund_no=%s %s" % (out_refund_no, status))
        if url:
            note = self._new_note(refund, "refund", "SUCCESS", url, MD5)
            self.attempt(refund, note, 0)

    def ctl_refund_resolve(self, req):
        """The merchant handled an abnormal (CHANGE) refund by hand in the
        merchant platform: it becomes SUCCESS (paid out another way) or
        REFUNDCLOSE. No notification follows; the refund query tells."""
        body = req.json()
        out_refund_no = str(body.get("out_refund_no", ""))
        status = body.get("refund_status", "SUCCESS")
        if status not in ("SUCCESS", "REFUNDCLOSE"):
            raise BadRequest("refund_status must be SUCCESS or REFUNDCLOSE")
        with self.lock:
            refund = self.refunds.get(out_refund_no)
            if refund is None:
                return json_response({"error": "unknown out_refund_no",
                                      "out_refund_no": out_refund_no}, 404)
            if refund["refund_status"] != "CHANGE":
                return json_response({"error": "refund is not abnormal (CHANGE)",
                                      "refund_status": refund["refund_status"]}, 409)
            refund["refund_status"] = status
            if status == "SUCCESS":
                refund["success_time"] = beijing_str()
        log("wechat refund out_refund_no=%s CHANGE -> %s (by hand)" % (out_refund_no, status))
        return json_response(self._refund_json(refund))

    def refundquery(self, req):
        return self._server_call(req, self._refundquery)

    def _refundquery(self, params, _sign_type):
        with self.lock:
            chosen = None
            if params.get("out_refund_no") or params.get("refund_id"):
                for refund in self.refunds.values():
                    if ((not params.get("out_refund_no")
                         or refund["out_refund_no"] == params["out_refund_no"])
                            and (not params.get("refund_id")
                                 or refund["refund_id"] == params["refund_id"])):
                        chosen = [refund]
                        break
                if chosen is None:
                    raise BizFail("REFUNDNOTEXIST", "退款订单查询失败")
            elif params.get("out_trade_no") or params.get("transaction_id"):
                try:
                    trade = self._find_trade(params)
                except BizFail:
                    raise BizFail("REFUNDNOTEXIST", "退款订单查询失败")
                chosen = [self.refunds[r] for r in trade["refunds"]]
                if not chosen:
                    raise BizFail("REFUNDNOTEXIST", "退款订单查询失败")
            else:
                raise ReturnFail("缺少参数 (out_refund_no, refund_id, out_trade_no or "
                                 "transaction_id is required)")
            trade = self.trades[chosen[0]["out_trade_no"]]
            reply = {"transaction_id": trade["transaction_id"],
                     "out_trade_no": trade["out_trade_no"],
                     "total_fee": str(trade["total_fee"]), "fee_type": "CNY",
                     "cash_fee": str(trade["cash_fee"] or trade["total_fee"]),
                     "refund_count": str(len(chosen)),
                     "refund_fee": str(sum(r["refund_fee"] for r in chosen))}
            for n, refund in enumerate(chosen):
                reply.update({
                    "out_refund_no_%d" % n: refund["out_refund_no"],
                    "refund_id_%d" % n: refund["refund_id"],
                    "refund_channel_%d" % n: "ORIGINAL",
                    "refund_fee_%d" % n: str(refund["refund_fee"]),
                    "settlement_refund_fee_%d" % n: str(refund["refund_fee"]),
                    "refund_status_%d" % n: refund["refund_status"],
                    "refund_account_%d" % n: "REFUND_SOURCE_RECHARGE_FUNDS",
                    "refund_recv_accout_%d" % n: "支付用户零钱",
                    "refund_success_time_%d" % n: refund["success_time"],
                })
        return reply

    # ------------------------------------------------------------------
    # /pay/downloadbill

    def downloadbill(self, req):
        faults = self.app.faults.snapshot()
        if faults["http_5xx"]:
            return Response(502, "<html><body><h1>502 Bad Gateway</h1></body></html>",
                            "text/html; charset=utf-8")
        if faults["timeout"]:
            self.app.stop_event.wait(HANG_SECONDS)
        try:
            params = wechat_sign.parse_xml(req.body)
        except XmlError as exc:
            return self._fail("XML格式错误: %s" % exc)
        try:
            self._check_common(params)
        except ReturnFail as exc:
            return self._fail(str(exc))
        raw_date = params.get("bill_date") or ""
        day = bills.normalize_date(raw_date) if re.fullmatch(r"[0-9]{8}", raw_date) else None
        if day is None:
            return self._bill_fail("invalid bill_date", "20001")
        bill_type = params.get("bill_type") or "ALL"
        if bill_type not in bills.WECHAT_HEADERS:
            return self._bill_fail("invalid bill_type", "20001")
        tar_type = params.get("tar_type") or ""
        if tar_type not in ("", "GZIP"):
            return self._bill_fail("invalid tar_type", "20001")
        data = self.bill_bytes(day, bill_type)
        if data is None:
            return self._bill_fail("No Bill Exist", "20002")
        log("wechat bill %s %s: %d bytes%s" % (day, bill_type, len(data),
                                              " (gzip)" if tar_type else ""))
        if tar_type == "GZIP":
            return Response(200, bills.gzip_bytes(data), "application/x-gzip")
        return Response(200, data, "text/plain; charset=utf-8")

    def bill_bytes(self, day, bill_type):
        """The day's bill text (UTF-8 bytes) as both APIs serve it (the v3
        tradebill has the v2 bill's rows), with the bill faults applied;
        None when the day has no rows."""
        entries = self.bill_entries(day)
        paid_entry, extra_entry = self._fault_entries(day)
        entries = bills.apply_faults(entries, self.app.bill_faults.get("wechat", day),
                                     paid_entry, extra_entry)
        if bill_type == "SUCCESS":
            entries = [e for e in entries if e["kind"] == "pay"]
        elif bill_type == "REFUND":
            entries = [e for e in entries if e["kind"] == "refund"]
        if not entries:
            return None
        text = bills.wechat_text(entries, bill_type, self.appid, self.mch_id, self.fee_rate_bp)
        return text.encode("utf-8")

    @staticmethod
    def _bill_fail(msg, code):
        return Response(200, wechat_sign.to_xml({"return_code": "FAIL", "return_msg": msg,
                                                 "error_code": code}), XML_CTYPE)

    @staticmethod
    def _dash_time(stamp14):
        return "%s-%s-%s %s:%s:%s" % (stamp14[0:4], stamp14[4:6], stamp14[6:8],
                                      stamp14[8:10], stamp14[10:12], stamp14[12:14])

    def _pay_entry(self, trade, when, rate):
        return {"kind": "pay", "out_trade_no": trade["out_trade_no"],
                "provider_no": trade["transaction_id"], "amount_fen": trade["total_fee"],
                "total_fen": trade["total_fee"], "refund_fen": 0,
                "fee_fen": bills.fee_fen(trade["total_fee"], rate), "time": when,
                "created": when, "subject": trade["body"],
                "buyer": trade["openid"] or DEFAULT_OPENID, "trade_type": trade["trade_type"],
                "attach": trade["attach"], "device_info": trade["device_info"],
                "refund_no": "", "refund_id": ""}

    def bill_entries(self, day):
        """Payments (by time_end) and successful refunds (by success_time) on
        the Beijing-time day 'yyyy-MM-dd'."""
        rate = self.fee_rate_bp
        out = []
        with self.lock:
            for trade in self.trades.values():
                if trade["time_end"] and trade["transaction_id"]:
                    when = self._dash_time(trade["time_end"])
                    if when.startswith(day):
                        out.append(self._pay_entry(trade, when, rate))
                for out_refund_no in trade["refunds"]:
                    refund = self.refunds[out_refund_no]
                    if refund["refund_status"] != "SUCCESS" or not refund["success_time"]:
                        continue
                    if not refund["success_time"].startswith(day):
                        continue
                    entry = self._pay_entry(trade, refund["success_time"], rate)
                    entry.update({"kind": "refund", "refund_fen": refund["refund_fee"],
                                  "fee_fen": bills.fee_fen(refund["refund_fee"], rate),
                                  "refund_no": out_refund_no, "refund_id": refund["refund_id"],
                                  "refund_created": refund["created"],
                                  "pay_time": self._dash_time(trade["time_end"])})
                    out.append(entry)
        out.sort(key=lambda e: e["time"])
        return out

    def _fault_entries(self, day):
        when = day + " 12:00:00"
        rate = self.fee_rate_bp

        def paid_entry(name):
            with self.lock:
                trade = self.trades.get(name)
                if trade is None:
                    return None
                entry = self._pay_entry(trade, when, rate)
                if not entry["provider_no"]:
                    entry["provider_no"] = "4200%s%s%010d" % (
                        self._prefix, day.replace("-", ""), random.randrange(10 ** 10))
                return entry

        def extra_entry(name):
            fen = 100
            return {"kind": "pay", "out_trade_no": name,
                    "provider_no": "4200999999%s%010d" % (day.replace("-", ""),
                                                          random.randrange(10 ** 10)),
                    "amount_fen": fen, "total_fen": fen, "refund_fen": 0,
                    "fee_fen": bills.fee_fen(fen, rate), "time": when, "created": when,
                    "subject": "sandbox extra row", "buyer": DEFAULT_OPENID,
                    "trade_type": "NATIVE", "attach": None, "device_info": None,
                    "refund_no": "", "refund_id": ""}

        return paid_entry, extra_entry

    # ------------------------------------------------------------------
    # notifications

    def pay_notify_fields(self, trade, result_code="SUCCESS", wrong_amount=False):
        with self.lock:
            fee = trade["total_fee"] + (1 if wrong_amount else 0)
            fields = {
                "appid": self.appid,
                "attach": trade["attach"],
                "bank_type": trade["bank_type"] or "OTHERS",
                "cash_fee": str(fee),
                "device_info": trade["device_info"],
                "fee_type": "CNY",
                "is_subscribe": trade["is_subscribe"] or "N",
                "mch_id": self.mch_id,
                "nonce_str": nonce(),
                "openid": trade["openid"] or DEFAULT_OPENID,
                "out_trade_no": trade["out_trade_no"],
                "result_code": result_code,
                "return_code": "SUCCESS",
                "sign_type": trade["sign_type_field"],
                "time_end": trade["time_end"] or time14(),
                "total_fee": str(fee),
                "trade_type": trade["trade_type"],
                "transaction_id": trade["transaction_id"],
            }
            if result_code != "SUCCESS":
                fields["err_code"] = "SYSTEMERROR"
                fields["err_code_des"] = "系统错误"
        return {k: v for k, v in fields.items() if v is not None and v != ""}

    def sign_fields(self, fields, how=True, sign_type=MD5):
        """how: True (sign), False (no sign field), "bad" (corrupted sign)."""
        fields = dict(fields)
        fields.pop("sign", None)
        if how is False:
            return fields
        value = wechat_sign.sign(fields, self.api_key, sign_type)
        if how == "bad":
            value = ("B" if value[0] != "B" else "C") + value[1:]
        fields["sign"] = value
        return fields

    def refund_notify_body(self, refund, api_key=None, wrong_amount=False, inner_overrides=None,
                           outer_overrides=None):
        with self.lock:
            fee = refund["refund_fee"] + (1 if wrong_amount else 0)
            inner = {
                "out_refund_no": refund["out_refund_no"],
                "out_trade_no": refund["out_trade_no"],
                "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
                "refund_fee": str(fee),
                "refund_id": refund["refund_id"],
                "refund_recv_accout": "支付用户零钱",
                "refund_request_source": "API",
                "refund_status": refund["refund_status"],
                "settlement_refund_fee": str(fee),
                "settlement_total_fee": str(refund["total_fee"]),
                "success_time": refund["success_time"] or (
                    None if refund["refund_status"] == "CHANGE" else beijing_str()),
                "total_fee": str(refund["total_fee"]),
                "transaction_id": refund["transaction_id"],
            }
        for key, value in (inner_overrides or {}).items():
            if value is None:
                inner.pop(key, None)
            else:
                inner[key] = value if isinstance(value, str) else json.dumps(value)
        plain = wechat_sign.to_xml(inner, root="root")
        outer = {"return_code": "SUCCESS", "appid": self.appid, "mch_id": self.mch_id,
                 "nonce_str": nonce(),
                 "req_info": wechat_sign.encrypt_req_info(plain, api_key or self.api_key)}
        for key, value in (outer_overrides or {}).items():
            if value is None:
                outer.pop(key, None)
            else:
                outer[key] = value if isinstance(value, str) else json.dumps(value)
        return outer, plain

    def _new_note(self, owner, kind, result_code, url, sign_type, fixed_body=None):
        note = {"id": uuid_hex(), "kind": kind, "result_code": result_code, "url": url,
                "sign_type": sign_type, "fixed_body": fixed_body, "attempts": [],
                "acked": False, "gave_up": False,
                "api": (owner or {}).get("api", "v2")}
        if owner is not None:
            with self.lock:
                owner["notifications"].append(note)
        return note

    def _build_body(self, owner, note, faults):
        if note["fixed_body"] is not None:
            return note["fixed_body"]
        if note.get("api") == "v3" and self.v3 is not None:
            return self.v3.build_notify(owner, note, faults)
        if note["kind"] == "refund":
            wrong_key = ("x" + self.api_key)[:32] if faults["bad_signature"] else None
            outer, _plain = self.refund_notify_body(owner, api_key=wrong_key,
                                                    wrong_amount=faults["wrong_amount"])
            return wechat_sign.to_xml(outer).encode("utf-8")
        fields = self.pay_notify_fields(owner, note["result_code"], faults["wrong_amount"])
        fields = self.sign_fields(fields, "bad" if faults["bad_signature"] else True,
                                  note["sign_type"])
        return wechat_sign.to_xml(fields).encode("utf-8")

    @staticmethod
    def is_ack(data):
        try:
            reply = wechat_sign.parse_xml(data)
        except XmlError:
            return False
        return reply.get("return_code") == "SUCCESS"

    def _send_once(self, note, body, copy):
        if note.get("api") == "v3" and self.v3 is not None:
            status, data, error, acked = self.v3.post_notify(note, body)
        else:
            status, data, error = post(note["url"], body, "text/xml", ATTEMPT_TIMEOUT)
            acked = self.is_ack(data)
        attempt = {"status": status, "body": data[:200].decode("utf-8", "replace"),
                   "at": time.time(), "at_beijing": beijing_str(), "copy": copy,
                   "acked": acked}
        if error:
            attempt["error"] = error
        with self.lock:
            note["attempts"].append(attempt)
            if acked:
                note["acked"] = True
        log("wechat notify kind=%s id=%s copy=%d -> %s %r%s" % (
            note["kind"], note["id"], copy, status, data[:40],
            " (acked)" if acked else (" " + error if error else "")))
        return status, data, acked

    def attempt(self, owner, note, index, faults=None, retry=True):
        """One delivery attempt (index 0 = first); schedules the next on failure."""
        if note["acked"]:
            return None
        if faults is None:
            faults = self.app.faults.snapshot()
        if note["kind"] == "manual":
            faults = dict(faults, drop_notify=False, duplicate=1, delay_ms=0)
        if faults["delay_ms"]:
            time.sleep(faults["delay_ms"] / 1000.0)
        body = self._build_body(owner, note, faults)
        result = None
        if faults["drop_notify"]:
            with self.lock:
                note["attempts"].append({"status": None, "body": "", "at": time.time(),
                                         "at_beijing": beijing_str(), "copy": 0,
                                         "acked": False, "dropped": True})
            log("wechat notify kind=%s id=%s dropped (fault)" % (note["kind"], note["id"]))
        elif faults["duplicate"] > 1:
            results = [None] * faults["duplicate"]

            def run(i):
                results[i] = self._send_once(note, body, i)

            threads = [threading.Thread(target=run, args=(i,), daemon=True)
                       for i in range(faults["duplicate"])]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            result = results[0]
        else:
            result = self._send_once(note, body, 0)
        if not note["acked"] and retry:
            if index < len(RETRY_DELAYS):
                self.app.scheduler.later(RETRY_DELAYS[index] * self.time_scale,
                                         self.attempt, owner, note, index + 1)
            else:
                with self.lock:
                    note["gave_up"] = True
                log("wechat notify id=%s given up after %d attempts" % (note["id"], index + 1))
        return result, body

    def notify_async(self, trade):
        if not trade["notify_url"]:
            return None
        if self.app.faults.snapshot()["no_notify"]:
            log("wechat notify out_trade_no=%s not sent (no_notify fault)" % trade["out_trade_no"])
            return None
        note = self._new_note(trade, "auto", "SUCCESS", trade["notify_url"], trade["sign_type"])
        return self.app.scheduler.now(self.attempt, trade, note, 0)

    # ------------------------------------------------------------------
    # browser pages ("the phone")

    @staticmethod
    def _error_page(code, message, status=400):
        inner = ("<p>The payment was refused.</p>\n"
                 "<p>code: <span id=\"error-code\">%s</span></p>\n"
                 "<p id=\"error-message\">%s</p>" % (html.escape(code), html.escape(message)))
        return html_response(page("WeChat Pay sandbox: error", inner), status)

    @staticmethod
    def _pay_form(trade, heading, extra=None):
        hidden = [("prepay_id", trade["prepay_id"])] + list(extra or [])
        inputs = "".join("<input type=\"hidden\" name=\"%s\" value=\"%s\">\n" % (
            html.escape(k, quote=True), html.escape(v, quote=True)) for k, v in hidden if v)
        return ("<p>%s</p>\n"
                "<p>Merchant order: <span id=\"out-trade-no\">%s</span></p>\n"
                "<p>Item: <span id=\"body\">%s</span></p>\n"
                "<p>Amount: &yen;<span id=\"total-amount\">%s</span> "
                "(<span id=\"total-fee\">%d</span> fen)</p>\n"
                "<p>Trade type: <span id=\"trade-type\">%s</span></p>\n"
                "<p>Status: <span id=\"trade-state\">%s</span></p>\n"
                "<form method=\"post\" action=\"/wechat/pay\">\n%s"
                "<button type=\"submit\" id=\"pay-button\">Pay</button>\n"
                "</form>" % (
                    html.escape(heading), html.escape(trade["out_trade_no"]),
                    html.escape(trade["body"]), yuan(trade["total_fee"]), trade["total_fee"],
                    html.escape(trade["trade_type"]), html.escape(trade["trade_state"]), inputs))

    def scan_page(self, req):
        query = dict(req.query_pairs())
        trade = self._by_code_url(query.get("code_url", ""))
        if trade is None:
            return self._error_page("ORDERNOTEXIST", "no trade has this code_url", 404)
        if time.time() - trade["created"] > PREPAY_TTL:
            return self._error_page("PREPAY_EXPIRED", "code_url expired (2 hours)", 400)
        return html_response(page("WeChat Pay sandbox: scanned QR code", self._pay_form(
            trade, "The phone scanned the QR code.")))

    def mweb_page(self, req):
        query = dict(req.query_pairs())
        trade = self._by_prepay_id(query.get("prepay_id", ""))
        if trade is None:
            return self._error_page("ORDERNOTEXIST", "unknown prepay_id", 404)
        if time.time() - trade["created"] > MWEB_URL_TTL:
            return self._error_page("MWEB_URL_EXPIRED", "mweb_url expired (5 minutes)", 400)
        # WeChat compares the address the H5 cashier is opened from with the
        # order's spbill_create_ip: a proxy's or the shop backend's address
        # there fails the buyer ("网络环境未能通过安全验证").
        if trade["trade_type"] == "MWEB" and req.client != trade["spbill_create_ip"]:
            log("wechat mweb out_trade_no=%s opened from %s, spbill_create_ip %s: refused" % (
                trade["out_trade_no"], req.client, trade["spbill_create_ip"]))
            return self._error_page("NETWORK_ENV_CHECK_FAILED",
                                    "网络环境未能通过安全验证，请稍后再试 (opened from %s, the order's "
                                    "spbill_create_ip is %s)" % (req.client, trade["spbill_create_ip"]),
                                    403)
        return html_response(page("WeChat Pay sandbox: H5 payment", self._pay_form(
            trade, "WeChat Pay in the mobile browser (MWEB).",
            [("redirect_url", query.get("redirect_url", ""))])))

    def jsapi_page(self, req):
        query = dict(req.query_pairs())
        prepay_id = query.get("prepay_id", "")
        if "paySign" in query or "package" in query:
            error = self._check_jsapi_params(query)
            if error:
                return self._error_page(error[0], error[1], 400)
            prepay_id = query["package"][len("prepay_id="):]
        trade = self._by_prepay_id(prepay_id)
        if trade is None:
            return self._error_page("ORDERNOTEXIST", "unknown prepay_id", 404)
        if trade["trade_type"] != "JSAPI":
            return self._error_page("TRADE_TYPE_ERROR", "prepay_id is not a JSAPI trade", 400)
        if time.time() - trade["created"] > PREPAY_TTL:
            return self._error_page("PREPAY_EXPIRED", "prepay_id expired (2 hours)", 400)
        return html_response(page("WeChat Pay sandbox: JSAPI payment", self._pay_form(
            trade, "WeixinJSBridge getBrandWCPayRequest inside WeChat (JSAPI).",
            [("redirect_url", query.get("redirect_url", ""))])))

    def _check_jsapi_params(self, query):
        """The client object's paySign over appId,timeStamp,nonceStr,package,signType."""
        keys = ("appId", "timeStamp", "nonceStr", "package", "signType")
        for key in keys + ("paySign",):
            if not query.get(key):
                return "PARAM_ERROR", "missing %s" % key
        if query["appId"] != self.appid:
            return "APPID_MISMATCH", "appId is not %s" % self.appid
        if not query["timeStamp"].isdigit():
            return "PARAM_ERROR", "timeStamp must be seconds as a string of digits"
        if len(query["nonceStr"]) > 32:
            return "PARAM_ERROR", "nonceStr longer than 32"
        if not query["package"].startswith("prepay_id="):
            return "PARAM_ERROR", "package must be prepay_id=<id>"
        if query["signType"] == "RSA" and self.v3 is not None:
            # v3's client object: SHA256withRSA by the merchant key
            if not self.v3.jsapi_pay_sign_ok(query):
                return "PAYSIGN_ERROR", "paySign (RSA) does not verify"
            return None
        if query["signType"] not in SIGN_TYPES:
            return "PARAM_ERROR", "signType must be MD5, HMAC-SHA256 or RSA (v3)"
        fields = {k: query[k] for k in keys}
        if query["paySign"] != wechat_sign.sign(fields, self.api_key, query["signType"]):
            return "PAYSIGN_ERROR", "paySign does not verify: string %s" % (
                wechat_sign.string_to_sign(fields, "<API key>"))
        return None

    def phone_page(self, _req):
        with self.lock:
            for trade in self.trades.values():
                self._expire_if_due(trade)
            unpaid = [t for t in self.trades.values() if t["trade_state"] == "NOTPAY"]
        rows = []
        for trade in unpaid:
            rows.append(
                "<li><span class=\"out-trade-no\">%s</span> %s &yen;%s (%s) "
                "<form method=\"post\" action=\"/wechat/pay\" style=\"display:inline\">"
                "<input type=\"hidden\" name=\"prepay_id\" value=\"%s\">"
                "<button type=\"submit\" id=\"pay-%s\">Pay</button></form></li>" % (
                    html.escape(trade["out_trade_no"]), html.escape(trade["body"]),
                    yuan(trade["total_fee"]), html.escape(trade["trade_type"]),
                    html.escape(trade["prepay_id"], quote=True),
                    html.escape(trade["out_trade_no"], quote=True)))
        inner = ("<p>This page stands in for the customer's phone.</p>\n"
                 "<form method=\"get\" action=\"/wechat/scan\">\n"
                 "<label>code_url: <input type=\"text\" name=\"code_url\" id=\"code-url\" "
                 "size=\"60\" placeholder=\"weixin://wxpay/bizpayurl?pr=...\"></label>\n"
                 "<button type=\"submit\" id=\"scan-button\">Scan</button>\n</form>\n"
                 "<h2>Unpaid WeChat trades</h2>\n<ul id=\"unpaid\">%s</ul>" % (
                     "".join(rows) or "<li>none</li>"))
        return html_response(page("WeChat Pay sandbox: phone", inner))

    def pay_form(self, req):
        form = dict(req.form_pairs())
        trade = None
        if form.get("prepay_id"):
            trade = self._by_prepay_id(form["prepay_id"])
        elif form.get("code_url"):
            trade = self._by_code_url(form["code_url"])
        if trade is None:
            return self._error_page("ORDERNOTEXIST", "unknown prepay_id / code_url", 404)
        error = self._pay(trade, form.get("openid") or None)
        if error:
            return self._error_page("ORDERPAID" if "paid" in error else "ORDERCLOSED",
                                    error, 409)
        thread = self.notify_async(trade)
        if thread is not None:
            thread.join(ATTEMPT_TIMEOUT + 1)
        if form.get("redirect_url"):
            return redirect(form["redirect_url"])
        return html_response(page("WeChat Pay sandbox: paid", (
            "<p id=\"paid\">Paid &yen;<span id=\"total-amount\">%s</span> for "
            "<span id=\"out-trade-no\">%s</span>, transaction_id "
            "<span id=\"transaction-id\">%s</span>.</p>" % (
                yuan(trade["total_fee"]), html.escape(trade["out_trade_no"]),
                html.escape(trade["transaction_id"])))))

    # ------------------------------------------------------------------
    # control API

    def _ctl_trade_or_404(self, out_trade_no):
        with self.lock:
            trade = self.trades.get(out_trade_no)
        if trade is None:
            return None, json_response({"error": "unknown out_trade_no",
                                        "out_trade_no": out_trade_no}, 404)
        return trade, None

    def ctl_config(self, _req):
        return json_response({"appid": self.appid, "mch_id": self.mch_id,
                              "api_key": self.api_key, **self.client_cert_files})

    def ctl_trades(self, _req):
        with self.lock:
            trades = list(self.trades.values())
        return json_response([self._trade_json(t) for t in trades])

    def ctl_trade(self, req):
        trade, missing = self._ctl_trade_or_404(urllib.parse.unquote(req.match.group(1)))
        return missing or json_response(self._trade_json(trade))

    def ctl_refund(self, req):
        out_refund_no = urllib.parse.unquote(req.match.group(1))
        with self.lock:
            refund = self.refunds.get(out_refund_no)
        if refund is None:
            return json_response({"error": "unknown out_refund_no",
                                  "out_refund_no": out_refund_no}, 404)
        return json_response(self._refund_json(refund))

    def ctl_pay(self, req):
        """Pays a trade. Optional "paid_at" (Beijing "YYYY-MM-DD HH:MM:SS",
        not in the future): the moment the buyer paid (time_end)."""
        body = req.json()
        trade, missing = self._ctl_trade_or_404(str(body.get("out_trade_no", "")))
        if missing:
            return missing
        paid_at = None
        if body.get("paid_at") is not None:
            try:
                paid_at = datetime.datetime.strptime(str(body["paid_at"]), "%Y-%m-%d %H:%M:%S").replace(
                    tzinfo=BEIJING)
            except ValueError:
                paid_at = None
            if paid_at is None or paid_at > beijing_now():
                return json_response({"error": "paid_at must be a past Beijing time YYYY-MM-DD HH:MM:SS"}, 400)
        error = self._pay(trade, body.get("openid") or None, paid_at=paid_at)
        if error:
            return json_response({"error": error, "trade": self._trade_json(trade)}, 409)
        thread = self.notify_async(trade)
        if thread is not None:
            thread.join(ATTEMPT_TIMEOUT + 1)
        return json_response(self._trade_json(trade))

    def ctl_age(self, req):
        """Moves a trade's clock: its creation, time_start and time_expire N
        seconds back (codes, the 5-minute close rule and expiry see it older)."""
        body = req.json()
        trade, missing = self._ctl_trade_or_404(str(body.get("out_trade_no", "")))
        if missing:
            return missing
        seconds = body.get("seconds")
        if not isinstance(seconds, int) or seconds < 0:
            return json_response({"error": "seconds must be a non-negative integer"}, 400)
        delta = datetime.timedelta(seconds=seconds)
        with self.lock:
            trade["created"] -= seconds
            for key in ("time_start", "time_expire"):
                moment = parse_time14(trade[key])
                if moment is not None:
                    trade[key] = time14(moment - delta)
        return json_response(self._trade_json(trade))

    def ctl_pay_closed(self, req):
        return self.pay_closed(req.json())

    def pay_closed(self, body):
        """A late payment: the buyer paid just as the trade closed. The trade
        becomes SUCCESS and the payment notification is sent."""
        trade, missing = self._ctl_trade_or_404(str(body.get("out_trade_no", "")))
        if missing:
            return missing
        error = self._pay(trade, body.get("openid") or None, allow_closed=True)
        if error:
            return json_response({"error": error, "trade": self._trade_json(trade)}, 409)
        thread = self.notify_async(trade)
        if thread is not None:
            thread.join(ATTEMPT_TIMEOUT + 1)
        result = self._trade_json(trade)
        result["channel"] = self.channel
        return json_response(result)

    @staticmethod
    def _overrides(body, key="overrides"):
        value = body.get(key) or {}
        if not isinstance(value, dict):
            raise BadRequest("%s must be an object" % key)
        return value

    def ctl_notify(self, req):
        body = req.json()
        out_trade_no = body.get("out_trade_no")
        overrides = self._overrides(body)
        how = body.get("sign", True)
        if how not in (True, False, "bad"):
            raise BadRequest('sign must be true, false or "bad"')
        sign_type = body.get("sign_type")
        if sign_type is not None and sign_type not in SIGN_TYPES:
            raise BadRequest("sign_type must be MD5, HMAC-SHA256 or null")
        result_code = body.get("result_code") or "SUCCESS"
        raw_body = body.get("raw_body")
        if raw_body is not None and not isinstance(raw_body, str):
            raise BadRequest("raw_body must be a string")
        with self.lock:
            trade = self.trades.get(out_trade_no) if out_trade_no else None
        url = body.get("notify_url") or (trade and trade["notify_url"])
        if not url:
            raise BadRequest("no notify_url: the trade has none and the request gives none")
        algo = sign_type or (trade["sign_type"] if trade else MD5)
        fields = None
        if raw_body is not None:
            data = raw_body.encode("utf-8")
        else:
            if trade is not None:
                fields = self.pay_notify_fields(trade, result_code)
                if sign_type is not None:
                    fields["sign_type"] = sign_type
            else:
                if not overrides:
                    raise BadRequest("unknown out_trade_no and no overrides to build "
                                     "the message from")
                fields = {}
            for key, value in overrides.items():
                if value is None:
                    fields.pop(key, None)
                else:
                    fields[key] = value if isinstance(value, str) else json.dumps(value)
            fields = self.sign_fields(fields, how, algo)
            data = wechat_sign.to_xml(fields).encode("utf-8")
        note = self._new_note(trade, "manual", result_code, url, algo, fixed_body=data)
        outcome = self.attempt(trade, note, 0, retry=bool(body.get("retry", False)))
        status, reply, _acked = outcome[0]
        return json_response({"http_status": status, "body": reply.decode("utf-8", "replace"),
                              "acked": note["acked"], "error": note["attempts"][-1].get("error"),
                              "xml": data.decode("utf-8"), "fields": fields,
                              "id": note["id"]})

    def ctl_refund_notify(self, req):
        body = req.json()
        out_refund_no = str(body.get("out_refund_no", ""))
        with self.lock:
            refund = self.refunds.get(out_refund_no)
        raw_body = body.get("raw_body")
        if raw_body is not None and not isinstance(raw_body, str):
            raise BadRequest("raw_body must be a string")
        url = body.get("notify_url") or (refund and refund["notify_url"])
        if not url:
            raise BadRequest("no notify_url: the refund has none and the request gives none")
        plain = None
        if raw_body is not None:
            data = raw_body.encode("utf-8")
        else:
            if refund is None:
                return json_response({"error": "unknown out_refund_no",
                                      "out_refund_no": out_refund_no}, 404)
            key = body.get("api_key")
            if key is not None and not isinstance(key, str):
                raise BadRequest("api_key must be a string")
            outer, plain = self.refund_notify_body(
                refund, api_key=key, inner_overrides=self._overrides(body, "overrides"),
                outer_overrides=self._overrides(body, "outer_overrides"))
            data = wechat_sign.to_xml(outer).encode("utf-8")
        note = self._new_note(refund, "manual", "SUCCESS", url, None, fixed_body=data)
        outcome = self.attempt(refund, note, 0, retry=bool(body.get("retry", False)))
        status, reply, _acked = outcome[0]
        return json_response({"http_status": status, "body": reply.decode("utf-8", "replace"),
                              "acked": note["acked"], "error": note["attempts"][-1].get("error"),
                              "xml": data.decode("utf-8"), "plain": plain, "id": note["id"]})

    def ctl_sign(self, req):
        body = req.json()
        params = body.get("params")
        if not isinstance(params, dict):
            raise BadRequest("params must be an object")
        params = {k: (v if isinstance(v, str) or v is None else json.dumps(v))
                  for k, v in params.items()}
        sign_type = body.get("sign_type") or params.get("sign_type") or MD5
        if sign_type not in SIGN_TYPES:
            raise BadRequest("sign_type must be MD5 or HMAC-SHA256")
        key = body.get("key") or self.api_key
        text = wechat_sign.string_to_sign(params, key)
        return json_response({"string_to_sign": text,
                              "sign": wechat_sign.digest(text, key, sign_type),
                              "sign_type": sign_type})


def uuid_hex():
    return secrets.token_hex(12)
