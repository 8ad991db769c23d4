"""Money end to end: the ledger, the daily report, settlement batches, the
reconciliation against both providers' bills, and cron's daily duties,
through a real web stack, MariaDB and the sandbox.

The module runs on its OWN database, sandbox and stack (a second Harness in
<run>/ledger): settlement closes every creator's payable and a bill lists
every trade of the day, so other modules' traffic in the session's database
would make exact amounts unknowable. One "day" of traffic is made once
(payments on both channels, with and without a creator, partial and full
refunds); the tests then run in file order on it:
  ledger entries and the report -> reconciliation (clean, again, from a
  file, each injected discrepancy, a lost notification, a refund finished
  only at the provider, a late payment) -> settlement (nothing yet, after
  the delay, concurrently, again, a refund after settlement) -> cron ->
  surcharge + realtime settlement on a second stack -> a refund whose
  provider fee rounds differently from the ledger's reversal.

Every expected amount is computed here from the documented rules (README
"Money", include/ledger_math.h), not read back from paygate:
  fee      F = round_half_up(A * 60 / 10000)
  creator  C = floor((A - F) * (10000 - 3000) / 10000)   (0 without a creator)
  platform P = A - F - C
  a refund of R after x0 already refunded: cumulative
  fee_cum(x) = round_half_up(F * x / A), creator_cum(x) = floor(C * (x - fee_cum(x)) / (A - F)),
  the part = cum(x0 + R) - cum(x0); platform = R - fee part - creator part.
The configuration is the harness default: fees absorb at 60 bp on both
channels, settlement delayed by 7 days, platform commission 3000 bp; the
sandbox charges the same 60 bp in its bills."""

import csv
import datetime
import gzip
import io
import json
import subprocess
import time
import uuid
import zipfile

import pytest
import requests

from conftest import (API_KEY, APP_ID, ASAN_DIR, BUILD, RUN, TIMEOUT, WX_APPID, WX_MCH_ID, Harness,
                      alipay_string_to_sign, beijing_now_str, load_private, rsa2_sign,
                      unique_user, wx_nonce, wx_sign, wx_xml)

AUTH = {"Authorization": "Bearer " + API_KEY}
RATE_BP = 60
COMMISSION_BP = 3000
DELAY_DAYS = 7
TZ_BEIJING = datetime.timezone(datetime.timedelta(hours=8))

# on top of the harness's alice / course-c (9900, alice) / ebook-sql (1990, none)
BOB = ("bob", 'Li, Bob "Rusty"')   # a comma and quotes: the payout CSV must quote them
EXTRA_PRODUCTS = [("course-b", "Rust for the rest of us", 12250, "bob"),   # fee 73.5 -> 74
                  ("course-adv", "Advanced C", 29900, "alice")]
CREATOR_OF = {"course-c": "alice", "ebook-sql": None, "course-b": "bob", "course-adv": "alice"}
PRICE = {"course-c": 9900, "ebook-sql": 1990, "course-b": 12250, "course-adv": 29900}
CREATOR_NAMES = {"alice": "Alice Zhang", "bob": BOB[1]}
CHANNELS = ["alipay", "wechat"]


# --------------------------------------------------------- the rules, again

def fee_of(amount):
    return (amount * RATE_BP + 5000) // 10000


def split_payment(amount, creator, commission_bp=COMMISSION_BP):
    fee = fee_of(amount)
    net = amount - fee
    cr = net * (10000 - commission_bp) // 10000 if creator else 0
    return {"amount": amount, "fee": fee, "creator": cr, "platform": net - cr}


def split_refund(pay, before, refund):
    a, f, c = pay["amount"], pay["fee"], pay["creator"]
    n = a - f

    def fee_cum(x):
        return (2 * f * x + a) // (2 * a)

    def creator_cum(x):
        return c * (x - fee_cum(x)) // n if n > 0 else 0

    x0, x1 = before, before + refund
    fee = fee_cum(x1) - fee_cum(x0)
    cr = creator_cum(x1) - creator_cum(x0)
    return {"amount": refund, "fee": fee, "creator": cr, "platform": refund - fee - cr}


def entries_of(channel, creator, parts, sign):
    """The ledger entries (account -> fen) of a payment (sign +1) or a refund (-1)."""
    e = {"clearing:%s" % channel: sign * parts["amount"],
         "fees:%s" % channel: -sign * parts["fee"],
         "revenue:platform": -sign * parts["platform"]}
    if creator:
        e["payable:creator:%s" % creator] = -sign * parts["creator"]
    return {k: v for k, v in e.items() if v != 0}


def yuan(fen):
    return "%d.%02d" % (fen // 100, fen % 100)


# ------------------------------------------------------------------- a day

class Pay:
    def __init__(self, key, channel, sku, order_no, payment_no, amount=None,
                 commission_bp=COMMISSION_BP):
        self.key, self.channel, self.sku = key, channel, sku
        self.order_no, self.payment_no = order_no, payment_no
        self.amount = amount or PRICE[sku]
        self.creator = CREATOR_OF[sku]
        self.split = split_payment(self.amount, self.creator, commission_bp)
        self.refunds = []   # [(refund_no, parts)]

    @property
    def refunded(self):
        return sum(p["amount"] for _n, p in self.refunds)

    def __repr__(self):
        return "<%s %s %s %d>" % (self.key, self.channel, self.payment_no, self.amount)


class Day:
    """The module's traffic: what was paid and refunded, kept up to date by
    the tests that add to it."""

    def __init__(self, h, st):
        self.h, self.st = h, st
        today = datetime.datetime.now(TZ_BEIJING).date()
        self.date = today.isoformat()
        self.compact = today.strftime("%Y%m%d")
        self.plus = lambda days: (today + datetime.timedelta(days=days)).isoformat()
        self.pays = {}      # key -> Pay (paid ones)
        self.closed = {}    # key -> checkout reply of a closed (never paid) order

    def on(self, channel):
        return [p for p in self.pays.values() if p.channel == channel]

    # -- traffic through the HTTP API and the sandbox --------------------
    def checkout(self, channel, sku, st=None, surcharge=False):
        r = self.h.checkout(st or self.st, product=sku, channel=channel,
                            method="qr" if channel == "alipay" else "native",
                            user=unique_user("ledger"))
        assert r.status_code == 201, r.text
        c = r.json()
        # absorb: the buyer pays the price; surcharge: price + the fee on it
        want = PRICE[sku] + (fee_of(PRICE[sku]) if surcharge else 0)
        assert c["amount_fen"] == want, c
        return c

    def provider_pay(self, channel, payment_no):
        path = "/_sandbox/pay" if channel == "alipay" else "/_sandbox/wechat/pay"
        r = self.h.sandbox_post(path, {"out_trade_no": payment_no})
        assert r.status_code == 200, r.text

    def buy(self, key, channel, sku, st=None, surcharge=False, commission_bp=COMMISSION_BP):
        c = self.checkout(channel, sku, st, surcharge)
        self.provider_pay(channel, c["payment_no"])
        self.h.wait_order_status(st or self.st, c["order_no"], "PAID")
        p = Pay(key, channel, sku, c["order_no"], c["payment_no"], c["amount_fen"], commission_bp)
        self.pays[key] = p
        return p

    def refund(self, pay, amount):
        parts = split_refund(pay.split, pay.refunded, amount)
        r = requests.post("%s/orders/%s/refund" % (self.st.base_url, pay.order_no),
                          data={"amount_fen": str(amount), "request_id": unique_user("rq")},
                          headers=AUTH, timeout=60)
        assert r.status_code == 201, r.text
        refund_no = r.json()["refund_no"]
        wait_for(lambda: self.h.query("SELECT status FROM refunds WHERE refund_no=%s",
                                      refund_no)[0]["status"] == "SUCCEEDED",
                 20, "refund %s to succeed" % refund_no)
        pay.refunds.append((refund_no, parts))
        return refund_no

    def close(self, key, channel, sku):
        c = self.checkout(channel, sku)
        self.h.age_payment(c["payment_no"], 300, channel)   # WeChat: no close before 5 min
        r = requests.post("%s/orders/%s/close" % (self.st.base_url, c["order_no"]), headers=AUTH,
                          timeout=60)
        assert r.status_code == 200, r.text
        assert self.h.payment(c["payment_no"])["status"] == "CLOSED"
        self.closed[key] = c
        return c

    # -- what the books must say -----------------------------------------
    def expected_report(self, channel=None):
        tot = {"gross_fen": 0, "refunds_fen": 0, "fees_fen": 0, "platform_fen": 0,
               "creators_fen": 0}
        for p in self.pays.values():
            if channel and p.channel != channel:
                continue
            tot["gross_fen"] += p.amount
            tot["fees_fen"] += p.split["fee"]
            tot["platform_fen"] += p.split["platform"]
            tot["creators_fen"] += p.split["creator"]
            for _n, r in p.refunds:
                tot["refunds_fen"] += r["amount"]
                tot["fees_fen"] -= r["fee"]
                tot["platform_fen"] -= r["platform"]
                tot["creators_fen"] -= r["creator"]
        return tot

    def creator_share(self, creator):
        """The creator's share of the day, net of refunds."""
        return sum(p.split["creator"] - sum(r["creator"] for _n, r in p.refunds)
                   for p in self.pays.values() if p.creator == creator)

    def bill_keys(self, channel):
        """(kind, out_trade_no, out_refund_no) of every movement the bill must list."""
        keys = set()
        for p in self.on(channel):
            keys.add(("payment", p.payment_no, None))
            for n, _r in p.refunds:
                keys.add(("refund", p.payment_no, n))
        return keys


def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError("timed out after %s s: %s" % (timeout, what))


def wait_past_beijing_midnight(margin_s=300):
    """The whole module works on one Beijing day: if it would end after
    midnight, start after it instead."""
    now = datetime.datetime.now(TZ_BEIJING)
    midnight = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
    left = (midnight - now).total_seconds()
    if left < margin_s:
        time.sleep(left + 2)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def lh(harness):
    """The module's own harness (database, sandbox, webhook receiver) in
    <run>/ledger. It depends on the session's so that the session owns the
    run folder first; its sanitizer reports go to the session's folder."""
    h = Harness(run_dir=RUN / "ledger", asan_dir=ASAN_DIR)
    try:
        h.start()
        h.ctl("creator", "add", "--id", BOB[0], "--name", BOB[1])
        for sku, title, fen, creator in EXTRA_PRODUCTS:
            h.ctl("product", "add", "--sku", sku, "--title", title, "--price-fen", str(fen),
                  "--creator", creator)
    except BaseException:
        h.stop()
        raise
    yield h
    errors = h.stop()
    assert not errors, errors


@pytest.fixture(scope="module")
def st(lh):
    """The stack paygatectl's config names (refund callbacks arrive there)."""
    return lh.stack(next(iter(lh.ports)))


@pytest.fixture(scope="module")
def day(lh, st):
    wait_past_beijing_midnight()
    d = Day(lh, st)
    # alipay
    d.buy("a_c", "alipay", "course-c")          # alice, kept (refunded after settlement)
    a_b = d.buy("a_b", "alipay", "course-b")    # bob, partial refund
    a_e = d.buy("a_e", "alipay", "ebook-sql")   # no creator, full refund at once
    # wechat
    w_c = d.buy("w_c", "wechat", "course-c")    # alice, partial refund
    w_b = d.buy("w_b", "wechat", "course-b")    # bob, full refund in two steps
    d.buy("w_e", "wechat", "ebook-sql")         # no creator, kept
    d.refund(a_b, 5000)
    d.refund(a_e, 1990)
    d.refund(w_c, 3333)
    d.refund(w_b, 1000)
    d.refund(w_b, 11250)
    # orders closed before anyone paid: no money, no bill row
    d.close("a_x", "alipay", "ebook-sql")
    d.close("w_x", "wechat", "ebook-sql")
    # these refunds are ones where the provider's per-refund fee,
    # round_half_up(R * 60 / 10000), equals the ledger's cumulative reversal,
    # so a clean day must reconcile (the other case: the last test)
    for p in d.pays.values():
        for _n, r in p.refunds:
            assert r["fee"] == fee_of(r["amount"]), (p, r)
    return d


# ------------------------------------------------------------------ helpers

def ledger_txn(h, txn_id):
    rows = h.query("SELECT account, amount_fen FROM ledger_entries WHERE txn_id=%s", txn_id)
    return {r["account"]: r["amount_fen"] for r in rows}


def account_sum(h, account, where="", *args):
    rows = h.query("SELECT COALESCE(SUM(amount_fen), 0) AS s FROM ledger_entries WHERE account=%s "
                   + where, account, *args)
    return int(rows[0]["s"])


def assert_ledger_balanced(h):
    bad = h.query("SELECT txn_id, SUM(amount_fen) AS s FROM ledger_entries GROUP BY txn_id "
                  "HAVING SUM(amount_fen) <> 0")
    assert bad == [], bad
    assert int(h.query("SELECT COALESCE(SUM(amount_fen), 0) AS s FROM ledger_entries")[0]["s"]) == 0


def reconcile(h, channel, date, *extra, as_json=True):
    args = (["--json"] if as_json else []) + ["reconcile", "--channel", channel, "--date", date]
    r = h.ctl(*(args + list(extra)), check=False)
    assert r.returncode in (0, 1), "reconcile exit %d\n%s\n%s" % (r.returncode, r.stdout, r.stderr)
    if not as_json:
        return r.returncode, r.stdout
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        raise AssertionError("reconcile --json printed no JSON:\n%s\n%s" % (r.stdout, r.stderr))
    return r.returncode, doc


def item_keys(doc, category=None):
    return {(i["kind"], i["out_trade_no"], i["out_refund_no"]) for i in doc["items"]
            if category is None or i["category"] == category}


def counts(doc):
    return {k: doc[k] for k in ("matched", "amount_mismatch", "status_mismatch", "fee_mismatch",
                                "missing_local", "missing_provider")}


def forget_bill(h, channel, date):
    """Imported rows are kept for good (importing again adds nothing); a
    discrepancy test starts as if the day's bill had never been fetched."""
    h.query("DELETE FROM bill_rows WHERE channel=%s AND bill_date=%s", channel, date)


def set_bill_faults(h, channel, date, **spec):
    r = h.sandbox_post("/_sandbox/bill_faults", dict({"channel": channel, "date": date}, **spec))
    assert r.status_code == 200, r.text


def clear_bill_faults(h, channel, date):
    set_bill_faults(h, channel, date, clear=True)


def download_alipay_bill(h, date):
    """bill.downloadurl.query signed with the app key, then the zip."""
    params = {"app_id": APP_ID, "method": "alipay.data.dataservice.bill.downloadurl.query",
              "format": "JSON", "charset": "utf-8", "sign_type": "RSA2",
              "timestamp": beijing_now_str(), "version": "1.0",
              "biz_content": json.dumps({"bill_type": "trade", "bill_date": date})}
    params["sign"] = rsa2_sign(load_private(h.keys["pkcs8"]), alipay_string_to_sign(params, False))
    r = requests.post(h.sandbox_url + "/gateway.do", data=params, timeout=TIMEOUT)
    inner = r.json()["alipay_data_dataservice_bill_downloadurl_query_response"]
    assert inner["code"] == "10000", inner
    z = requests.get(inner["bill_download_url"], timeout=TIMEOUT)
    assert z.status_code == 200 and z.content[:2] == b"PK", z.status_code
    return z.content


def download_wechat_bill(h, compact_date, gzip_it=False):
    f = {"appid": WX_APPID, "mch_id": WX_MCH_ID, "nonce_str": wx_nonce(),
         "bill_date": compact_date, "bill_type": "ALL"}
    if gzip_it:
        f["tar_type"] = "GZIP"
    f["sign"] = wx_sign(f, "MD5")
    r = requests.post(h.sandbox_url + "/pay/downloadbill", data=wx_xml(f).encode(),
                      headers={"Content-Type": "text/xml"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    if gzip_it:
        assert gzip.decompress(r.content).startswith("交易时间".encode())
    else:
        assert r.content.startswith("交易时间".encode()), r.content[:200]
    return r.content


# ------------------------------------------------------------------ ledger

def test_every_payment_and_refund_is_booked_to_the_fen(lh, day):
    assert_ledger_balanced(lh)
    for p in day.pays.values():
        assert ledger_txn(lh, "pay:" + p.payment_no) == entries_of(p.channel, p.creator, p.split, +1), p
        row = lh.payment(p.payment_no)
        assert (row["fee_fen"], row["creator_id"]) == (p.split["fee"], p.creator), (p, row)
        for n, r in p.refunds:
            assert ledger_txn(lh, "refund:" + n) == entries_of(p.channel, p.creator, r, -1), (p, n)
    # the columns the report, settlement and reconciliation rely on
    rows = lh.query("SELECT txn_id, account, kind, channel, creator_id, business_date, available_on, "
                    "settlement_batch_id FROM ledger_entries")
    assert rows
    for e in rows:
        assert e["business_date"].isoformat() == day.date, e
        assert e["settlement_batch_id"] is None, e
        assert e["channel"] in CHANNELS, e
        assert e["kind"] == ("payment" if e["txn_id"].startswith("pay:") else "refund"), e
        if e["account"].startswith("payable:creator:"):
            assert e["creator_id"] == e["account"].split(":")[2], e
            # delayed mode: a payment's share from paid day + 7, a refund's at once
            want = day.plus(DELAY_DAYS) if e["kind"] == "payment" else day.date
            assert e["available_on"].isoformat() == want, e
        else:
            assert e["creator_id"] is None and e["available_on"] is None, e
    # closed orders booked nothing
    for c in day.closed.values():
        assert ledger_txn(lh, "pay:" + c["payment_no"]) == {}


def test_a_full_refund_returns_every_account_of_the_payment_to_zero(lh, day):
    full = [p for p in day.pays.values() if p.refunded == p.amount]
    assert {p.key for p in full} == {"a_e", "w_b"}
    for p in full:
        txns = ["pay:" + p.payment_no] + ["refund:" + n for n, _r in p.refunds]
        rows = lh.query("SELECT account, SUM(amount_fen) AS s FROM ledger_entries WHERE txn_id IN (%s) "
                        "GROUP BY account" % ",".join(["%s"] * len(txns)), *txns)
        assert rows and all(int(r["s"]) == 0 for r in rows), (p, rows)
    # and a partial one leaves exactly the rest of each part
    p = day.pays["w_c"]
    rest = entries_of(p.channel, p.creator, split_payment(p.amount - 3333, p.creator), +1)
    n = p.refunds[0][0]
    rows = lh.query("SELECT account, SUM(amount_fen) AS s FROM ledger_entries WHERE txn_id IN (%s, %s) "
                    "GROUP BY account", "pay:" + p.payment_no, "refund:" + n)
    got = {r["account"]: int(r["s"]) for r in rows}
    assert sum(got.values()) == 0 and got["clearing:wechat"] == rest["clearing:wechat"], got


def test_report_ties_out_per_channel_and_in_total(lh, day):
    r = lh.ctl("report", "--from", day.date, "--to", day.date)
    assert "every transaction sums to zero: yes" in r.stdout, r.stdout
    doc = lh.ctl_json("report", "--from", day.date, "--to", day.date)
    fields = ("gross_fen", "refunds_fen", "fees_fen", "platform_fen", "creators_fen")
    got = {(row["day"], row["channel"]): {k: int(row[k]) for k in fields} for row in doc}
    want = {(day.date, ch): day.expected_report(ch) for ch in CHANNELS}
    want[(day.date, "all")] = day.expected_report()
    want[("TOTAL", "all")] = day.expected_report()
    assert got == want, (doc, want)
    for v in got.values():
        assert v["gross_fen"] - v["refunds_fen"] == (v["fees_fen"] + v["platform_fen"]
                                                     + v["creators_fen"]), v
    # a period without movements: no rows, still balanced
    empty = lh.ctl_json("report", "--from", day.plus(-30), "--to", day.plus(-20))
    assert empty == []
    # usage errors
    assert lh.ctl("report", "--from", day.date, check=False).returncode == 2
    # an entry that breaks the balance (as a hand edit would): the report says so, exit 1
    lh.query("INSERT INTO ledger_entries (txn_id, account, amount_fen, kind, channel, business_date) "
             "VALUES ('pay:test-unbalanced', 'clearing:alipay', 1, 'payment', 'alipay', %s)",
             day.plus(-50))
    try:
        r = lh.ctl("report", "--from", day.date, "--to", day.date, check=False)
    finally:
        lh.query("DELETE FROM ledger_entries WHERE txn_id='pay:test-unbalanced'")
    assert r.returncode == 1 and "every transaction sums to zero: NO" in r.stdout, r.stdout


# ---------------------------------------------------------- reconciliation

@pytest.mark.parametrize("channel", CHANNELS)
def test_reconcile_a_clean_day_exits_0(lh, day, channel):
    want = day.bill_keys(channel)
    code, doc = reconcile(lh, channel, day.date)
    assert code == 0, doc
    assert (doc["channel"], doc["date"]) == (channel, day.date)
    assert doc["rows"] == len(want) and doc["imported"] == len(want), doc
    assert counts(doc) == {"matched": len(want), "amount_mismatch": 0, "status_mismatch": 0,
                           "fee_mismatch": 0, "missing_local": 0, "missing_provider": 0}, doc
    assert doc["unexplained"] == 0
    # --json lists every item, matched ones included, with both amounts
    assert item_keys(doc, "matched") == want, doc["items"]
    amounts = {p.payment_no: p.amount for p in day.on(channel)}
    amounts.update({n: r["amount"] for p in day.on(channel) for n, r in p.refunds})
    for i in doc["items"]:
        fen = amounts[i["out_refund_no"] or i["out_trade_no"]]
        assert int(i["local_fen"]) == int(i["bill_fen"]) == fen, i
    # stored: the run and its items
    run = lh.query("SELECT * FROM recon_runs WHERE id=%s", doc["run_id"])[0]
    assert (run["channel"], run["bill_date"].isoformat(), run["matched"]) == (channel, day.date,
                                                                              len(want)), run
    assert lh.query("SELECT COUNT(*) AS n FROM recon_items WHERE run_id=%s",
                    doc["run_id"])[0]["n"] == len(want)
    rows = lh.query("SELECT kind, out_trade_no, out_refund_no, amount_fen, fee_fen FROM bill_rows "
                    "WHERE channel=%s AND bill_date=%s", channel, day.date)
    assert {(r["kind"], r["out_trade_no"], r["out_refund_no"]) for r in rows} == want
    for r in rows:
        assert r["fee_fen"] in (fee_of(r["amount_fen"]), -fee_of(r["amount_fen"])), r


@pytest.mark.parametrize("channel", CHANNELS)
def test_reconcile_again_imports_nothing_and_says_the_same(lh, day, channel):
    want = day.bill_keys(channel)
    before = lh.query("SELECT COUNT(*) AS n FROM bill_rows")[0]["n"]
    code, doc = reconcile(lh, channel, day.date)
    assert code == 0 and doc["imported"] == 0 and doc["rows"] == len(want), doc
    assert counts(doc)["matched"] == len(want) and doc["unexplained"] == 0, doc
    assert lh.query("SELECT COUNT(*) AS n FROM bill_rows")[0]["n"] == before
    # the operator's table
    code, text = reconcile(lh, channel, day.date, as_json=False)
    assert code == 0, text
    assert "reconciliation %s %s" % (channel, day.date) in text, text
    assert "0 newly imported" in text and "everything matches." in text, text


BILL_FILES = [("alipay", "zip"), ("alipay", "csv-gbk"), ("wechat", "txt"), ("wechat", "gzip")]


@pytest.mark.parametrize("channel,form", BILL_FILES, ids=["-".join(x) for x in BILL_FILES])
def test_reconcile_from_a_downloaded_bill_file(lh, day, tmp_path, channel, form):
    want = day.bill_keys(channel)
    if channel == "alipay":
        data = download_alipay_bill(lh, day.date)
        if form == "csv-gbk":   # the detail file as it is in the zip (GBK)
            with zipfile.ZipFile(io.BytesIO(data), metadata_encoding="gbk") as z:
                name = [n for n in z.namelist() if n.endswith("业务明细.csv")][0]
                data = z.read(name)
            path = tmp_path / "alipay-bill.csv"
        else:
            path = tmp_path / "alipay-bill.zip"
    else:
        data = download_wechat_bill(lh, day.compact, gzip_it=form == "gzip")
        path = tmp_path / ("wechat-bill." + ("gz" if form == "gzip" else "txt"))
    path.write_bytes(data)
    # the same rows as the download: nothing new, the same result
    code, doc = reconcile(lh, channel, day.date, "--bill", str(path))
    assert code == 0 and doc["imported"] == 0 and doc["rows"] == len(want), doc
    assert item_keys(doc, "matched") == want and doc["unexplained"] == 0, doc
    # from the file alone, on a day never fetched
    forget_bill(lh, channel, day.date)
    code, doc = reconcile(lh, channel, day.date, "--bill", str(path))
    assert code == 0 and doc["imported"] == len(want), doc
    assert item_keys(doc, "matched") == want, doc


def test_reconcile_usage_errors(lh, day, tmp_path):
    assert lh.ctl("reconcile", "--channel", "paypal", "--date", day.date, check=False).returncode == 2
    assert lh.ctl("reconcile", "--channel", "alipay", "--date", "2026-02-30",
                  check=False).returncode == 2
    assert lh.ctl("reconcile", "--channel", "alipay", check=False).returncode == 2
    r = lh.ctl("reconcile", "--channel", "wechat", "--date", day.date, "--bill",
               str(tmp_path / "nothing-here.txt"), check=False)
    assert r.returncode == 1 and "nothing-here.txt" in r.stderr, r.stderr
    # a day without movements anywhere: no bill, nothing to explain
    for ch in CHANNELS:
        code, doc = reconcile(lh, ch, day.plus(-40))
        assert code == 0 and doc["rows"] == 0 and doc["unexplained"] == 0, doc


def fault_case(day, channel, fault):
    """(bill_faults spec, {category: {(kind, out_trade_no, out_refund_no)}})
    for an injected discrepancy on CHANNEL."""
    plain = day.pays["a_c" if channel == "alipay" else "w_e"]      # paid, no refund
    refunded = day.pays["a_b" if channel == "alipay" else "w_c"]   # paid + one partial refund
    closed = day.closed["a_x" if channel == "alipay" else "w_x"]
    (rno, _r), = refunded.refunds
    if fault == "amount_mismatch":
        return {fault: refunded.payment_no}, {fault: {("payment", refunded.payment_no, None),
                                                      ("refund", refunded.payment_no, rno)}}
    if fault == "fee_mismatch":
        return {fault: refunded.payment_no}, {fault: {("payment", refunded.payment_no, None),
                                                      ("refund", refunded.payment_no, rno)}}
    if fault == "status_mismatch":
        # CLOSED here, paid at the provider (a late payment our close missed)
        return {fault: closed["payment_no"]}, {fault: {("payment", closed["payment_no"], None)}}
    if fault == "status_mismatch_paid":
        # paid here, refunded there in full without our refund: the bill has a
        # refund row we do not know, and lacks the payment row
        return ({"status_mismatch": plain.payment_no},
                {"status_mismatch": {("refund", plain.payment_no, "status_mismatch")},
                 "missing_provider": {("payment", plain.payment_no, None)}})
    if fault == "drop_row":
        return {fault: refunded.payment_no}, {"missing_provider": {
            ("payment", refunded.payment_no, None), ("refund", refunded.payment_no, rno)}}
    if fault == "extra_row":
        return {fault: True}, {"missing_local": {("payment", "SANDBOX_EXTRA_%s_1" % day.compact,
                                                  None)}}
    raise AssertionError(fault)


FAULTS = ["amount_mismatch", "fee_mismatch", "status_mismatch", "status_mismatch_paid", "drop_row",
          "extra_row"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("channel", CHANNELS)
def test_reconcile_detects_each_injected_discrepancy(lh, day, channel, fault):
    spec, want = fault_case(day, channel, fault)
    clean = day.bill_keys(channel)
    forget_bill(lh, channel, day.date)
    set_bill_faults(lh, channel, day.date, **spec)
    try:
        code, doc = reconcile(lh, channel, day.date)
    finally:
        clear_bill_faults(lh, channel, day.date)
        forget_bill(lh, channel, day.date)
    assert code == 1, doc
    unexplained = {k: v for k, v in counts(doc).items() if k != "matched" and v}
    assert unexplained == {k: len(v) for k, v in want.items()}, doc
    assert doc["unexplained"] == sum(len(v) for v in want.values())
    for category, keys in want.items():
        assert item_keys(doc, category) == keys, (category, doc["items"])
    # everything else still matches
    touched = set().union(*want.values())
    assert item_keys(doc, "matched") == clean - touched, doc["items"]
    items = {(i["kind"], i["out_trade_no"], i["out_refund_no"]): i for i in doc["items"]}
    if fault in ("amount_mismatch", "fee_mismatch"):
        p = day.pays["a_b" if channel == "alipay" else "w_c"]
        (rno, r), = p.refunds
        pi, ri = items[("payment", p.payment_no, None)], items[("refund", p.payment_no, rno)]
        if fault == "amount_mismatch":
            assert (int(pi["local_fen"]), int(pi["bill_fen"])) == (p.amount, p.amount + 1), pi
            assert (int(ri["local_fen"]), int(ri["bill_fen"])) == (r["amount"], r["amount"] + 1), ri
        else:
            # the fee booked and the fee billed, one fen apart (sign as the
            # item states it, magnitude exact)
            assert sorted([abs(int(pi["local_fen"])), abs(int(pi["bill_fen"]))]) == [
                p.split["fee"], p.split["fee"] + 1], pi
            assert sorted([abs(int(ri["local_fen"])), abs(int(ri["bill_fen"]))]) == [
                r["fee"], r["fee"] + 1], ri
    if fault == "extra_row":
        (i,) = [i for i in doc["items"] if i["category"] == "missing_local"]
        assert int(i["bill_fen"]) == 100 and i["local_fen"] is None, i
    if fault == "drop_row":
        p = day.pays["a_b" if channel == "alipay" else "w_c"]
        assert items[("payment", p.payment_no, None)]["local_fen"] == str(p.amount)
    # stored like that too
    run = lh.query("SELECT * FROM recon_runs WHERE id=%s", doc["run_id"])[0]
    assert {k: run[k] for k in counts(doc)} == counts(doc), run
    stored = lh.query("SELECT category, COUNT(*) AS n FROM recon_items WHERE run_id=%s "
                      "AND category <> 'matched' GROUP BY category", doc["run_id"])
    assert {r["category"]: r["n"] for r in stored} == {k: len(v) for k, v in want.items()}
    # and the operator's table names it
    forget_bill(lh, channel, day.date)
    set_bill_faults(lh, channel, day.date, **spec)
    try:
        code, text = reconcile(lh, channel, day.date, as_json=False)
    finally:
        clear_bill_faults(lh, channel, day.date)
        forget_bill(lh, channel, day.date)
    assert code == 1 and "unexplained:" in text, text
    for category in want:
        assert category in text, text


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_lost_notification_never_synced_is_missing_locally(lh, day, st, channel):
    c = day.checkout(channel, "course-c")
    r = lh.sandbox_post("/_sandbox/faults", {"no_notify": True})
    assert r.status_code == 200, r.text
    try:
        day.provider_pay(channel, c["payment_no"])
    finally:
        lh.sandbox_post("/_sandbox/faults", {"no_notify": False})
    assert lh.payment(c["payment_no"])["status"] == "CREATED"
    forget_bill(lh, channel, day.date)
    code, doc = reconcile(lh, channel, day.date)
    assert code == 1, doc
    assert {k: v for k, v in counts(doc).items() if v and k != "matched"} == {"missing_local": 1}, doc
    assert item_keys(doc, "missing_local") == {("payment", c["payment_no"], None)}, doc
    assert item_keys(doc, "matched") == day.bill_keys(channel), doc
    # what the README tells the operator to do: sync, then reconcile again
    lh.query("UPDATE payments SET created_at = created_at - INTERVAL 2 MINUTE WHERE payment_no=%s",
             c["payment_no"])
    lh.ctl("sync")
    assert lh.payment(c["payment_no"])["status"] == "PAID"
    p = Pay("lost_" + channel, channel, "course-c", c["order_no"], c["payment_no"])
    day.pays[p.key] = p
    assert ledger_txn(lh, "pay:" + p.payment_no) == entries_of(channel, "alice", p.split, +1)
    code, doc = reconcile(lh, channel, day.date)
    assert code == 0 and doc["imported"] == 0, doc
    assert item_keys(doc, "matched") == day.bill_keys(channel), doc


def test_a_refund_the_provider_finished_but_we_never_heard_of_is_a_status_mismatch(lh, day):
    """WeChat refunds finish asynchronously: the bill has the refund while
    its notification was lost (still PENDING here). What the README says to
    do, sync, settles it and the day reconciles."""
    w_e = day.pays["w_e"]
    r = lh.sandbox_post("/_sandbox/faults", {"drop_notify": True})
    assert r.status_code == 200, r.text
    try:
        r = requests.post("%s/orders/%s/refund" % (day.st.base_url, w_e.order_no),
                          data={"amount_fen": "990"}, headers=AUTH, timeout=60)
        assert r.status_code == 201, r.text
        rno = r.json()["refund_no"]
        wait_for(lambda: lh.wx_refund_status(rno) == "SUCCESS", 10, "the provider's refund")
        assert lh.query("SELECT status FROM refunds WHERE refund_no=%s", rno)[0]["status"] == "PENDING"
        code, doc = reconcile(lh, "wechat", day.date)
    finally:
        lh.sandbox_post("/_sandbox/faults", {"drop_notify": False})
    assert code == 1, doc
    assert {k: v for k, v in counts(doc).items() if v and k != "matched"} == {"status_mismatch": 1}, doc
    (item,) = [i for i in doc["items"] if i["category"] == "status_mismatch"]
    assert (item["kind"], item["out_trade_no"], item["out_refund_no"]) == ("refund", w_e.payment_no, rno)
    assert item["local_fen"] == item["bill_fen"] == "990" and "PENDING" in (item["detail"] or ""), item
    # no ledger entries for a refund that has not succeeded here
    assert ledger_txn(lh, "refund:" + rno) == {}
    lh.query("UPDATE refunds SET last_attempt_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE "
             "WHERE refund_no=%s", rno)
    lh.ctl("sync")
    wait_for(lambda: lh.query("SELECT status FROM refunds WHERE refund_no=%s",
                              rno)[0]["status"] == "SUCCEEDED", 20, "the refund to be settled by sync")
    w_e.refunds.append((rno, split_refund(w_e.split, 0, 990)))
    assert w_e.refunds[-1][1]["fee"] == fee_of(990)
    assert ledger_txn(lh, "refund:" + rno) == entries_of("wechat", None, w_e.refunds[-1][1], -1)
    code, doc = reconcile(lh, "wechat", day.date)
    assert code == 0 and doc["imported"] == 0, doc
    assert item_keys(doc, "matched") == day.bill_keys("wechat")


def test_reconcile_when_the_provider_fails_stores_nothing(lh, day):
    n = lh.query("SELECT COUNT(*) AS n FROM recon_runs")[0]["n"]
    r = lh.sandbox_post("/_sandbox/faults", {"http_5xx": True})
    assert r.status_code == 200, r.text
    try:
        for ch in CHANNELS:
            r = lh.ctl("reconcile", "--channel", ch, "--date", day.date, check=False)
            assert r.returncode == 1 and "reconcile failed" in r.stderr, (ch, r.stdout, r.stderr)
    finally:
        lh.sandbox_post("/_sandbox/faults", {"http_5xx": False})
    assert lh.query("SELECT COUNT(*) AS n FROM recon_runs")[0]["n"] == n


@pytest.mark.parametrize("channel", CHANNELS)
def test_reconcile_refuses_a_bill_file_of_another_day(lh, day, tmp_path, channel):
    other = day.plus(-3)
    if channel == "alipay":
        path = tmp_path / "alipay-today.zip"
        path.write_bytes(download_alipay_bill(lh, day.date))
    else:
        path = tmp_path / "wechat-today.txt"
        path.write_bytes(download_wechat_bill(lh, day.compact))
    r = lh.ctl("--json", "reconcile", "--channel", channel, "--date", other, "--bill", str(path),
               check=False)
    assert r.returncode != 0, r.stdout
    assert "not for %s" % other in r.stderr, r.stderr
    assert lh.query("SELECT COUNT(*) AS n FROM bill_rows WHERE bill_date=%s", other)[0]["n"] == 0
    assert recon_runs_of(lh, other) == []


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_late_payment_and_its_automatic_refund_net_to_zero(lh, day, channel):
    """Paid at the provider after the order was closed: booked like any
    payment, refunded automatically (sent by sync/cron), reversed exactly,
    and both movements reconcile."""
    c = day.checkout(channel, "course-c")
    lh.age_payment(c["payment_no"], 300, channel)   # WeChat: no close before 5 min
    r = requests.post("%s/orders/%s/close" % (day.st.base_url, c["order_no"]), headers=AUTH,
                      timeout=60)
    assert r.status_code == 200, r.text
    r = lh.sandbox_post("/_sandbox/pay_closed", {"out_trade_no": c["payment_no"], "channel": channel})
    assert r.status_code == 200, r.text
    wait_for(lambda: lh.payment(c["payment_no"])["status"] == "PAID", 10, "the late payment")
    assert lh.payment(c["payment_no"])["anomaly"] == "late_payment"
    (ref,) = lh.query("SELECT r.refund_no, r.kind, r.amount_fen FROM refunds r JOIN payments p "
                      "ON p.id = r.payment_id WHERE p.payment_no=%s", c["payment_no"])
    assert (ref["kind"], ref["amount_fen"]) == ("auto", 9900), ref
    lh.ctl("sync")   # sends the automatic refund
    wait_for(lambda: lh.query("SELECT status FROM refunds WHERE refund_no=%s",
                              ref["refund_no"])[0]["status"] == "SUCCEEDED", 20, "the auto refund")
    p = Pay("late_" + channel, channel, "course-c", c["order_no"], c["payment_no"])
    p.refunds.append((ref["refund_no"], split_refund(p.split, 0, p.amount)))
    day.pays[p.key] = p
    assert ledger_txn(lh, "pay:" + p.payment_no) == entries_of(channel, "alice", p.split, +1)
    assert ledger_txn(lh, "refund:" + ref["refund_no"]) == entries_of(channel, "alice", p.split, -1)
    assert_ledger_balanced(lh)
    code, doc = reconcile(lh, channel, day.date)
    assert code == 0, [i for i in doc["items"] if i["category"] != "matched"]
    assert {("payment", p.payment_no, None), ("refund", p.payment_no, ref["refund_no"])} <= \
        item_keys(doc, "matched")
    assert item_keys(doc, "matched") == day.bill_keys(channel)


# -------------------------------------------------------------- settlement

def batches(h):
    return h.query("SELECT id, batch_no, creator_id, DATE_FORMAT(settle_date, '%%Y-%%m-%%d') AS d, "
                   "amount_fen, entries FROM settlement_batches ORDER BY id")


def settle(h, date, out=None):
    args = ["settle", "--date", date] + (["--out", str(out)] if out else [])
    return h.ctl_json(*args)


def unsettled_payable(h, creator, date):
    rows = h.query("SELECT COALESCE(-SUM(amount_fen), 0) AS owed, COUNT(*) AS n FROM ledger_entries "
                   "WHERE account=%s AND settlement_batch_id IS NULL AND creator_id=%s "
                   "AND available_on <= %s", "payable:creator:" + creator, creator, date)
    return int(rows[0]["owed"]), rows[0]["n"]


def read_payouts(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


PAYOUT_HEADER = ["batch_no", "creator_id", "creator_name", "amount_fen", "amount_yuan", "settle_date"]


def test_settle_today_finds_nothing_available_yet(lh, day, tmp_path):
    n_entries = lh.query("SELECT COUNT(*) AS n FROM ledger_entries")[0]["n"]
    doc = settle(lh, day.date, tmp_path / "today.csv")
    assert doc == {"date": day.date, "batches": 0, "total_fen": 0}, doc
    assert batches(lh) == []
    assert lh.query("SELECT COUNT(*) AS n FROM ledger_entries")[0]["n"] == n_entries
    assert read_payouts(tmp_path / "today.csv") == [PAYOUT_HEADER]
    # a bad date is a usage error
    assert lh.ctl("settle", "--date", "2026-13-01", check=False).returncode == 2
    assert lh.ctl("settle", check=False).returncode == 2


def test_settle_after_the_delay_one_batch_per_creator(lh, day, tmp_path):
    date = day.plus(DELAY_DAYS + 1)
    # refunds inside the window already reduced what is owed
    owed = {}
    for creator in ("alice", "bob"):
        owed[creator], n = unsettled_payable(lh, creator, date)
        assert owed[creator] == day.creator_share(creator), creator
    assert owed["bob"] == split_payment(12250, "bob")["creator"] - day.pays["a_b"].refunds[0][1]["creator"]
    # four operators at once: one batch per creator all the same
    outs = [tmp_path / ("payouts-%d.csv" % i) for i in range(4)]
    procs = [subprocess.Popen([str(BUILD / "paygatectl"), "-c", str(lh.cli_config), "--json", "settle",
                               "--date", date, "--out", str(o)], env=lh.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for o in outs]
    docs = []
    for pr in procs:
        stdout, stderr = pr.communicate(timeout=60)
        assert pr.returncode == 0, stderr
        docs.append(json.loads(stdout))
    assert sum(d["batches"] for d in docs) == 2, docs
    assert sum(d["total_fen"] for d in docs) == owed["alice"] + owed["bob"], docs
    got = batches(lh)
    assert [(b["creator_id"], b["d"], b["amount_fen"]) for b in got] == [
        ("alice", date, owed["alice"]), ("bob", date, owed["bob"])], got
    for b in got:
        n = lh.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE settlement_batch_id=%s "
                     "AND kind <> 'settlement'", b["id"])[0]["n"]
        assert b["entries"] == n > 0, b
        # the batch's entries net to zero on payable, the money is on settled
        assert account_sum(lh, "payable:creator:" + b["creator_id"],
                           "AND settlement_batch_id=%s", b["id"]) == 0
        assert account_sum(lh, "settled:creator:" + b["creator_id"]) == -b["amount_fen"]
        assert ledger_txn(lh, "settle:" + b["batch_no"]) == {
            "payable:creator:" + b["creator_id"]: b["amount_fen"],
            "settled:creator:" + b["creator_id"]: -b["amount_fen"]}
        assert unsettled_payable(lh, b["creator_id"], date) == (0, 0)
    assert_ledger_balanced(lh)
    # the payout file, exact (each run lists every batch of the date)
    for out in outs:
        rows = read_payouts(out)
        assert rows == [PAYOUT_HEADER] + [
            [b["batch_no"], b["creator_id"], CREATOR_NAMES[b["creator_id"]], str(b["amount_fen"]),
             yuan(b["amount_fen"]), date] for b in got], rows
        assert '"Li, Bob ""Rusty"""' in out.read_text()


def test_settle_again_changes_nothing(lh, day, tmp_path):
    date = day.plus(DELAY_DAYS + 1)
    before_b = batches(lh)
    before_e = lh.query("SELECT * FROM ledger_entries ORDER BY id")
    out = tmp_path / "again.csv"
    doc = settle(lh, date, out)
    assert doc == {"date": date, "batches": 0, "total_fen": 0}, doc
    assert batches(lh) == before_b
    assert lh.query("SELECT * FROM ledger_entries ORDER BY id") == before_e
    # the payout file of that date still lists the day's batches
    assert [r[0] for r in read_payouts(out)[1:]] == [b["batch_no"] for b in before_b]


def test_a_refund_after_settlement_leaves_settled_money_alone(lh, day, tmp_path):
    date = day.plus(DELAY_DAYS + 1)
    a_c = day.pays["a_c"]
    settled_before = account_sum(lh, "settled:creator:alice")
    n_batches = len(batches(lh))
    rno = day.refund(a_c, a_c.amount)   # in full, after its share was settled
    c_back = a_c.refunds[0][1]["creator"]
    assert c_back == a_c.split["creator"]
    assert account_sum(lh, "settled:creator:alice") == settled_before
    # the payable went positive: alice owes it back, nothing to pay her
    assert unsettled_payable(lh, "alice", day.date) == (-c_back, 1)
    assert ledger_txn(lh, "refund:" + rno) == entries_of("alipay", "alice", a_c.refunds[0][1], -1)
    for d in (date, day.plus(DELAY_DAYS + 2)):
        doc = settle(lh, d)
        assert doc["batches"] == 0, doc
    assert len(batches(lh)) == n_batches
    assert account_sum(lh, "settled:creator:alice") == settled_before
    # the next earnings net it: the next batch carries the debt
    adv = day.buy("adv", "alipay", "course-adv")
    date2 = day.plus(DELAY_DAYS + 2)
    out = tmp_path / "next.csv"
    doc = settle(lh, date2, out)
    want = adv.split["creator"] - c_back
    assert doc == {"date": date2, "batches": 1, "total_fen": want}, doc
    b = batches(lh)[-1]
    assert (b["creator_id"], b["d"], b["amount_fen"], b["entries"]) == ("alice", date2, want, 2), b
    assert account_sum(lh, "settled:creator:alice") == settled_before - want
    assert read_payouts(out)[1:] == [[b["batch_no"], "alice", "Alice Zhang", str(want), yuan(want),
                                      date2]]
    assert_ledger_balanced(lh)


def test_settlement_batches_equal_the_ledger(lh, day):
    # every batch is exactly the entries marked with it
    bad = lh.query("SELECT b.id, b.amount_fen, b.entries, COALESCE(-SUM(e.amount_fen), 0) AS owed, "
                   "COUNT(e.id) AS n FROM settlement_batches b LEFT JOIN ledger_entries e "
                   "ON e.settlement_batch_id = b.id AND e.kind <> 'settlement' "
                   "GROUP BY b.id, b.amount_fen, b.entries HAVING owed <> b.amount_fen OR n <> b.entries")
    assert bad == [], bad
    for creator in ("alice", "bob"):
        total = sum(b["amount_fen"] for b in batches(lh) if b["creator_id"] == creator)
        assert account_sum(lh, "settled:creator:" + creator) == -total
        # payable + settled = the creator's share of everything, net of refunds
        assert -(account_sum(lh, "payable:creator:" + creator)
                 + account_sum(lh, "settled:creator:" + creator)) == day.creator_share(creator)
    # the report still ties out, settlement entries left out of it
    doc = lh.ctl_json("report", "--from", day.date, "--to", day.date)
    total = [r for r in doc if r["day"] == "TOTAL"][0]
    assert int(total["creators_fen"]) == day.creator_share("alice") + day.creator_share("bob")
    assert {k: int(total[k]) for k in day.expected_report()} == day.expected_report()


# --------------------------------------------------------------------- cron

def recon_runs_of(h, date):
    return [r["channel"] for r in h.query("SELECT channel FROM recon_runs WHERE bill_date=%s "
                                          "ORDER BY id", date)]


def test_cron_settles_and_reconciles_yesterday_once(lh, day):
    yesterday = day.plus(-1)
    # a share that became available yesterday (as if paid 8 days ago)
    p = day.buy("cron", "wechat", "course-b")
    lh.query("UPDATE ledger_entries SET available_on=%s WHERE txn_id=%s AND account LIKE 'payable:%%'",
             yesterday, "pay:" + p.payment_no)
    assert recon_runs_of(lh, yesterday) == []
    # an alipay payment recorded yesterday whose bill the provider has not
    # published: no run stored (never "all missing"), retried by later passes
    a_c = day.pays["a_c"]
    lh.query("UPDATE payments SET paid_at = paid_at - INTERVAL 1 DAY WHERE payment_no=%s",
             a_c.payment_no)
    try:
        r = lh.ctl("reconcile", "--channel", "alipay", "--date", yesterday, check=False)
        assert r.returncode == 1 and "no bill" in r.stderr and "try again later" in r.stderr, r
        assert recon_runs_of(lh, yesterday) == []
        lh.ctl("cron")
        assert recon_runs_of(lh, yesterday) == ["wechat"]
        log = (lh.run / "paygatectl.log").read_text()
        assert "reconciliation of alipay %s failed" % yesterday in log, log[-2000:]
    finally:
        lh.query("UPDATE payments SET paid_at = paid_at + INTERVAL 1 DAY WHERE payment_no=%s",
                 a_c.payment_no)
    lh.ctl("cron")
    assert recon_runs_of(lh, yesterday) == ["wechat", "alipay"]
    b = [x for x in batches(lh) if x["d"] == yesterday]
    assert [(x["creator_id"], x["amount_fen"], x["entries"]) for x in b] == [
        ("bob", p.split["creator"], 1)], b
    runs = lh.query("SELECT channel, matched, amount_mismatch, status_mismatch, fee_mismatch, "
                    "missing_local, missing_provider FROM recon_runs WHERE bill_date=%s ORDER BY channel",
                    yesterday)
    # no movement yesterday, no bill: reconciled empty, once per channel
    assert runs == [dict(channel=ch, matched=0, amount_mismatch=0, status_mismatch=0, fee_mismatch=0,
                         missing_local=0, missing_provider=0) for ch in CHANNELS], runs
    n_runs = lh.query("SELECT COUNT(*) AS n FROM recon_runs")[0]["n"]
    n_entries = lh.query("SELECT COUNT(*) AS n FROM ledger_entries")[0]["n"]
    all_batches = batches(lh)
    lh.ctl("cron")
    lh.ctl("cron")
    assert lh.query("SELECT COUNT(*) AS n FROM recon_runs")[0]["n"] == n_runs
    assert lh.query("SELECT COUNT(*) AS n FROM ledger_entries")[0]["n"] == n_entries
    assert batches(lh) == all_batches
    assert_ledger_balanced(lh)


# ------------------------------------------- surcharge and realtime settlement

def test_surcharge_and_realtime_settlement_on_another_stack(lh, day):
    """A stack configured with [fees] mode = surcharge and [settlement] mode
    = realtime, commission 2000 bp, on the same database: the buyer pays
    price + fee, the ledger books the provider's fee on what was paid and
    the creator's share is settleable the day it is paid."""
    st2 = lh.new_stack("lighttpd", name="surcharge-realtime", extra_ini=(
        "[fees]\nmode = surcharge\n\n"
        "[settlement]\nmode = realtime\nplatform_commission_bp = 2000\n"))
    st2.start()
    try:
        p = day.buy("surcharged", "alipay", "course-b", st=st2, surcharge=True, commission_bp=2000)
    finally:
        st2.stop()
    assert p.amount == 12250 + 74 and p.split == {"amount": 12324, "fee": 74, "creator": 9800,
                                                   "platform": 2450}, p.split
    assert ledger_txn(lh, "pay:" + p.payment_no) == entries_of("alipay", "bob", p.split, +1)
    (e,) = lh.query("SELECT available_on FROM ledger_entries WHERE txn_id=%s AND account LIKE "
                    "'payable:%%'", "pay:" + p.payment_no)
    assert e["available_on"].isoformat() == day.date, e   # realtime: at once
    doc = settle(lh, day.date)
    assert doc == {"date": day.date, "batches": 1, "total_fen": 9800}, doc
    b = batches(lh)[-1]
    assert (b["creator_id"], b["d"], b["amount_fen"], b["entries"]) == ("bob", day.date, 9800, 1), b
    assert_ledger_balanced(lh)
    # the surcharged amount and its fee are what the provider billed
    code, doc = reconcile(lh, "alipay", day.date)
    assert code == 0, doc
    assert ("payment", p.payment_no, None) in item_keys(doc, "matched")
    assert {k: int(v) for k, v in [r for r in lh.ctl_json("report", "--from", day.date, "--to",
                                                           day.date) if r["day"] == "TOTAL"][0].items()
            if k.endswith("_fen")} == day.expected_report()


# ------------------------------------------------------- refund fee rounding

def test_a_partial_refund_whose_rounding_differs_still_reconciles(lh, day):
    """The ledger returns the fee on running totals (a full refund returns
    exactly the fee charged); the provider rounds each refund on its own.
    Both are explained: no fee_mismatch. A fee one fen off both rules still
    is one."""
    p = day.buy("round", "alipay", "course-c")
    day.refund(p, 250)
    (rno, r), = p.refunds
    assert (fee_of(250), r["fee"]) == (2, 1)   # the bill returns 2 fen, the ledger reversed 1
    forget_bill(lh, "alipay", day.date)
    code, doc = reconcile(lh, "alipay", day.date)
    assert code == 0, [i for i in doc["items"] if i["category"] != "matched"]
    assert item_keys(doc, "matched") == day.bill_keys("alipay")
    # the provider's 2 fen plus one: explained by neither rule
    forget_bill(lh, "alipay", day.date)
    set_bill_faults(lh, "alipay", day.date, fee_mismatch=p.payment_no)
    try:
        code, doc = reconcile(lh, "alipay", day.date)
    finally:
        clear_bill_faults(lh, "alipay", day.date)
        forget_bill(lh, "alipay", day.date)
    assert code == 1 and item_keys(doc, "fee_mismatch") == {
        ("payment", p.payment_no, None), ("refund", p.payment_no, rno)}, doc
