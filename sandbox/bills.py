"""Bills in the providers' formats, built from the sandbox's own trades, and
the discrepancy injection that reconciliation tests use.

A provider turns its trades into *entries* (one per payment and one per
refund completed on the bill's Beijing-time day); apply_faults() changes them
as /_sandbox/bill_faults asks; alipay_zip() and wechat_text() render them.
Every amount is integer fen; fees are round-half-up of amount x rate.

Sign conventions (see sandbox/README.md, "Bills"):
- Alipay detail CSV: payment rows (业务类型 交易) carry 订单金额 and 商家实收 as
  +amount and 服务费 as -fee; refund rows (业务类型 退款) carry 订单金额 = the
  trade's total (positive), 商家实收 = -refund amount, 服务费 = +fee returned.
- WeChat text bill: payment rows (交易状态 SUCCESS) carry 应结订单金额 and
  订单金额 = amount, 手续费 = +fee; refund rows (交易状态 REFUND) carry 应结订单金额
  and 订单金额 0.00, 退款金额 and 申请退款金额 = +refund amount, 手续费 = -fee
  returned.
"""

import csv
import datetime
import gzip
import io
import re
import zipfile

from core import BadRequest, beijing_now

CHANNELS = ("alipay", "wechat")
LIST_FAULTS = ("amount_mismatch", "status_mismatch", "fee_mismatch", "drop_row")
CRLF = "\r\n"


# --------------------------------------------------------------------------
# money and dates


def fee_fen(amount_fen, rate_bp):
    """Round half up of amount x rate (rate in basis points)."""
    return (amount_fen * rate_bp + 5000) // 10000


def yuan(fen):
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return "%s%d.%02d" % (sign, fen // 100, fen % 100)


def yuan5(fen):
    """WeChat fee columns: yuan with five decimals (the fee is whole fen here)."""
    return yuan(fen) + "000"


def rate_text(rate_bp):
    return "%d.%02d%%" % (rate_bp // 100, rate_bp % 100)


def normalize_date(text):
    """'yyyy-MM-dd' or 'yyyyMMdd' -> 'yyyy-MM-dd'; None when malformed."""
    if not isinstance(text, str):
        return None
    match = re.fullmatch(r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})", text)
    if not match:
        return None
    try:
        return datetime.date(*(int(g) for g in match.groups())).isoformat()
    except ValueError:
        return None


def chinese_date(day, time="00:00:00"):
    """'2026-01-02' -> '2026年01月02日 00:00:00'."""
    return "%s年%s月%s日 %s" % (day[0:4], day[5:7], day[8:10], time)


def next_day(day):
    moment = datetime.date(int(day[0:4]), int(day[5:7]), int(day[8:10]))
    return (moment + datetime.timedelta(days=1)).isoformat()


def next_month(month):
    year, mon = int(month[0:4]), int(month[5:7])
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return "%04d-%02d" % (year, mon)


# --------------------------------------------------------------------------
# discrepancy injection (/_sandbox/bill_faults)


class BillFaults:
    """Per (channel, yyyy-MM-dd) discrepancy specs."""

    def __init__(self):
        import threading
        self._lock = threading.Lock()
        self._specs = {}

    def reset(self):
        with self._lock:
            self._specs.clear()

    def list(self):
        with self._lock:
            return [dict(spec) for _key, spec in sorted(self._specs.items())]

    def get(self, channel, day):
        with self._lock:
            spec = self._specs.get((channel, day))
            return dict(spec) if spec else None

    def update(self, body):
        channel = body.get("channel")
        if channel not in CHANNELS:
            raise BadRequest('channel must be "alipay" or "wechat"')
        day = normalize_date(body.get("date"))
        if day is None:
            raise BadRequest("date must be yyyy-MM-dd or yyyyMMdd")
        known = set(LIST_FAULTS) | {"channel", "date", "extra_row", "clear"}
        for key in body:
            if key not in known:
                raise BadRequest("unknown bill fault %r" % key)
        if body.get("clear"):
            with self._lock:
                self._specs.pop((channel, day), None)
            return self.list()
        spec = {"channel": channel, "date": day}
        for key in LIST_FAULTS:
            spec[key] = _names(body.get(key), key)
        extra = body.get("extra_row", False)
        if extra is True:
            spec["extra_row"] = ["SANDBOX_EXTRA_%s_1" % day.replace("-", "")]
        elif extra is False or extra is None:
            spec["extra_row"] = []
        else:
            spec["extra_row"] = _names(extra, "extra_row")
        with self._lock:
            self._specs[(channel, day)] = spec
        return self.list()


def _names(value, key):
    if value is None or value is False:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadRequest("%s takes an out_trade_no or a list of them" % key)
    return list(value)


def apply_faults(entries, spec, paid_entry, extra_entry):
    """Return the entries as the provider's bill shows them.

    paid_entry(out_trade_no) -> a payment entry for a trade the sandbox has
    not paid that day (None when it does not know the trade);
    extra_entry(out_trade_no) -> a payment entry for a trade it never had."""
    if not spec:
        return entries
    out = [dict(e) for e in entries if e["out_trade_no"] not in spec["drop_row"]]
    for name in spec["status_mismatch"]:
        rows = [e for e in out if e["out_trade_no"] == name]
        if rows:
            for row in rows:
                if row["kind"] == "pay":
                    # a payment the provider reports as refunded
                    row["kind"] = "refund"
                    row["refund_no"] = "status_mismatch"
                    row["refund_id"] = "0"
                    row["refund_fen"] = row["amount_fen"]
                else:
                    # a refund the provider reports as a payment
                    row["kind"] = "pay"
                    row["amount_fen"] = row["refund_fen"]
        else:
            entry = paid_entry(name) or extra_entry(name)
            out.append(entry)
    for row in out:
        if row["out_trade_no"] in spec["amount_mismatch"]:
            if row["kind"] == "pay":
                row["amount_fen"] += 1
            else:
                row["refund_fen"] += 1
        if row["out_trade_no"] in spec["fee_mismatch"]:
            row["fee_fen"] += 1
    for name in spec["extra_row"]:
        out.append(extra_entry(name))
    out.sort(key=lambda e: e["time"])
    return out


# --------------------------------------------------------------------------
# Alipay: a zip of two GBK CSV files


ALIPAY_DETAIL_HEADER = [
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号",
    "门店名称", "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）",
    "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）",
    "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号", "服务费（元）",
    "分润（元）", "备注"]
ALIPAY_SUMMARY_HEADER = [
    "门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）",
    "支付宝优惠（元）", "商家优惠（元）", "卡消费金额（元）", "服务费（元）", "分润（元）",
    "实收净额（元）"]
DASHES = "-----------------------------------------"


def _csv_line(fields):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


class _GbkZipInfo(zipfile.ZipInfo):
    """Entry names in GBK without the UTF-8 flag, as Alipay's bills have them."""

    def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's own hook name
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def alipay_totals(entries):
    pays = [e for e in entries if e["kind"] == "pay"]
    refunds = [e for e in entries if e["kind"] == "refund"]
    pay_fen = sum(e["amount_fen"] for e in pays)
    refund_fen = sum(e["refund_fen"] for e in refunds)
    fee = -sum(e["fee_fen"] for e in pays) + sum(e["fee_fen"] for e in refunds)
    return {"pay_count": len(pays), "refund_count": len(refunds), "order_fen": pay_fen,
            "received_fen": pay_fen - refund_fen, "refund_fen": refund_fen, "fee_fen": fee,
            "net_fen": pay_fen - refund_fen + fee}


def alipay_zip(entries, period, account):
    """period: 'yyyy-MM-dd' or 'yyyy-MM'. Returns (zip bytes, [names])."""
    if len(period) == 10:
        start, end, stamp = period, next_day(period), period.replace("-", "")
    else:
        start, end, stamp = period + "-01", next_month(period) + "-01", period.replace("-", "")
    exported = beijing_now().strftime("%Y年%m月%d日 %H:%M:%S")
    range_line = "#起始日期：[%s]   终止日期：[%s]" % (chinese_date(start), chinese_date(end))
    lines = ["#支付宝业务明细查询", "#账号：[%s]" % account, range_line,
             "#%s业务明细列表%s" % (DASHES, DASHES[:-1]), _csv_line(ALIPAY_DETAIL_HEADER)]
    zero = "0.00"
    for e in entries:
        pay = e["kind"] == "pay"
        lines.append(_csv_line([
            e["provider_no"] + "\t", e["out_trade_no"] + "\t", "交易" if pay else "退款",
            e["subject"], e["created"], e["time"], "", "", "", "", e["buyer"],
            yuan(e["amount_fen"] if pay else e["total_fen"]),
            yuan(e["amount_fen"] if pay else -e["refund_fen"]),
            zero, zero, zero, zero, zero, "", zero, zero,
            "" if pay else e["refund_no"] + "\t",
            yuan(-e["fee_fen"] if pay else e["fee_fen"]), zero, ""]))
    totals = alipay_totals(entries)
    lines += ["#%s业务明细列表结束%s" % (DASHES, DASHES[:-5]),
              "#交易合计：%d笔，商家实收共%s元，商家优惠共0.00元" % (
                  totals["pay_count"], yuan(totals["order_fen"])),
              "#退款合计：%d笔，商家实收退款共%s元，商家优惠退款共0.00元" % (
                  totals["refund_count"], yuan(-totals["refund_fen"])),
              "#导出时间：[%s]" % exported]
    detail = (CRLF.join(lines) + CRLF).encode("gbk", "replace")
    summary_lines = [
        "#支付宝业务汇总查询", "#账号：[%s]" % account, range_line,
        "#%s业务汇总列表%s" % (DASHES, DASHES[:-1]), _csv_line(ALIPAY_SUMMARY_HEADER),
        _csv_line(["合计", "", str(totals["pay_count"]), str(totals["refund_count"]),
                   yuan(totals["order_fen"]), yuan(totals["received_fen"]), zero, zero, zero,
                   yuan(totals["fee_fen"]), zero, yuan(totals["net_fen"])]),
        "#%s业务汇总列表结束%s" % (DASHES, DASHES[:-5]),
        "#导出时间：[%s]" % exported]
    summary = (CRLF.join(summary_lines) + CRLF).encode("gbk", "replace")
    names = ["%s_%s_业务明细.csv" % (account, stamp), "%s_%s_业务明细(汇总).csv" % (account, stamp)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in zip(names, (detail, summary)):
            info = _GbkZipInfo(name, date_time=beijing_now().timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buf.getvalue(), names


# --------------------------------------------------------------------------
# WeChat: backtick-prefixed text


WECHAT_HEADERS = {
    "ALL": ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
            "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
            "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
            "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注"],
    "SUCCESS": ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号",
                "商户订单号", "用户标识", "交易类型", "交易状态", "付款银行", "货币种类",
                "应结订单金额", "代金券金额", "商品名称", "商户数据包", "手续费", "费率", "订单金额",
                "费率备注"],
    "REFUND": ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号",
               "商户订单号", "用户标识", "交易类型", "交易状态", "付款银行", "货币种类",
               "应结订单金额", "代金券金额", "退款申请时间", "退款成功时间", "微信退款单号",
               "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称",
               "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注"],
}
WECHAT_SUMMARY_HEADER = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额",
                         "手续费总金额", "订单总金额", "申请退款总金额"]


def _ticked(fields):
    return ",".join("`" + f.replace(",", "，") for f in fields)


def wechat_totals(entries):
    pays = [e for e in entries if e["kind"] == "pay"]
    refunds = [e for e in entries if e["kind"] == "refund"]
    pay_fen = sum(e["amount_fen"] for e in pays)
    refund_fen = sum(e["refund_fen"] for e in refunds)
    fee = sum(e["fee_fen"] for e in pays) - sum(e["fee_fen"] for e in refunds)
    return {"count": len(entries), "settle_fen": pay_fen, "refund_fen": refund_fen,
            "fee_fen": fee, "order_fen": pay_fen, "apply_refund_fen": refund_fen}


def wechat_text(entries, bill_type, appid, mch_id, rate_bp):
    """The downloadbill body (str). bill_type ALL, SUCCESS or REFUND."""
    if bill_type == "SUCCESS":
        entries = [e for e in entries if e["kind"] == "pay"]
    elif bill_type == "REFUND":
        entries = [e for e in entries if e["kind"] == "refund"]
    rate = rate_text(rate_bp)
    lines = [",".join(WECHAT_HEADERS[bill_type])]
    for e in entries:
        pay = e["kind"] == "pay"
        # the REFUND bill dates a row by its payment, with the refund's own times
        # in 退款申请时间/退款成功时间; ALL and SUCCESS date it by the event itself
        when = e.get("pay_time") or e["time"] if bill_type == "REFUND" else e["time"]
        common = [when, appid, mch_id, "0", e.get("device_info") or "",
                  e["provider_no"], e["out_trade_no"], e["buyer"], e["trade_type"],
                  "SUCCESS" if pay else "REFUND", "OTHERS", "CNY",
                  yuan(e["amount_fen"]) if pay else "0.00", "0.00"]
        fee = yuan5(e["fee_fen"] if pay else -e["fee_fen"])
        if bill_type == "SUCCESS":
            row = common + [e["subject"], e.get("attach") or "", fee, rate,
                            yuan(e["amount_fen"]), ""]
        elif bill_type == "REFUND":
            row = common + [e.get("refund_created") or e["time"], e["time"], e["refund_id"],
                            e["refund_no"], yuan(e["refund_fen"]), "0.00", "ORIGINAL", "SUCCESS",
                            e["subject"], e.get("attach") or "", fee, rate, "0.00",
                            yuan(e["refund_fen"]), ""]
        else:
            row = common + [
                "0" if pay else e["refund_id"], "0" if pay else e["refund_no"],
                "0.00" if pay else yuan(e["refund_fen"]), "0.00",
                "" if pay else "ORIGINAL", "" if pay else "SUCCESS",
                e["subject"], e.get("attach") or "", fee, rate,
                yuan(e["amount_fen"]) if pay else "0.00",
                "0.00" if pay else yuan(e["refund_fen"]), ""]
        lines.append(_ticked(row))
    totals = wechat_totals(entries)
    lines.append(",".join(WECHAT_SUMMARY_HEADER))
    lines.append(_ticked([str(totals["count"]), yuan(totals["settle_fen"]),
                          yuan(totals["refund_fen"]), "0.00", yuan5(totals["fee_fen"]),
                          yuan(totals["order_fen"]), yuan(totals["apply_refund_fen"])]))
    return CRLF.join(lines) + CRLF


def gzip_bytes(data):
    return gzip.compress(data, mtime=0)
