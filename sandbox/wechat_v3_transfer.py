"""WeChat Pay v3 merchant transfers ("商家转账", the 2025 API):
POST /v3/fund-app/mch-transfer/transfer-bills and the query
GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}.

out_bill_no is the idempotency key: a repeat of the same request answers the
same bill and moves no money again; a repeat with another amount or openid is
refused (400 PARAM_ERROR). A bill is ACCEPTED, then SUCCESS at once, unless
the fault wx_transfer_confirm is on: then it waits in WAIT_USER_CONFIRM with a
package_info until the payee confirms in the sandbox's "phone"
(POST /_sandbox/wechat_v3/transfer_confirm {"out_bill_no"}). An openid that
contains "wrongname" ends FAIL with fail_reason NAME_NOT_CORRECT (the payee's
real name does not match); one that contains "nobody" is refused at once
(400 INVALID_REQUEST, openid not of this appid). The merchant's balance is
checked: 403 NOT_ENOUGH moves nothing.

Faults (POST /_sandbox/faults):
  wx_transfer_timeout       the transfer is executed, then the reply is held 30 s
  wx_transfer_system_error  the transfer is executed, the reply is 500 SYSTEM_ERROR
  wx_transfer_processing    N: the bill answers PROCESSING, and the next N
                            queries too; then SUCCESS
  wx_transfer_confirm       new bills wait for the payee (WAIT_USER_CONFIRM)
Control: GET /_sandbox/wechat_v3/transfers (with per-out_bill_no call counts),
POST /_sandbox/wechat_v3/transfer_balance {"fen": N},
POST /_sandbox/wechat_v3/transfer_confirm {"out_bill_no": …} or, as the
  payee's WeChat does it (requestMerchantTransfer), {"mchId", "appId",
  "package"}; optional "action": "cancel" (the payee declines: nothing moves),
POST /_sandbox/wechat_v3/transfer_payee {"openid", "name"}: the real name
  WeChat knows for an openid (the "phone"'s user directory),
POST /_sandbox/wechat_v3/transfer_notify {"out_bill_no", …}: a hand-made
  MCHTRANSFER.BILL.FINISHED (options as /_sandbox/wechat_v3/notify).

The payee's real name (user_name): RSAES-OAEP (SHA-1, MGF1-SHA-1) under the
key the Wechatpay-Serial request header names (the WeChat Pay public key in
public-key mode, the platform certificate in platform mode; any other serial
is 400 PARAM_ERROR); decrypted here and compared with the name registered
for the openid (a mismatch ends the bill FAIL with NAME_NOT_CORRECT). From
2000 yuan (transfer_amount >= 200000) user_name is required: 400
PARAM_ERROR without it. A bill with a notify_url gets MCHTRANSFER.BILL.FINISHED
(original_type mch_payment, signed and encrypted like every v3 notification,
retried like payment notifications) when it ends SUCCESS, FAIL or CANCELLED.
"""

import base64
import re
import secrets
import threading
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from core import BadRequest, json_response, log

OUT_BILL_NO_RE = re.compile(r"[A-Za-z0-9]{5,32}\Z")
NAME_REQUIRED_FEN = 200000      # 2000 yuan: user_name required from here
OAEP_SHA1 = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
BASE = r"/v3/fund-app/mch-transfer/transfer-bills"


FINAL = ("SUCCESS", "FAIL", "CANCELLED")


class TransferV3Error(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code


class MchTransfers:
    def __init__(self, api):
        self.api = api                 # wechat_v3_gw.WechatV3Api
        self.lock = threading.RLock()
        self.bills = {}
        self.calls = {}
        self.balance_fen = 100000000 * 100
        self._serial = 0
        self.payees = {}               # openid -> real name (the phone's directory)

    def routes(self):
        return [("POST", BASE, self.transfer),
                ("GET", BASE + r"/out-bill-no/([^/?]+)", self.query),
                ("GET", r"/_sandbox/wechat_v3/transfers", self.ctl_list),
                ("POST", r"/_sandbox/wechat_v3/transfer_balance", self.ctl_balance),
                ("POST", r"/_sandbox/wechat_v3/transfer_confirm", self.ctl_confirm),
                ("POST", r"/_sandbox/wechat_v3/transfer_payee", self.ctl_payee),
                ("POST", r"/_sandbox/wechat_v3/transfer_notify", self.ctl_notify)]

    def reset(self):
        with self.lock:
            self.bills.clear()
            self.calls.clear()
            self.payees.clear()
            self.balance_fen = 100000000 * 100

    def _reply(self, status, value):
        return self.api.reply(status, value)

    def _guard(self, req, handler, *args):
        try:
            return self.api.server_call(req, handler, *args)
        except TransferV3Error as exc:
            return self._reply(exc.status, {"code": exc.code, "message": str(exc)})

    @staticmethod
    def _check(body, appid):
        def s(key, required=True):
            value = body.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value:
                raise TransferV3Error(400, "PARAM_ERROR", "缺少参数%s (missing %s)" % (key, key))
            return value
        out_bill_no = s("out_bill_no")
        if not OUT_BILL_NO_RE.match(out_bill_no):
            raise TransferV3Error(400, "PARAM_ERROR", "out_bill_no must be 5..32 letters or digits")
        if s("appid") != appid:
            raise TransferV3Error(400, "APPID_MCHID_NOT_MATCH", "appid与mchid不匹配")
        s("transfer_scene_id")
        s("transfer_remark")
        fen = body.get("transfer_amount")
        if isinstance(fen, bool) or not isinstance(fen, int) or not 1 <= fen <= 10 ** 10:
            raise TransferV3Error(400, "PARAM_ERROR", "transfer_amount必须是正整数（分）")
        infos = body.get("transfer_scene_report_infos")
        if not isinstance(infos, list) or not infos or not all(
                isinstance(i, dict) and i.get("info_type") and i.get("info_content") for i in infos):
            raise TransferV3Error(400, "PARAM_ERROR", "缺少transfer_scene_report_infos")
        return out_bill_no, fen, s("openid")

    def bill_object(self, bill, appid):
        out = {"mch_id": self.api.v2.mch_id, "appid": appid, "out_bill_no": bill["out_bill_no"],
               "transfer_bill_no": bill["transfer_bill_no"], "state": bill["state"],
               "transfer_amount": bill["fen"], "openid": bill["openid"],
               "transfer_remark": bill["remark"], "create_time": bill["create_time"],
               "update_time": bill["create_time"]}
        if bill["state"] == "FAIL":
            out["fail_reason"] = bill["fail_reason"]
        return out

    def user_name(self, req, body, fen):
        """The decrypted user_name (None when not sent); PARAM_ERROR as WeChat."""
        cipher = body.get("user_name")
        if cipher is None:
            if fen >= NAME_REQUIRED_FEN:
                raise TransferV3Error(400, "PARAM_ERROR", "转账金额>=2000元时，收款用户姓名必填 "
                                      "(user_name is required from 2000 yuan)")
            return None
        serial = req.headers.get("Wechatpay-Serial") or ""
        key, want = self.api.signing_key()
        if serial != want:
            raise TransferV3Error(400, "PARAM_ERROR", "Wechatpay-Serial错误 (not the serial of the key "
                                  "this merchant must encrypt with)")
        try:
            if not isinstance(cipher, str):
                raise ValueError("not a string")
            return key.decrypt(base64.b64decode(cipher, validate=True), OAEP_SHA1).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransferV3Error(400, "PARAM_ERROR", "user_name解密失败 (%s)" % type(exc).__name__) from exc

    def transfer(self, req):
        faults = self.api.app.faults.snapshot()
        reply = self._guard(req, self._transfer, faults)
        if faults["wx_transfer_timeout"]:
            log("wechat v3 transfer reply held back 30 s (wx_transfer_timeout fault)")
            self.api.app.stop_event.wait(30.0)
        return reply

    def _transfer(self, req, body, faults):
        import wechat_v3_gw  # noqa: PLC0415 (rfc3339)
        appid = self.api.v2.appid
        out_bill_no, fen, openid = self._check(body, appid)
        name = self.user_name(req, body, fen)
        notify_url = body.get("notify_url")
        if notify_url is not None and (not isinstance(notify_url, str) or not notify_url.startswith("http")):
            raise TransferV3Error(400, "PARAM_ERROR", "notify_url格式错误")
        new = False
        with self.lock:
            self.calls[out_bill_no] = self.calls.get(out_bill_no, 0) + 1
            bill = self.bills.get(out_bill_no)
            if bill is not None:
                if bill["fen"] != fen or bill["openid"] != openid:
                    raise TransferV3Error(400, "PARAM_ERROR", "out_bill_no %s was used with another "
                                          "amount or openid" % out_bill_no)
            else:
                if "nobody" in openid:
                    raise TransferV3Error(400, "INVALID_REQUEST", "openid与appid不匹配 (unknown openid)")
                if fen > self.balance_fen:
                    raise TransferV3Error(403, "NOT_ENOUGH", "商户运营账户资金不足")
                self._serial += 1
                state = "SUCCESS"
                known = self.payees.get(openid)
                if "wrongname" in openid or (name is not None and known is not None and name != known):
                    state = "FAIL"
                elif faults["wx_transfer_confirm"]:
                    state = "WAIT_USER_CONFIRM"
                elif faults["wx_transfer_processing"]:
                    state = "PROCESSING"
                if state != "FAIL":
                    self.balance_fen -= fen
                bill = {"out_bill_no": out_bill_no, "fen": fen, "openid": openid,
                        "remark": body["transfer_remark"], "state": state,
                        "fail_reason": "NAME_NOT_CORRECT" if state == "FAIL" else None,
                        "processing_left": faults["wx_transfer_processing"],
                        "transfer_bill_no": "1330000071100999991182020%07d" % self._serial,
                        "package_info": "ABBQO+oYAAABAAAAAAAk+yPZGrs" + secrets.token_hex(8),
                        "create_time": wechat_v3_gw.rfc3339(), "user_name": name,
                        "user_name_cipher": body.get("user_name"),
                        "notify_url": notify_url, "notifications": [], "api": "v3"}
                self.bills[out_bill_no] = bill
                new = True
            out = {"out_bill_no": out_bill_no, "transfer_bill_no": bill["transfer_bill_no"],
                   "create_time": bill["create_time"], "state": bill["state"]}
            if bill["state"] == "WAIT_USER_CONFIRM":
                out["package_info"] = bill["package_info"]
            if bill["state"] == "FAIL":
                out["fail_reason"] = bill["fail_reason"]
        if new and bill["state"] in FINAL:
            self.notify_async(bill)
        if faults["wx_transfer_system_error"]:
            raise TransferV3Error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
        return self._reply(200, out)

    def query(self, req):
        return self._guard(req, self._query, req.match.group(1))

    def _query(self, _req, _body, out_bill_no):
        out_bill_no = urllib.parse.unquote(out_bill_no)
        with self.lock:
            bill = self.bills.get(out_bill_no)
            if bill is None:
                raise TransferV3Error(404, "NOT_FOUND", "记录不存在")
            ended = False
            if bill["state"] == "PROCESSING":
                if bill["processing_left"] > 0:
                    bill["processing_left"] -= 1
                else:
                    bill["state"] = "SUCCESS"
                    ended = True
            reply = self._reply(200, self.bill_object(bill, self.api.v2.appid))
        if ended:
            self.notify_async(bill)
        return reply

    def ctl_list(self, _req):
        with self.lock:
            return json_response({"transfers": [dict({n: v for n, v in b.items() if n != "notifications"},
                                                     calls=self.calls.get(k, 0),
                                                     notified=sum(1 for x in b["notifications"] if x["acked"]))
                                                for k, b in self.bills.items()],
                                  "calls": dict(self.calls), "balance_fen": self.balance_fen})

    def ctl_balance(self, req):
        fen = req.json().get("fen")
        if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
            raise BadRequest("fen must be a non-negative integer")
        with self.lock:
            self.balance_fen = fen
        return json_response({"balance_fen": fen})

    def ctl_confirm(self, req):
        """The payee confirms in WeChat: requestMerchantTransfer {mchId, appId,
        package} (or, for tests, the out_bill_no); "action": "cancel" declines."""
        body = req.json()
        with self.lock:
            if "package" in body:
                if body.get("mchId") != self.api.v2.mch_id or body.get("appId") != self.api.v2.appid:
                    raise BadRequest("requestMerchantTransfer:fail mchId or appId is not the bill's")
                bill = next((b for b in self.bills.values() if b["package_info"] == body["package"]), None)
            else:
                bill = self.bills.get(body.get("out_bill_no"))
            if bill is None or bill["state"] != "WAIT_USER_CONFIRM":
                raise BadRequest("no bill waiting for confirmation")
            if body.get("action") == "cancel":
                return json_response({"out_bill_no": bill["out_bill_no"], "state": bill["state"],
                                      "err_msg": "requestMerchantTransfer:cancel"})
            bill["state"] = "SUCCESS"
        self.notify_async(bill)
        return json_response({"out_bill_no": bill["out_bill_no"], "state": "SUCCESS",
                              "err_msg": "requestMerchantTransfer:ok"})

    def ctl_payee(self, req):
        body = req.json()
        openid, name = body.get("openid"), body.get("name")
        if not isinstance(openid, str) or not openid or not isinstance(name, str) or not name:
            raise BadRequest("openid and name are required")
        with self.lock:
            self.payees[openid] = name
        return json_response({"openid": openid})

    # notifications (MCHTRANSFER.BILL.FINISHED), sent by the v2 provider's retry loop

    def notify_resource(self, bill, wrong_amount=False):
        with self.lock:
            out = {"out_bill_no": bill["out_bill_no"], "transfer_bill_no": bill["transfer_bill_no"],
                   "state": bill["state"], "mch_id": self.api.v2.mch_id,
                   "transfer_amount": bill["fen"] + (1 if wrong_amount else 0), "openid": bill["openid"],
                   "create_time": bill["create_time"], "update_time": bill["create_time"]}
            if bill["state"] == "FAIL":
                out["fail_reason"] = bill["fail_reason"]
        return out

    def notify_async(self, bill):
        if not bill.get("notify_url"):
            return None
        if self.api.app.faults.snapshot()["no_notify"]:
            log("wechat v3 transfer notify out_bill_no=%s not sent (no_notify fault)" % bill["out_bill_no"])
            return None
        note = self.api.v2._new_note(bill, "transfer", "SUCCESS", bill["notify_url"], None)  # noqa: SLF001
        note["api"] = "v3"
        return self.api.app.scheduler.now(self.api.v2.attempt, bill, note, 0)

    def ctl_notify(self, req):
        body = req.json()
        with self.lock:
            bill = self.bills.get(str(body.get("out_bill_no", "")))
        if bill is None:
            return json_response({"error": "unknown out_bill_no"}, 404)
        return self.api._manual(bill, body, "MCHTRANSFER.BILL.FINISHED", "mch_payment",  # noqa: SLF001
                                self.notify_resource(bill), "商家转账单据终态通知")
