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
POST /_sandbox/wechat_v3/transfer_confirm {"out_bill_no": …}.
"""

import re
import secrets
import threading
import urllib.parse

from core import BadRequest, json_response, log

OUT_BILL_NO_RE = re.compile(r"[A-Za-z0-9]{5,32}\Z")
BASE = r"/v3/fund-app/mch-transfer/transfer-bills"


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

    def routes(self):
        return [("POST", BASE, self.transfer),
                ("GET", BASE + r"/out-bill-no/([^/?]+)", self.query),
                ("GET", r"/_sandbox/wechat_v3/transfers", self.ctl_list),
                ("POST", r"/_sandbox/wechat_v3/transfer_balance", self.ctl_balance),
                ("POST", r"/_sandbox/wechat_v3/transfer_confirm", self.ctl_confirm)]

    def reset(self):
        with self.lock:
            self.bills.clear()
            self.calls.clear()
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

    def transfer(self, req):
        faults = self.api.app.faults.snapshot()
        reply = self._guard(req, self._transfer, faults)
        if faults["wx_transfer_timeout"]:
            log("wechat v3 transfer reply held back 30 s (wx_transfer_timeout fault)")
            self.api.app.stop_event.wait(30.0)
        return reply

    def _transfer(self, _req, body, faults):
        import wechat_v3_gw  # noqa: PLC0415 (rfc3339)
        appid = self.api.v2.appid
        out_bill_no, fen, openid = self._check(body, appid)
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
                if "wrongname" in openid:
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
                        "create_time": wechat_v3_gw.rfc3339()}
                self.bills[out_bill_no] = bill
            out = {"out_bill_no": out_bill_no, "transfer_bill_no": bill["transfer_bill_no"],
                   "create_time": bill["create_time"], "state": bill["state"]}
            if bill["state"] == "WAIT_USER_CONFIRM":
                out["package_info"] = bill["package_info"]
            if bill["state"] == "FAIL":
                out["fail_reason"] = bill["fail_reason"]
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
            if bill["state"] == "PROCESSING":
                if bill["processing_left"] > 0:
                    bill["processing_left"] -= 1
                else:
                    bill["state"] = "SUCCESS"
            return self._reply(200, self.bill_object(bill, self.api.v2.appid))

    def ctl_list(self, _req):
        with self.lock:
            return json_response({"transfers": [dict(b, calls=self.calls.get(k, 0))
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
        """The payee confirms in WeChat (wx.requestMerchantTransfer)."""
        out_bill_no = req.json().get("out_bill_no")
        with self.lock:
            bill = self.bills.get(out_bill_no)
            if bill is None or bill["state"] != "WAIT_USER_CONFIRM":
                raise BadRequest("no bill waiting for confirmation")
            bill["state"] = "SUCCESS"
        return json_response({"out_bill_no": out_bill_no, "state": "SUCCESS"})
