"""The Alipay side of the sandbox: gateway.do, cashier pages, asynchronous
notifications with retries, and the test control API.

Trades live in memory; restarting the sandbox forgets them (keys and
certificates persist in the state directory).
"""

import datetime
import html
import json
import random
import re
import threading
import time
import urllib.parse
import uuid

import alipay_sign
import alipay_transfer
import bills
from core import (BEIJING, BadRequest, Response, beijing_now, beijing_str,
                  html_response, json_response, log, page, post, redirect)

SELLER_ID = "2088102177846880"
RETRY_DELAYS = [1, 2, 2, 4, 8, 15, 30]
PAGE_METHODS = {
    "alipay.trade.page.pay": "FAST_INSTANT_TRADE_PAY",
    "alipay.trade.wap.pay": "QUICK_WAP_WAY",
}
SERVER_METHODS = ("alipay.trade.precreate", "alipay.trade.query", "alipay.trade.close",
                  "alipay.trade.refund", "alipay.trade.fastpay.refund.query",
                  "alipay.data.dataservice.bill.downloadurl.query")
TRANSFER_METHODS = ("alipay.fund.trans.uni.transfer", "alipay.fund.trans.common.query")
PAID = ("TRADE_SUCCESS", "TRADE_FINISHED")
AMOUNT_RE = re.compile(r"(0|[1-9][0-9]*)\.([0-9]{2})\Z")
OUT_TRADE_NO_RE = re.compile(r"[A-Za-z0-9_]{1,64}\Z")
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
OUT_REQUEST_NO_RE = re.compile(r"[!-~]{1,64}\Z")
BILL_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}(-[0-9]{2})?\Z")
MAX_FEN = 100000000 * 100
ATTEMPT_TIMEOUT = 10.0
HANG_SECONDS = 30.0          # the timeout / refund_timeout faults
BILL_URL_TTL = 30.0          # seconds a bill_download_url stays valid
QR_CODE_TTL = 2 * 3600       # a precreate qr_code is good for at most 2 hours
BILL_ACCOUNT = SELLER_ID + "0156"


def amount_to_fen(text):
    """Strict "d+.dd" yuan string -> integer fen, or None."""
    if not isinstance(text, str):
        return None
    match = AMOUNT_RE.match(text)
    if not match:
        return None
    fen = int(match.group(1)) * 100 + int(match.group(2))
    if fen < 1 or fen > MAX_FEN:
        return None
    return fen


def fen_to_amount(fen):
    return "%d.%02d" % (fen // 100, fen % 100)


def parse_beijing(text):
    if not isinstance(text, str) or not TIME_RE.match(text):
        return None
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=BEIJING)


class GatewayError(Exception):
    """An Alipay error reply: code, msg, sub_code, sub_msg."""

    def __init__(self, code, msg, sub_code, sub_msg, envelope=False):
        super().__init__(sub_msg)
        self.code = code
        self.msg = msg
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        # envelope=True: reply as error_response without a sign (gateway-level)
        self.envelope = envelope

    def fields(self):
        return {"code": self.code, "msg": self.msg, "sub_code": self.sub_code,
                "sub_msg": self.sub_msg}


def invalid_signature(detail):
    return GatewayError("40002", "Invalid Arguments", "isv.invalid-signature",
                        "验签出错: " + detail, envelope=True)


def biz_error(sub_code, sub_msg):
    return GatewayError("40004", "Business Failed", sub_code, sub_msg)


def invalid_param(sub_msg):
    return GatewayError("40004", "Business Failed", "ACQ.INVALID_PARAMETER", sub_msg)


class AlipayProvider:
    channel = "alipay"

    def __init__(self, app, app_id, app_public_key, alipay_private_key, alipay_public_key,
                 time_scale, public_http_base):
        self.app = app
        self.app_id = app_id
        self.app_public_key = alipay_sign.load_public_key(app_public_key)
        self.alipay_private_key = alipay_sign.load_private_key(alipay_private_key)
        self.alipay_public_key = alipay_sign.load_public_key(alipay_public_key)
        self.time_scale = time_scale
        self.http_base = public_http_base
        self.lock = threading.RLock()
        self.trades = {}
        self.bill_files = {}      # token -> (zip bytes, monotonic expiry)
        self._serial = 0
        self._prefix = "%06d" % random.SystemRandom().randrange(10 ** 6)
        self.certs = None         # alipay_certs.CertMode, set by sandbox.py
        self.transfers = alipay_transfer.Transfers(app)

    # ------------------------------------------------------------------
    # routing

    def routes(self):
        routes = [
            ("GET|POST", r"/gateway\.do", self.gateway),
            ("POST", r"/_sandbox/alipay/refund_complete", self.ctl_refund_complete),
            ("POST", r"/cashier/pay", self.cashier_pay),
            ("GET", r"/qr/([^/]+)", self.qr_page),
            ("GET", r"/bills/alipay/([A-Za-z0-9]+)\.zip", self.bill_download),
            ("POST", r"/_sandbox/alipay/pay_closed", self.ctl_pay_closed),
            ("POST", r"/_sandbox/alipay/age", self.ctl_age),
            ("POST", r"/_sandbox/alipay/scan", self.ctl_scan),
            ("GET", r"/_sandbox/alipay/certs", self.ctl_certs),
        ] + self.transfers.routes()
        for base in ("/_sandbox", "/_sandbox/alipay"):
            routes += [
                ("GET", base + r"/trades", self.ctl_trades),
                ("GET", base + r"/trades/([^/]+)", self.ctl_trade),
                ("POST", base + r"/pay", self.ctl_pay),
                ("POST", base + r"/notify", self.ctl_notify),
                ("POST", base + r"/sign", self.ctl_sign),
            ]
        return routes

    def reset(self):
        with self.lock:
            self.trades.clear()
            self.bill_files.clear()
        self.transfers.reset()

    def knows(self, out_trade_no):
        with self.lock:
            return out_trade_no in self.trades

    @property
    def fee_rate_bp(self):
        return int(self.app.config.get("fee_rate_bp", 60))

    # ------------------------------------------------------------------
    # trades

    def _next_trade_no(self):
        with self.lock:
            self._serial += 1
            serial = self._serial
        return "%s2200%s%010d" % (beijing_now().strftime("%Y%m%d"), self._prefix, serial)

    def _new_trade(self, out_trade_no, fen, subject, method):
        now = beijing_now()
        return {
            "out_trade_no": out_trade_no,
            "trade_no": self._next_trade_no(),
            "status": "WAIT_BUYER_PAY",
            "total_fen": fen,
            "subject": subject,
            "body": None,
            "passback_params": None,
            "method": method,
            "notify_url": None,
            "return_url": None,
            "time_expire": None,
            "gmt_create": beijing_str(now),
            "gmt_payment": None,
            "gmt_close": None,
            "buyer_id": None,
            "buyer_logon_id": None,
            "notifications": [],
            "refunds": [],
            # A precreate trade exists for the server API only once the
            # phone scanned its qr_code (query/close/refund answer
            # ACQ.TRADE_NOT_EXIST before); a page/wap trade is created when
            # the browser reaches the gateway, so it counts as scanned.
            "scanned": method != "alipay.trade.precreate",
            "created": time.time(),
        }

    def _expire_if_due(self, trade):
        """Unpaid trades past time_expire close by themselves (caller holds lock)."""
        if trade["status"] == "WAIT_BUYER_PAY" and trade["time_expire"]:
            deadline = parse_beijing(trade["time_expire"])
            if deadline is not None and beijing_now() > deadline:
                trade["status"] = "TRADE_CLOSED"
                trade["gmt_close"] = beijing_str()

    def _trade_json(self, trade):
        with self.lock:
            self._expire_if_due(trade)
            notes = []
            for note in trade["notifications"]:
                notes.append({
                    "notify_id": note["notify_id"],
                    "trade_status": note["trade_status"],
                    "kind": note["kind"],
                    "out_biz_no": (note.get("refund") or {}).get("out_request_no"),
                    "url": note["url"],
                    "attempts": [dict(a) for a in note["attempts"]],
                    "acked": note["acked"],
                    "gave_up": note["gave_up"],
                })
            return {
                "out_trade_no": trade["out_trade_no"],
                "trade_no": trade["trade_no"],
                "status": trade["status"],
                "total_amount": fen_to_amount(trade["total_fen"]),
                "subject": trade["subject"],
                "method": trade["method"],
                "notify_url": trade["notify_url"],
                "return_url": trade["return_url"],
                "time_expire": trade["time_expire"],
                "scanned": trade["scanned"],
                "gmt_create": trade["gmt_create"],
                "gmt_payment": trade["gmt_payment"],
                "gmt_close": trade["gmt_close"],
                "buyer_id": trade["buyer_id"],
                "buyer_logon_id": trade["buyer_logon_id"],
                "refund_amount": fen_to_amount(self._refunded(trade)),
                "refunds": [self._refund_json(r) for r in trade["refunds"]],
                "notifications": notes,
            }

    @staticmethod
    def _refunded(trade):
        """What has gone back to the buyer (deferred refunds not yet done excluded)."""
        return sum(r["refund_fen"] for r in trade["refunds"] if r["refund_status"])

    @staticmethod
    def _requested(trade):
        """Every refund accepted so far, done or not: the limit for a new one."""
        return sum(r["refund_fen"] for r in trade["refunds"])

    @staticmethod
    def _refund_json(refund):
        return {"out_request_no": refund["out_request_no"],
                "refund_amount": fen_to_amount(refund["refund_fen"]),
                "refund_fee": fen_to_amount(refund["cumulative_fen"] or 0),
                "refund_reason": refund["refund_reason"],
                "refund_status": refund["refund_status"],
                "gmt_refund": refund["gmt_refund"],
                "gmt_refund_pay": refund["gmt_refund_pay"]}

    def _ensure_buyer(self, trade):
        if not trade["buyer_id"]:
            rnd = random.SystemRandom()
            trade["buyer_id"] = "2088" + "".join(rnd.choice("0123456789") for _ in range(12))
            trade["buyer_logon_id"] = "159****%04d" % rnd.randrange(10000)

    def _pay(self, trade, allow_closed=False, paid_at=None):
        """WAIT_BUYER_PAY -> TRADE_SUCCESS; returns an error text or None.
        allow_closed: also an unpaid TRADE_CLOSED trade (a late payment).
        paid_at: the payment's moment (Beijing "YYYY-MM-DD HH:MM:SS"), now
        when None."""
        with self.lock:
            trade["scanned"] = True    # paying means the code was scanned
            self._expire_if_due(trade)
            if trade["status"] in PAID or trade["gmt_payment"]:
                return "trade %s is already paid" % trade["out_trade_no"]
            if trade["status"] != "WAIT_BUYER_PAY" and not allow_closed:
                return "trade %s is closed" % trade["out_trade_no"]
            self._ensure_buyer(trade)
            trade["status"] = "TRADE_SUCCESS"
            trade["gmt_payment"] = paid_at or beijing_str()
        log("alipay paid out_trade_no=%s trade_no=%s amount=%s" % (
            trade["out_trade_no"], trade["trade_no"], fen_to_amount(trade["total_fen"])))
        return None

    # ------------------------------------------------------------------
    # signing helpers

    def _sign(self, text):
        return alipay_sign.rsa2_sign(self.alipay_private_key, text)

    def _server_reply(self, method, fields, http_status=200, cert=False):
        """{"<method>_response":{...},"sign":"..."}; sign over the exact text.
        In certificate mode also "alipay_cert_sn" (outside the signed text)."""
        key = method.replace(".", "_") + "_response"
        inner = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        sn = ""
        if cert and self.certs is not None:
            other = self.app.faults.snapshot()["alipay_cert_sn_other"]
            sn = ',"alipay_cert_sn":"%s"' % ("0" * 32 if other else self.certs.alipay_cert_sn)
        body = '{"%s":%s%s,"sign":"%s"}' % (key, inner, sn, self._sign(inner))
        return Response(http_status, body, "application/json;charset=utf-8")

    def _check_cert_sns(self, params):
        """Certificate mode is chosen per request by app_cert_sn: both SNs
        must be the ones of the certificates this sandbox issued."""
        if not params.get("app_cert_sn") and not params.get("alipay_root_cert_sn"):
            return False
        if self.certs is None:
            raise GatewayError("40002", "Invalid Arguments", "isv.cert-mode-not-enabled",
                               "app is not in certificate mode", envelope=True)
        if params.get("app_cert_sn") != self.certs.app_cert_sn:
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-app-cert-sn",
                               "app_cert_sn %s does not match the app certificate" % params.get("app_cert_sn"),
                               envelope=True)
        if params.get("alipay_root_cert_sn") != self.certs.root_cert_sn:
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-alipay-root-cert-sn",
                               "alipay_root_cert_sn does not match alipayRootCert.crt", envelope=True)
        return True

    @staticmethod
    def _error_envelope(err):
        inner = json.dumps(err.fields(), ensure_ascii=False, separators=(",", ":"))
        return Response(200, '{"error_response":%s}' % inner, "application/json;charset=utf-8")

    def return_query(self, trade):
        fields = {
            "charset": "utf-8",
            "out_trade_no": trade["out_trade_no"],
            "method": (trade["method"] or "alipay.trade.page.pay") + ".return",
            "total_amount": fen_to_amount(trade["total_fen"]),
            "trade_no": trade["trade_no"],
            "auth_app_id": self.app_id,
            "version": "1.0",
            "app_id": self.app_id,
            "seller_id": SELLER_ID,
            "timestamp": beijing_str(),
        }
        fields["sign"] = self._sign(alipay_sign.string_to_sign(fields, True))
        fields["sign_type"] = "RSA2"
        return fields

    def return_url_signed(self, trade):
        if not trade["return_url"]:
            return None
        sep = "&" if "?" in trade["return_url"] else "?"
        return trade["return_url"] + sep + urllib.parse.urlencode(self.return_query(trade))

    # ------------------------------------------------------------------
    # notifications

    def notify_fields(self, trade, trade_status, notify_id, wrong_amount=False, refund=None):
        """refund: a refund dict -> the refund notification (refund_fee is the
        cumulative amount refunded by then, out_biz_no its out_request_no)."""
        with self.lock:
            fen = trade["total_fen"] + (1 if wrong_amount else 0)
            amount = fen_to_amount(fen)
            paid = trade_status in PAID or refund is not None
            fields = {
                "gmt_create": trade["gmt_create"],
                "charset": "utf-8",
                "seller_email": "sandbox_seller@example.com",
                "subject": trade["subject"],
                "body": trade["body"],
                "buyer_id": None,
                "buyer_logon_id": None,
                "invoice_amount": None,
                "notify_id": notify_id,
                "fund_bill_list": None,
                "notify_type": "trade_status_sync",
                "trade_status": trade_status,
                "receipt_amount": None,
                "buyer_pay_amount": None,
                "app_id": self.app_id,
                "notify_time": beijing_str(),
                "point_amount": None,
                "total_amount": amount,
                "gmt_payment": None,
                "gmt_close": None,
                "trade_no": trade["trade_no"],
                "auth_app_id": self.app_id,
                "seller_id": SELLER_ID,
                "out_trade_no": trade["out_trade_no"],
                "passback_params": trade["passback_params"],
                "version": "1.0",
            }
            if paid or trade["buyer_id"]:
                self._ensure_buyer(trade)
                fields["buyer_id"] = trade["buyer_id"]
                fields["buyer_logon_id"] = trade["buyer_logon_id"]
            if paid:
                fields["gmt_payment"] = trade["gmt_payment"] or beijing_str()
                fields["invoice_amount"] = amount
                fields["receipt_amount"] = amount
                fields["buyer_pay_amount"] = amount
                fields["point_amount"] = "0.00"
                fields["fund_bill_list"] = json.dumps(
                    [{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}],
                    separators=(",", ":"))
            if trade_status == "TRADE_CLOSED":
                fields["gmt_close"] = trade["gmt_close"] or beijing_str()
            if refund is not None:
                fields["refund_fee"] = fen_to_amount(
                    refund["cumulative_fen"] + (1 if wrong_amount else 0))
                fields["gmt_refund"] = refund["gmt_refund"]
                fields["out_biz_no"] = refund["out_request_no"]
                if trade_status == "TRADE_CLOSED":
                    fields["gmt_close"] = refund["gmt_refund_pay"]
        return {k: v for k, v in fields.items() if v is not None and v != ""}

    def sign_notification(self, fields, how=True):
        """how: True (sign), False (no sign field), "bad" (corrupted sign)."""
        fields = dict(fields)
        if how is False:
            return fields
        fields.pop("sign", None)
        sign = self._sign(alipay_sign.string_to_sign(fields, True))
        if how == "bad":
            sign = ("B" if sign[0] != "B" else "C") + sign[1:]
        fields["sign"] = sign
        if "sign_type" not in fields:
            fields["sign_type"] = "RSA2"
        return fields

    def _new_notification(self, trade, trade_status, url, kind, fixed_form=None,
                          notify_id=None, refund=None):
        note = {
            "refund": refund,
            "notify_id": notify_id or (uuid.uuid4().hex + "%04d" % random.randrange(10000)),
            "trade_status": trade_status,
            "kind": kind,              # "auto" (built per attempt) or "manual" (fixed form)
            "url": url,
            "fixed_form": fixed_form,
            "attempts": [],
            "acked": False,
            "gave_up": False,
        }
        if trade is not None:
            with self.lock:
                trade["notifications"].append(note)
        return note

    def _build_form(self, trade, note, faults):
        if note["fixed_form"] is not None:
            return note["fixed_form"]
        fields = self.notify_fields(trade, note["trade_status"], note["notify_id"],
                                    wrong_amount=faults["wrong_amount"],
                                    refund=note.get("refund"))
        return self.sign_notification(fields, "bad" if faults["bad_signature"] else True)

    def _send_once(self, note, form, copy):
        body = urllib.parse.urlencode(form).encode("utf-8")
        status, data, error = post(note["url"], body,
                                   "application/x-www-form-urlencoded; charset=utf-8",
                                   ATTEMPT_TIMEOUT)
        acked = data == b"success"
        attempt = {
            "status": status,
            "body": data[:200].decode("utf-8", "replace"),
            "at": time.time(),
            "at_beijing": beijing_str(),
            "copy": copy,
            "acked": acked,
        }
        if error:
            attempt["error"] = error
        with self.lock:
            note["attempts"].append(attempt)
            if acked:
                note["acked"] = True
        log("alipay notify out_trade_no=%s notify_id=%s status=%s copy=%d -> %s %r%s" % (
            form.get("out_trade_no"), note["notify_id"], note["trade_status"], copy,
            status, data[:40], " (acked)" if acked else (" " + error if error else "")))
        return status, data, acked

    def attempt(self, trade, note, index, faults=None, retry=True):
        """One delivery attempt (index 0 = first); schedules the next on failure."""
        if note["acked"]:
            return None
        if faults is None:
            faults = self.app.faults.snapshot()
        if note["kind"] == "manual":
            faults = dict(faults, drop_notify=False, duplicate=1, delay_ms=0)
        if faults["delay_ms"]:
            time.sleep(faults["delay_ms"] / 1000.0)
        form = self._build_form(trade, note, faults)
        result = None
        if faults["drop_notify"]:
            with self.lock:
                note["attempts"].append({"status": None, "body": "", "at": time.time(),
                                         "at_beijing": beijing_str(), "copy": 0,
                                         "acked": False, "dropped": True})
            log("alipay notify out_trade_no=%s notify_id=%s dropped (fault)" % (
                form.get("out_trade_no"), note["notify_id"]))
        elif faults["duplicate"] > 1:
            threads = []
            results = [None] * faults["duplicate"]

            def run(i):
                results[i] = self._send_once(note, form, i)

            for i in range(faults["duplicate"]):
                thread = threading.Thread(target=run, args=(i,), daemon=True)
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join()
            result = results[0]
        else:
            result = self._send_once(note, form, 0)
        if not note["acked"] and retry:
            if index < len(RETRY_DELAYS):
                self.app.scheduler.later(RETRY_DELAYS[index] * self.time_scale,
                                         self.attempt, trade, note, index + 1)
            else:
                with self.lock:
                    note["gave_up"] = True
                log("alipay notify notify_id=%s given up after %d attempts" % (
                    note["notify_id"], index + 1))
        return result, form

    def notify_async(self, trade, trade_status):
        """Create a notification and start its first attempt now; returns the thread."""
        if not trade["notify_url"]:
            return None
        if self.app.faults.snapshot()["no_notify"]:
            log("alipay notify out_trade_no=%s %s not sent (no_notify fault)" % (
                trade["out_trade_no"], trade_status))
            return None
        note = self._new_notification(trade, trade_status, trade["notify_url"], "auto")
        return self.app.scheduler.now(self.attempt, trade, note, 0)

    def notify_refund_async(self, trade, refund):
        """The refund notification: TRADE_SUCCESS after a partial refund,
        TRADE_CLOSED once everything is refunded; with refund_fee, gmt_refund,
        out_biz_no. Sent to the trade's notify_url."""
        if not trade["notify_url"]:
            return None
        status = "TRADE_CLOSED" if refund["cumulative_fen"] >= trade["total_fen"] \
            else "TRADE_SUCCESS"
        note = self._new_notification(trade, status, trade["notify_url"], "refund",
                                      refund=refund)
        return self.app.scheduler.now(self.attempt, trade, note, 0)

    # ------------------------------------------------------------------
    # gateway

    def _merged_params(self, req):
        params = {}
        for key, value in list(req.query_pairs()) + list(req.form_pairs()):
            if key in params and params[key] != value:
                raise GatewayError("40002", "Invalid Arguments", "isv.invalid-parameter",
                                   "parameter %s given twice" % key, envelope=True)
            params[key] = value
        return params

    def _check_common(self, params):
        if not params.get("app_id"):
            raise GatewayError("40001", "Missing Required Arguments", "isv.missing-app-id",
                               "缺少AppID参数", envelope=True)
        if params["app_id"] != self.app_id:
            raise invalid_signature("unknown app_id %s" % params["app_id"])
        if not params.get("sign"):
            raise GatewayError("40001", "Missing Required Arguments", "isv.missing-signature",
                               "缺少签名参数", envelope=True)
        if params.get("sign_type", "RSA2") != "RSA2":
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-signature-type",
                               "sign_type must be RSA2", envelope=True)
        text = alipay_sign.string_to_sign(params, False)
        if not alipay_sign.rsa2_verify(self.app_public_key, text, params["sign"]):
            raise invalid_signature("网关生成的验签字符串为: " + text)
        charset = params.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-charset",
                               "charset must be utf-8", envelope=True)
        if not TIME_RE.match(params.get("timestamp", "")):
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-timestamp",
                               "timestamp must be yyyy-MM-dd HH:mm:ss", envelope=True)
        if params.get("version") != "1.0":
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-version",
                               "version must be 1.0", envelope=True)
        for key in ("notify_url", "return_url"):
            value = params.get(key)
            if value and not re.match(r"https?://[^/\s]+", value):
                raise GatewayError("40002", "Invalid Arguments", "isv.invalid-parameter",
                                   "%s must be an http(s) URL" % key, envelope=True)

    @staticmethod
    def _biz(params):
        raw = params.get("biz_content")
        if not raw:
            raise GatewayError("40002", "Invalid Arguments", "isv.missing-biz-content",
                               "缺少biz_content参数", envelope=True)
        try:
            biz = json.loads(raw)
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-biz-content",
                               "biz_content is not a JSON object", envelope=True)
        return biz

    @staticmethod
    def _order_fields(biz, method):
        out_trade_no = biz.get("out_trade_no")
        if not isinstance(out_trade_no, str) or not OUT_TRADE_NO_RE.match(out_trade_no):
            raise invalid_param("out_trade_no must be 1..64 letters, digits or _")
        fen = amount_to_fen(biz.get("total_amount"))
        if fen is None:
            raise invalid_param("total_amount must be a string like 99.00 in 0.01..100000000.00")
        subject = biz.get("subject")
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise invalid_param("subject is required (at most 256 characters)")
        want = PAGE_METHODS.get(method)
        if want and biz.get("product_code") != want:
            raise invalid_param("product_code must be %s for %s" % (want, method))
        expire = biz.get("time_expire")
        if expire is not None:
            deadline = parse_beijing(expire)
            if deadline is None:
                raise invalid_param("time_expire must be yyyy-MM-dd HH:mm:ss (Beijing time)")
            if deadline <= beijing_now():
                raise biz_error("ACQ.TRADE_HAS_CLOSE", "time_expire %s is in the past" % expire)
        for key in ("body", "passback_params"):
            if key in biz and not isinstance(biz[key], str):
                raise invalid_param("%s must be a string" % key)
        return out_trade_no, fen, subject, expire

    def _create_or_update(self, params, biz, method):
        out_trade_no, fen, subject, expire = self._order_fields(biz, method)
        with self.lock:
            trade = self.trades.get(out_trade_no)
            if trade is not None:
                self._expire_if_due(trade)
                if trade["total_fen"] != fen:
                    raise biz_error("ACQ.CONTEXT_INCONSISTENT",
                                    "交易信息被篡改: out_trade_no %s exists with amount %s"
                                    % (out_trade_no, fen_to_amount(trade["total_fen"])))
                if trade["status"] in PAID:
                    raise biz_error("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
                if trade["status"] == "TRADE_CLOSED":
                    raise biz_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
            else:
                trade = self._new_trade(out_trade_no, fen, subject, method)
                self.trades[out_trade_no] = trade
            trade["subject"] = subject
            trade["method"] = method if method in PAGE_METHODS else trade["method"]
            if expire is not None:
                trade["time_expire"] = expire
            for key in ("body", "passback_params"):
                if key in biz:
                    trade[key] = biz[key]
            if params.get("notify_url"):
                trade["notify_url"] = params["notify_url"]
            if params.get("return_url"):
                trade["return_url"] = params["return_url"]
        return trade

    def gateway(self, req):
        try:
            params = self._merged_params(req)
        except GatewayError as err:
            return self._error_envelope(err)
        method = params.get("method", "")
        if method in PAGE_METHODS:
            return self._page_pay(params, method)
        faults = self.app.faults.snapshot()
        if faults["http_5xx"]:
            return Response(502, "<html><body><h1>502 Bad Gateway</h1></body></html>",
                            "text/html; charset=utf-8")
        if faults["timeout"]:
            self.app.stop_event.wait(HANG_SECONDS)
        if faults["server_delay_ms"]:
            self.app.stop_event.wait(faults["server_delay_ms"] / 1000.0)
        cert = False
        try:
            self._check_common(params)
            cert = self._check_cert_sns(params)
            if method not in SERVER_METHODS and method not in TRANSFER_METHODS:
                raise GatewayError("40004", "Business Failed", "isv.invalid-method",
                                   "不存在的方法名: %s" % method, envelope=True)
            if method in TRANSFER_METHODS and not cert:
                raise GatewayError("40002", "Invalid Arguments", "isv.cert-mode-required",
                                   "%s requires public-key certificate mode" % method, envelope=True)
            biz = self._biz(params)
            handler = {
                "alipay.trade.precreate": self._precreate,
                "alipay.trade.query": self._query,
                "alipay.trade.close": self._close,
                "alipay.trade.refund": self._refund,
                "alipay.trade.fastpay.refund.query": self._refund_query,
                "alipay.data.dataservice.bill.downloadurl.query": self._bill_url,
                "alipay.fund.trans.uni.transfer": self.transfers.transfer,
                "alipay.fund.trans.common.query": self.transfers.query,
            }[method]
            reply = self._server_reply(method, handler(params, biz), cert=cert)
        except GatewayError as err:
            if err.envelope:
                return self._error_envelope(err)
            reply = self._server_reply(method, err.fields(), cert=cert)
        except alipay_transfer.TransferError as err:
            reply = self._server_reply(method, err.fields, cert=cert)
        held = (method == "alipay.trade.refund" and self.app.faults.snapshot()["refund_timeout"]) or \
            (method == "alipay.fund.trans.uni.transfer" and self.app.faults.snapshot()["transfer_timeout"])
        if held:
            # Executed; the caller only sees a timeout.
            log("alipay %s reply held back %.0f s (timeout fault)" % (method, HANG_SECONDS))
            self.app.stop_event.wait(HANG_SECONDS)
        return reply

    def _precreate(self, params, biz):
        trade = self._create_or_update(params, biz, "alipay.trade.precreate")
        return {
            "code": "10000", "msg": "Success",
            "out_trade_no": trade["out_trade_no"],
            "qr_code": "%s/qr/%s" % (self.http_base, urllib.parse.quote(trade["out_trade_no"])),
        }

    def _find(self, biz):
        out_trade_no = biz.get("out_trade_no")
        trade_no = biz.get("trade_no")
        if not out_trade_no and not trade_no:
            raise invalid_param("out_trade_no or trade_no is required")
        with self.lock:
            trade = None
            if out_trade_no:
                trade = self.trades.get(out_trade_no)
            elif trade_no:
                trade = next((t for t in self.trades.values() if t["trade_no"] == trade_no),
                             None)
            if trade is not None and trade_no and trade["trade_no"] != trade_no:
                trade = None
            if trade is None or not trade["scanned"]:
                raise biz_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
            self._expire_if_due(trade)
            return trade

    def _query(self, _params, biz):
        trade = self._find(biz)
        with self.lock:
            amount = fen_to_amount(trade["total_fen"])
            paid = trade["status"] in PAID or trade["gmt_payment"] is not None
            reply = {
                "code": "10000", "msg": "Success",
                "trade_no": trade["trade_no"],
                "out_trade_no": trade["out_trade_no"],
                "buyer_logon_id": trade["buyer_logon_id"] or "",
                "trade_status": trade["status"],
                "total_amount": amount,
                "buyer_pay_amount": amount if paid else "0.00",
                "point_amount": "0.00",
                "invoice_amount": amount if paid else "0.00",
                "receipt_amount": amount if paid else "0.00",
            }
            if paid:
                reply["send_pay_date"] = trade["gmt_payment"]
                reply["buyer_user_id"] = trade["buyer_id"]
                reply["fund_bill_list"] = [{"amount": amount, "fund_channel": "ALIPAYACCOUNT"}]
            if not reply["buyer_logon_id"]:
                del reply["buyer_logon_id"]
        return reply

    def _close(self, _params, biz):
        trade = self._find(biz)
        with self.lock:
            # Only WAIT_BUYER_PAY can be closed: paid, finished and closed
            # trades (closed by a call, by time_expire or by a full refund)
            # alike answer ACQ.TRADE_STATUS_ERROR.
            if trade["status"] != "WAIT_BUYER_PAY":
                raise biz_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            trade["status"] = "TRADE_CLOSED"
            trade["gmt_close"] = beijing_str()
            return {"code": "10000", "msg": "Success", "trade_no": trade["trade_no"],
                    "out_trade_no": trade["out_trade_no"]}

    # ------------------------------------------------------------------
    # refunds (synchronous at Alipay) and refund query

    def _refund(self, _params, biz):
        refund_fen = amount_to_fen(biz.get("refund_amount"))
        if refund_fen is None:
            raise invalid_param("refund_amount must be a string like 9.90 in 0.01..100000000.00")
        out_request_no = biz.get("out_request_no")
        if not isinstance(out_request_no, str) or not OUT_REQUEST_NO_RE.match(out_request_no):
            raise invalid_param("out_request_no is required (1..64 printable ASCII characters)")
        reason = biz.get("refund_reason")
        if reason is not None and not isinstance(reason, str):
            raise invalid_param("refund_reason must be a string")
        trade = self._find(biz)
        with self.lock:
            existing = next((r for r in trade["refunds"]
                             if r["out_request_no"] == out_request_no), None)
            if existing is not None:
                if existing["refund_fen"] != refund_fen:
                    raise invalid_param(
                        "out_request_no %s was used for a refund of %s, not %s" % (
                            out_request_no, fen_to_amount(existing["refund_fen"]),
                            fen_to_amount(refund_fen)))
                return self._refund_reply(trade, existing, "N")
            if trade["status"] not in PAID:
                raise biz_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法 (trade %s is %s)" % (
                    trade["out_trade_no"], trade["status"]))
            left = trade["total_fen"] - self._requested(trade)
            if refund_fen > left:
                raise biz_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                                "退款金额超限 (refund_amount %s, refundable %s)" % (
                                    fen_to_amount(refund_fen), fen_to_amount(left)))
            refund = {
                "out_request_no": out_request_no,
                "refund_fen": refund_fen,
                "cumulative_fen": None,
                "refund_reason": reason,
                "refund_status": None,
                "gmt_refund": None,
                "gmt_refund_pay": None,
            }
            trade["refunds"].append(refund)
            if self.app.faults.snapshot()["alipay_refund_deferred"]:
                # Accepted, no money moved yet: 10000 with fund_change N, as
                # Alipay answers when the outcome must be confirmed by query.
                log("alipay refund out_trade_no=%s out_request_no=%s amount=%s deferred "
                    "(fund_change N)" % (trade["out_trade_no"], out_request_no,
                                         fen_to_amount(refund_fen)))
                return self._refund_reply(trade, refund, "N")
            self._complete_refund(trade, refund)
            reply = self._refund_reply(trade, refund, "Y")
        log("alipay refund out_trade_no=%s out_request_no=%s amount=%s total refunded=%s" % (
            trade["out_trade_no"], out_request_no, fen_to_amount(refund_fen),
            fen_to_amount(refund["cumulative_fen"])))
        self.notify_refund_async(trade, refund)
        return reply

    def _complete_refund(self, trade, refund):
        """The money goes back (under self.lock)."""
        now = beijing_now()
        refund["refund_status"] = "REFUND_SUCCESS"
        refund["cumulative_fen"] = self._refunded(trade)
        refund["gmt_refund"] = now.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (
            now.microsecond // 1000)
        refund["gmt_refund_pay"] = beijing_str(now)
        if refund["cumulative_fen"] >= trade["total_fen"]:
            trade["status"] = "TRADE_CLOSED"
            trade["gmt_close"] = refund["gmt_refund_pay"]

    def _refund_reply(self, trade, refund, fund_change):
        reply = {
            "code": "10000", "msg": "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "buyer_logon_id": trade["buyer_logon_id"],
            "fund_change": fund_change,
            "refund_fee": fen_to_amount(self._refunded(trade)),
            "gmt_refund_pay": refund["gmt_refund_pay"],
            "buyer_user_id": trade["buyer_id"],
        }
        return {k: v for k, v in reply.items() if v}

    def _refund_query(self, _params, biz):
        out_request_no = biz.get("out_request_no")
        if not isinstance(out_request_no, str) or not out_request_no:
            raise invalid_param("out_request_no is required")
        trade = self._find(biz)
        with self.lock:
            refund = next((r for r in trade["refunds"]
                           if r["out_request_no"] == out_request_no), None)
            if refund is None:
                # Alipay: code 10000 only means the query ran; no refund data
                # means no such refund was made.
                return {"code": "10000", "msg": "Success"}
            reply = {
                "code": "10000", "msg": "Success",
                "trade_no": trade["trade_no"],
                "out_trade_no": trade["out_trade_no"],
                "out_request_no": out_request_no,
                "total_amount": fen_to_amount(trade["total_fen"]),
                "refund_amount": fen_to_amount(refund["refund_fen"]),
            }
            # Alipay returns refund_status only as REFUND_SUCCESS; without it
            # the refund was not received or has not succeeded (yet).
            if refund["refund_status"]:
                reply["refund_status"] = refund["refund_status"]
            if refund["refund_reason"]:
                reply["refund_reason"] = refund["refund_reason"]
            options = biz.get("query_options")
            if (isinstance(options, list) and "gmt_refund_pay" in options
                    and refund["gmt_refund_pay"]):
                reply["gmt_refund_pay"] = refund["gmt_refund_pay"]
            return reply

    # ------------------------------------------------------------------
    # bills

    def bill_entries(self, period):
        """Payment and refund entries whose completion time (Beijing) is in
        period ('yyyy-MM-dd' or 'yyyy-MM')."""
        rate = self.fee_rate_bp
        out = []
        with self.lock:
            for trade in self.trades.values():
                if trade["gmt_payment"] and trade["gmt_payment"].startswith(period):
                    out.append(self._pay_entry(trade, trade["gmt_payment"], rate))
                for refund in trade["refunds"]:
                    if refund["gmt_refund_pay"] and refund["gmt_refund_pay"].startswith(period):
                        entry = self._pay_entry(trade, refund["gmt_refund_pay"], rate)
                        entry.update({"kind": "refund", "refund_fen": refund["refund_fen"],
                                      "fee_fen": bills.fee_fen(refund["refund_fen"], rate),
                                      "refund_no": refund["out_request_no"]})
                        out.append(entry)
        out.sort(key=lambda e: e["time"])
        return out

    @staticmethod
    def _pay_entry(trade, when, rate):
        return {"kind": "pay", "out_trade_no": trade["out_trade_no"],
                "provider_no": trade["trade_no"], "amount_fen": trade["total_fen"],
                "total_fen": trade["total_fen"], "refund_fen": 0,
                "fee_fen": bills.fee_fen(trade["total_fen"], rate), "time": when,
                "created": trade["gmt_create"], "subject": trade["subject"],
                "buyer": trade["buyer_logon_id"] or "159****0000", "refund_no": "",
                "refund_id": ""}

    def _fault_entries(self, period):
        day = period if len(period) == 10 else period + "-01"
        when = day + " 12:00:00"
        rate = self.fee_rate_bp

        def paid_entry(name):
            with self.lock:
                trade = self.trades.get(name)
                if trade is None:
                    return None
                return self._pay_entry(trade, trade["gmt_payment"] or when, rate)

        def extra_entry(name):
            fen = 100
            return {"kind": "pay", "out_trade_no": name,
                    "provider_no": "%s2200999999%010d" % (day.replace("-", ""),
                                                          random.randrange(10 ** 10)),
                    "amount_fen": fen, "total_fen": fen, "refund_fen": 0,
                    "fee_fen": bills.fee_fen(fen, rate), "time": when, "created": when,
                    "subject": "sandbox extra row", "buyer": "159****0000", "refund_no": "",
                    "refund_id": ""}

        return paid_entry, extra_entry

    def _bill_url(self, _params, biz):
        if biz.get("bill_type") != "trade":
            raise invalid_param("bill_type must be trade (the sandbox has no signcustomer bill)")
        period = biz.get("bill_date")
        if not isinstance(period, str) or not BILL_DATE_RE.match(period) or \
                bills.normalize_date(period if len(period) == 10 else period + "-01") is None:
            raise invalid_param("bill_date must be yyyy-MM-dd or yyyy-MM")
        entries = self.bill_entries(period)
        spec = self.app.bill_faults.get("alipay", period) if len(period) == 10 else None
        paid_entry, extra_entry = self._fault_entries(period)
        entries = bills.apply_faults(entries, spec, paid_entry, extra_entry)
        if not entries:
            raise biz_error("isp.bill_not_exist", "账单不存在 (no trades on %s)" % period)
        data, _names = bills.alipay_zip(entries, period, BILL_ACCOUNT)
        token = uuid.uuid4().hex
        now = time.monotonic()
        with self.lock:
            for old in [t for t, (_d, exp) in self.bill_files.items() if exp < now]:
                del self.bill_files[old]
            self.bill_files[token] = (data, now + BILL_URL_TTL)
        log("alipay bill %s: %d rows, token %s" % (period, len(entries), token))
        return {"code": "10000", "msg": "Success",
                "bill_download_url": "%s/bills/alipay/%s.zip" % (self.http_base, token)}

    def bill_download(self, req):
        token = req.match.group(1)
        with self.lock:
            item = self.bill_files.get(token)
        if item is None or item[1] < time.monotonic():
            return Response(404, "bill download URL unknown or expired\n")
        return Response(200, item[0], "application/zip", [
            ("Content-Disposition", "attachment; filename=\"%s.zip\"" % token)])

    # ------------------------------------------------------------------
    # browser pages

    @staticmethod
    def _error_page(err, status=400):
        inner = ("<p>The payment request was refused.</p>\n"
                 "<p>code: <span id=\"error-code\">%s</span></p>\n"
                 "<p>sub_code: <span id=\"error-sub-code\">%s</span></p>\n"
                 "<p id=\"error-message\">%s</p>" % (
                     html.escape(err.code), html.escape(err.sub_code),
                     html.escape(err.sub_msg)))
        return html_response(page("Alipay sandbox: error", inner), status)

    @staticmethod
    def _pay_form(trade, heading):
        return ("<p>%s</p>\n"
                "<p>Merchant order: <span id=\"out-trade-no\">%s</span></p>\n"
                "<p>Subject: <span id=\"subject\">%s</span></p>\n"
                "<p>Amount: &yen;<span id=\"total-amount\">%s</span></p>\n"
                "<p>Status: <span id=\"trade-status\">%s</span></p>\n"
                "<form method=\"post\" action=\"/cashier/pay\">\n"
                "<input type=\"hidden\" name=\"out_trade_no\" value=\"%s\">\n"
                "<button type=\"submit\" id=\"pay-button\">Pay</button>\n"
                "</form>" % (
                    html.escape(heading), html.escape(trade["out_trade_no"]),
                    html.escape(trade["subject"]), fen_to_amount(trade["total_fen"]),
                    html.escape(trade["status"]), html.escape(trade["out_trade_no"], quote=True)))

    def _page_pay(self, params, method):
        try:
            self._check_common(params)
            biz = self._biz(params)
            trade = self._create_or_update(params, biz, method)
        except GatewayError as err:
            return self._error_page(err)
        heading = "Alipay sandbox cashier (%s)" % (
            "mobile" if method == "alipay.trade.wap.pay" else "desktop")
        return html_response(page("Alipay sandbox cashier", self._pay_form(trade, heading)))

    def qr_page(self, req):
        out_trade_no = urllib.parse.unquote(req.match.group(1))
        with self.lock:
            trade = self.trades.get(out_trade_no)
            if trade is not None:
                self._expire_if_due(trade)
        if trade is None:
            return self._error_page(biz_error("ACQ.TRADE_NOT_EXIST", "交易不存在"), 404)
        if time.time() - trade["created"] > QR_CODE_TTL:
            return self._error_page(biz_error("ACQ.TRADE_NOT_EXIST", "二维码已过期 (qr_code expired)"), 404)
        with self.lock:
            trade["scanned"] = True
        return html_response(page("Alipay sandbox: scanned QR code",
                                  self._pay_form(trade, "The phone scanned the QR code.")))

    def cashier_pay(self, req):
        form = dict(req.form_pairs())
        out_trade_no = form.get("out_trade_no", "")
        with self.lock:
            trade = self.trades.get(out_trade_no)
        if trade is None:
            return self._error_page(biz_error("ACQ.TRADE_NOT_EXIST", "交易不存在"), 404)
        error = self._pay(trade)
        if error:
            return self._error_page(biz_error("ACQ.TRADE_STATUS_ERROR", error), 409)
        thread = self.notify_async(trade, "TRADE_SUCCESS")
        if thread is not None:
            # Let the first notification attempt land before the browser returns.
            thread.join(ATTEMPT_TIMEOUT + 1)
        url = self.return_url_signed(trade)
        if url:
            return redirect(url)
        return html_response(page("Alipay sandbox: paid", (
            "<p id=\"paid\">Paid <span id=\"total-amount\">%s</span> for "
            "<span id=\"out-trade-no\">%s</span>, trade_no "
            "<span id=\"trade-no\">%s</span>.</p>" % (
                fen_to_amount(trade["total_fen"]), html.escape(trade["out_trade_no"]),
                html.escape(trade["trade_no"])))))

    # ------------------------------------------------------------------
    # control API

    def _ctl_trade_or_404(self, out_trade_no):
        with self.lock:
            trade = self.trades.get(out_trade_no)
        if trade is None:
            return None, json_response({"error": "unknown out_trade_no",
                                        "out_trade_no": out_trade_no}, 404)
        return trade, None

    def ctl_trades(self, _req):
        with self.lock:
            trades = list(self.trades.values())
        return json_response([self._trade_json(t) for t in trades])

    def ctl_trade(self, req):
        trade, missing = self._ctl_trade_or_404(urllib.parse.unquote(req.match.group(1)))
        return missing or json_response(self._trade_json(trade))

    def ctl_pay(self, req):
        """Pays a trade. Optional "paid_at" (Beijing "YYYY-MM-DD HH:MM:SS",
        not in the future): the moment the buyer paid, as gmt_payment says in
        the notification, the queries and the bill (a test's month of
        payments on their own days)."""
        body = req.json()
        trade, missing = self._ctl_trade_or_404(str(body.get("out_trade_no", "")))
        if missing:
            return missing
        paid_at = body.get("paid_at")
        if paid_at is not None:
            moment = parse_beijing(paid_at)
            if moment is None or moment > beijing_now():
                return json_response({"error": "paid_at must be a past Beijing time YYYY-MM-DD HH:MM:SS"}, 400)
        error = self._pay(trade, paid_at=paid_at)
        if error:
            return json_response({"error": error, "trade": self._trade_json(trade)}, 409)
        thread = self.notify_async(trade, "TRADE_SUCCESS")
        if thread is not None:
            thread.join(ATTEMPT_TIMEOUT + 1)
        result = self._trade_json(trade)
        result["return_url_signed"] = self.return_url_signed(trade)
        return json_response(result)

    def ctl_age(self, req):
        """Moves a trade's clock: its creation and time_expire N seconds back."""
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
            for key in ("gmt_create", "time_expire"):
                moment = parse_beijing(trade[key])
                if moment is not None:
                    trade[key] = beijing_str(moment - delta)
        return json_response(self._trade_json(trade))

    def ctl_scan(self, req):
        """The phone scanned the trade's qr_code (like GET /qr/<out_trade_no>)."""
        trade, missing = self._ctl_trade_or_404(str(req.json().get("out_trade_no", "")))
        if missing:
            return missing
        with self.lock:
            trade["scanned"] = True
        return json_response(self._trade_json(trade))

    def ctl_pay_closed(self, req):
        return self.pay_closed(req.json())

    def ctl_refund_complete(self, req):
        """A deferred refund (alipay_refund_deferred fault) completes: the money
        goes back, the refund notification is sent, and from now on the refund
        query answers refund_status REFUND_SUCCESS."""
        body = req.json()
        trade, missing = self._ctl_trade_or_404(str(body.get("out_trade_no", "")))
        if missing:
            return missing
        out_request_no = str(body.get("out_request_no", ""))
        with self.lock:
            refund = next((r for r in trade["refunds"]
                           if r["out_request_no"] == out_request_no), None)
            if refund is None:
                return json_response({"error": "unknown out_request_no",
                                      "out_request_no": out_request_no}, 404)
            if refund["refund_status"]:
                return json_response({"error": "refund already completed",
                                      "trade": self._trade_json(trade)}, 409)
            self._complete_refund(trade, refund)
        log("alipay refund out_trade_no=%s out_request_no=%s completed (total refunded %s)" % (
            trade["out_trade_no"], out_request_no, fen_to_amount(refund["cumulative_fen"])))
        thread = self.notify_refund_async(trade, refund)
        if thread is not None:
            thread.join(ATTEMPT_TIMEOUT + 1)
        return json_response(self._trade_json(trade))

    def pay_closed(self, body):
        """A late payment: the buyer paid just as the trade closed. The trade
        becomes TRADE_SUCCESS and the payment notification is sent."""
        trade, missing = self._ctl_trade_or_404(str(body.get("out_trade_no", "")))
        if missing:
            return missing
        error = self._pay(trade, allow_closed=True)
        if error:
            return json_response({"error": error, "trade": self._trade_json(trade)}, 409)
        thread = self.notify_async(trade, "TRADE_SUCCESS")
        if thread is not None:
            thread.join(ATTEMPT_TIMEOUT + 1)
        result = self._trade_json(trade)
        result["channel"] = self.channel
        return json_response(result)

    def ctl_notify(self, req):
        body = req.json()
        out_trade_no = body.get("out_trade_no")
        overrides = body.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise BadRequest("overrides must be an object")
        how = body.get("sign", True)
        if how not in (True, False, "bad"):
            raise BadRequest('sign must be true, false or "bad"')
        with self.lock:
            trade = self.trades.get(out_trade_no) if out_trade_no else None
        url = body.get("notify_url") or (trade and trade["notify_url"])
        if not url:
            raise BadRequest("no notify_url: the trade has none and the request gives none")
        notify_id = overrides.get("notify_id") or (
            uuid.uuid4().hex + "%04d" % random.randrange(10000))
        if trade is not None:
            status = body.get("trade_status") or trade["status"]
            fields = self.notify_fields(trade, status, notify_id)
        else:
            if not overrides:
                raise BadRequest("unknown out_trade_no and no overrides to build the form from")
            status = body.get("trade_status") or overrides.get("trade_status") or ""
            fields = {}
        for key, value in overrides.items():
            if value is None:
                fields.pop(key, None)
            else:
                fields[key] = value if isinstance(value, str) else json.dumps(value)
        form = self.sign_notification(fields, how)
        note = self._new_notification(trade, status, url, "manual", fixed_form=form,
                                      notify_id=notify_id)
        outcome = self.attempt(trade, note, 0, retry=bool(body.get("retry", False)))
        status_code, data, _acked = outcome[0]
        return json_response({"http_status": status_code,
                              "body": data.decode("utf-8", "replace"),
                              "acked": note["acked"],
                              "notify_id": note["notify_id"],
                              "error": note["attempts"][-1].get("error"),
                              "form": form})

    def ctl_certs(self, _req):
        if self.certs is None:
            raise BadRequest("certificate mode is not set up")
        return json_response(self.certs.describe())

    def ctl_sign(self, req):
        body = req.json()
        params = body.get("params")
        if not isinstance(params, dict):
            raise BadRequest("params must be an object")
        params = {k: (v if isinstance(v, str) or v is None else json.dumps(v))
                  for k, v in params.items()}
        text = alipay_sign.string_to_sign(params, bool(body.get("drop_sign_type", True)))
        return json_response({"string_to_sign": text, "sign": self._sign(text)})
