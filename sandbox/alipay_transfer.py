"""Alipay transfers to an Alipay account (certificate mode only):
alipay.fund.trans.uni.transfer and alipay.fund.trans.common.query.

out_biz_no is the idempotency key: a repeat of the same request answers the
same order and moves no money again; a repeat with another amount or payee is
refused. Payees whose identity contains "nobody" do not exist
(PAYEE_NOT_EXIST); a payee whose name does not match its identity's holder
("wrong name") is PAYEE_USER_INFO_ERROR. The merchant balance (default
100000000.00) is checked: BALANCE_IS_NOT_ENOUGH moves nothing.

Faults (POST /_sandbox/faults):
  transfer_timeout          the transfer is executed, then the reply is held 30 s
  transfer_system_error     the transfer is executed, the reply is 40004 SYSTEM_ERROR
  transfer_dealing          N: the transfer answers status DEALING, and the next
                            N queries too; then SUCCESS
  transfer_other_out_biz_no the (signed) reply names another out_biz_no
Control: GET /_sandbox/alipay/transfers (with per-out_biz_no call counts),
POST /_sandbox/alipay/balance {"fen": N},
POST /_sandbox/alipay/transfer_refund {"out_biz_no"}: a DEALING or SUCCESS
transfer is returned (退票: the payee's account could not take it): status
REFUND, the money back in the merchant's balance. A repeat of that
out_biz_no answers the REFUND order, as for any other order.
"""

import json
import re
import threading

from core import BadRequest, beijing_str, json_response

OUT_BIZ_NO_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
AMOUNT_RE = re.compile(r"(0|[1-9][0-9]*)\.([0-9]{2})\Z")
IDENTITY_TYPES = ("ALIPAY_LOGON_ID", "ALIPAY_USER_ID", "ALIPAY_OPEN_ID")


class TransferError(Exception):
    def __init__(self, sub_code, sub_msg):
        super().__init__(sub_code)
        self.fields = {"code": "40004", "msg": "Business Failed", "sub_code": sub_code,
                       "sub_msg": sub_msg}


def _fen(text):
    if not isinstance(text, str):
        return None
    m = AMOUNT_RE.match(text)
    if not m:
        return None
    fen = int(m.group(1)) * 100 + int(m.group(2))
    return fen if 0 < fen <= 100000000 * 100 else None


class Transfers:
    def __init__(self, app):
        self.app = app
        self.lock = threading.RLock()
        self.orders = {}          # out_biz_no -> order
        self.calls = {}           # out_biz_no -> number of transfer calls
        self.balance_fen = 100000000 * 100
        self._serial = 0

    def routes(self):
        return [("GET", r"/_sandbox/alipay/transfers", self.ctl_list),
                ("POST", r"/_sandbox/alipay/balance", self.ctl_balance),
                ("POST", r"/_sandbox/alipay/transfer_refund", self.ctl_refund)]

    def reset(self):
        with self.lock:
            self.orders.clear()
            self.calls.clear()
            self.balance_fen = 100000000 * 100

    def _check(self, biz):
        out_biz_no = biz.get("out_biz_no")
        if not isinstance(out_biz_no, str) or not OUT_BIZ_NO_RE.match(out_biz_no):
            raise TransferError("PARAM_ILLEGAL", "out_biz_no must be 1..64 letters, digits or _")
        if biz.get("product_code") != "TRANS_ACCOUNT_NO_PWD" or biz.get("biz_scene") != "DIRECT_TRANSFER":
            raise TransferError("PARAM_ILLEGAL", "product_code TRANS_ACCOUNT_NO_PWD and biz_scene DIRECT_TRANSFER")
        fen = _fen(biz.get("trans_amount"))
        if fen is None:
            raise TransferError("PARAM_ILLEGAL", "trans_amount must be like 12.34")
        payee = biz.get("payee_info")
        if not isinstance(payee, dict) or payee.get("identity_type") not in IDENTITY_TYPES \
                or not isinstance(payee.get("identity"), str) or not payee.get("identity"):
            raise TransferError("PARAM_ILLEGAL", "payee_info {identity, identity_type} required")
        if payee["identity_type"] == "ALIPAY_LOGON_ID" and not payee.get("name"):
            raise TransferError("PAYEE_USER_INFO_ERROR", "ALIPAY_LOGON_ID needs the payee's name")
        if not isinstance(biz.get("order_title"), str) or not biz["order_title"]:
            raise TransferError("PARAM_ILLEGAL", "order_title required")
        return out_biz_no, fen, payee

    def _reply(self, order, faults):
        out_biz_no = order["out_biz_no"]
        if faults.get("transfer_other_out_biz_no"):
            out_biz_no = "X" + out_biz_no[1:]
        return {"code": "10000", "msg": "Success", "out_biz_no": out_biz_no,
                "order_id": order["order_id"], "pay_fund_order_id": order["pay_fund_order_id"],
                "status": order["status"], "trans_date": order["trans_date"]}

    def transfer(self, _params, biz):
        faults = self.app.faults.snapshot()
        out_biz_no, fen, payee = self._check(biz)
        with self.lock:
            self.calls[out_biz_no] = self.calls.get(out_biz_no, 0) + 1
            order = self.orders.get(out_biz_no)
            if order is not None:
                if order["fen"] != fen or order["identity"] != payee["identity"]:
                    raise TransferError("PARAM_ILLEGAL", "out_biz_no %s was used with another amount or payee"
                                        % out_biz_no)
                return self._reply(order, faults)
            if "nobody" in payee["identity"]:
                raise TransferError("PAYEE_NOT_EXIST", "收款账号不存在")
            if payee.get("name") and "wrong name" in payee["name"]:
                raise TransferError("PAYEE_USER_INFO_ERROR", "收款方姓名与账户不符")
            if fen > self.balance_fen:
                raise TransferError("BALANCE_IS_NOT_ENOUGH", "付款方余额不足")
            self.balance_fen -= fen
            self._serial += 1
            order = {"out_biz_no": out_biz_no, "fen": fen, "identity": payee["identity"],
                     "name": payee.get("name"), "order_id": "20261207%012d" % self._serial,
                     "pay_fund_order_id": "20261207110070%010d" % self._serial,
                     "status": "DEALING" if faults.get("transfer_dealing") else "SUCCESS",
                     "dealing_left": faults.get("transfer_dealing", 0),
                     "trans_date": beijing_str()}
            self.orders[out_biz_no] = order
        if faults.get("transfer_system_error"):
            raise TransferError("SYSTEM_ERROR", "系统繁忙")
        return self._reply(order, faults)

    def query(self, _params, biz):
        out_biz_no = biz.get("out_biz_no")
        if not isinstance(out_biz_no, str) or not OUT_BIZ_NO_RE.match(out_biz_no):
            raise TransferError("PARAM_ILLEGAL", "out_biz_no required")
        with self.lock:
            order = self.orders.get(out_biz_no)
            if order is None:
                raise TransferError("ORDER_NOT_EXIST", "转账订单不存在")
            if order["status"] == "DEALING":
                if order["dealing_left"] > 0:
                    order["dealing_left"] -= 1
                else:
                    order["status"] = "SUCCESS"
            reply = {"code": "10000", "msg": "Success", "out_biz_no": out_biz_no,
                     "order_id": order["order_id"], "pay_fund_order_id": order["pay_fund_order_id"],
                     "status": order["status"], "trans_amount": "%d.%02d" % divmod(order["fen"], 100)}
            if order["status"] == "SUCCESS":
                reply["pay_date"] = order["trans_date"]
        return reply

    def ctl_list(self, _req):
        with self.lock:
            return json_response({"transfers": [dict(o, calls=self.calls.get(k, 0))
                                                for k, o in self.orders.items()],
                                  "calls": dict(self.calls), "balance_fen": self.balance_fen})

    def ctl_refund(self, req):
        out_biz_no = str(req.json().get("out_biz_no", ""))
        with self.lock:
            order = self.orders.get(out_biz_no)
            if order is None or order["status"] not in ("DEALING", "SUCCESS"):
                raise BadRequest("no DEALING or SUCCESS transfer %s" % out_biz_no)
            order["status"] = "REFUND"
            self.balance_fen += order["fen"]
        return json_response({"out_biz_no": out_biz_no, "status": "REFUND"})

    def ctl_balance(self, req):
        body = req.json()
        fen = body.get("fen")
        if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
            raise BadRequest("fen must be a non-negative integer")
        with self.lock:
            self.balance_fen = fen
        return json_response({"balance_fen": fen})


def dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
