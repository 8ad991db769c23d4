"""A whole month of the demo catalogue through a web stack — payments,
refunds, delayed settlement, payouts — ends with every creator paid exactly
their share, the ledger balanced and `report` tying out to the fen (issue 15).

Per stack kind (lighttpd, apache-proxy-fcgi, apache-fcgid) a Harness of its
own in <run>/month-<kind> (its own MariaDB and sandbox: settlement closes
every creator's payable and the report covers every movement of the period,
so the session's other traffic would make exact amounts unknowable).

The catalogue is the demo's: scripts/demo.sh's `creator add` and
`add_product` lines are read here and seeded the way demo.sh seeds them (the
harness already has part of it; the rest is added, what exists must agree).
The demo's creator gets an Alipay payout account; payouts go through the
sandbox's alipay.fund.trans.uni.transfer in certificate mode.

Dates: paygate has no clock of its own to move. A payment's business day is
the provider's payment time (gmt_payment / time_end, accepted up to 40 days
back), so the month is the 30 Beijing days ending today, and the sandbox pays
each order at its day's moment (its control POST /_sandbox/pay and
/_sandbox/wechat/pay take "paid_at"; the notification then says so, like a
provider's). A refund is booked on the day it is made: today. The month runs
in this order, which is the order of the calendar:
  every day's orders paid (Alipay every day, WeChat every other day,
    products in turn) ->
  for each day but today: `settle --date D`, `payout --date D` ->
  refunds today: full and partial ones of payments already settled and paid
    out (their creator part is a debt the next batch nets), two partial ones
    of one payment, a full one of a product without creator, a partial one
    of a payment still inside the delay ->
  `settle --date today`, `payout --date today`.
Every expected amount is computed here from the catalogue and the documented
rules (README "Money"; the formulas of test_ledger.py), with the [fees] and
[settlement] this module writes into both configs, and a model of
settlement (entries available on D, summed per creator, a batch when the
total reaches [payouts] min_fen, else carried) — never read back from
paygate."""

import datetime
import re
import shutil

import pytest
import requests

from conftest import ALL_STACKS, ASAN_DIR, REPO, RUN, Harness, unique_user
from test_ledger import (AUTH, TZ_BEIJING, split_payment, split_refund, wait_for,
                         wait_past_beijing_midnight)
from test_payouts import _cert_lines, _to_cert_mode

KINDS = [k for k in ("lighttpd", "apache-proxy-fcgi", "apache-fcgid") if k in ALL_STACKS] or ALL_STACKS[:1]
RATE_BP = 60
COMMISSION_BP = 3000
DELAY_DAYS = 7
MIN_FEN = 100
MONEY_INI = ("[fees]\nmode = absorb\nalipay_rate_bp = %d\nwechat_rate_bp = %d\n"
             "[settlement]\nmode = delayed\ndelay_days = %d\nplatform_commission_bp = %d\n"
             % (RATE_BP, RATE_BP, DELAY_DAYS, COMMISSION_BP))
ACCOUNT = ("alice.payout@example.com", "Alice Zhang")


def demo_catalogue():
    """(creators [(id, name)], products [(sku, title, fen, creator|None)])
    as scripts/demo.sh seeds them."""
    text = (REPO / "scripts" / "demo.sh").read_text()
    creators = re.findall(r'ctl creator add --id (\S+) --name "([^"]+)"', text)
    products = [(sku, title, int(fen), creator or None) for sku, title, fen, creator in
                re.findall(r'^\s*add_product (\S+) "([^"]+)" (\d+)(?: (\S+))?\s*$', text, re.M)]
    assert creators and len(products) >= 3, (creators, products)
    return creators, products


class Month:
    def __init__(self, h, st, cli, catalogue):
        self.h, self.st, self.cli = h, st, cli
        self.creators = [c for c, _n in catalogue[0]]
        self.products = catalogue[1]
        self.creator_of = {sku: cr for sku, _t, _f, cr in self.products}
        self.price = {sku: fen for sku, _t, fen, _c in self.products}
        self.today = datetime.datetime.now(TZ_BEIJING).date()
        self.days = [self.today - datetime.timedelta(days=29 - i) for i in range(30)]
        self.pays = []        # dicts: channel, sku, creator, day, order_no, payment_no, split, refunds
        self.runs = []        # (day, settle json, payout json)

    # -- traffic -----------------------------------------------------------
    def buy(self, channel, sku, day):
        r = self.h.checkout(self.st, product=sku, channel=channel,
                            method="qr" if channel == "alipay" else "native", user=unique_user("month"))
        assert r.status_code == 201, r.text
        c = r.json()
        assert c["amount_fen"] == self.price[sku], c   # fees absorbed: the price
        body = {"out_trade_no": c["payment_no"]}
        if day != self.today:
            body["paid_at"] = "%s 10:%02d:00" % (day.isoformat(), len(self.pays) % 60)
        r = self.h.sandbox_post("/_sandbox/pay" if channel == "alipay" else "/_sandbox/wechat/pay", body)
        assert r.status_code == 200, r.text
        self.h.wait_order_status(self.st, c["order_no"], "PAID")
        p = {"channel": channel, "sku": sku, "creator": self.creator_of[sku], "day": day,
             "order_no": c["order_no"], "payment_no": c["payment_no"],
             "split": split_payment(self.price[sku], self.creator_of[sku], COMMISSION_BP), "refunds": []}
        self.pays.append(p)
        return p

    def refund(self, p, amount):
        parts = split_refund(p["split"], sum(r["amount"] for r in p["refunds"]), amount)
        r = requests.post("%s/orders/%s/refund" % (self.st.base_url, p["order_no"]),
                          data={"amount_fen": str(amount), "request_id": unique_user("rq")},
                          headers=AUTH, timeout=60)
        assert r.status_code == 201, r.text
        refund_no = r.json()["refund_no"]
        wait_for(lambda: self.h.query("SELECT status FROM refunds WHERE refund_no=%s",
                                      refund_no)[0]["status"] == "SUCCEEDED", 30, "refund %s" % refund_no)
        p["refunds"].append(parts)

    def settle_and_pay(self, day):
        d = day.isoformat()
        s = self.h.ctl_json("settle", "--date", d, config=self.cli)
        out = self.h.ctl_json("payout", "--date", d, config=self.cli)
        assert out["failed"] == 0 and out["pending"] == 0 and out["waiting_for_account"] == 0, (d, out)
        self.runs.append((d, s, out))

    # -- what the books must say (independent of paygate) -----------------
    def available(self, p):
        return p["day"] + datetime.timedelta(days=DELAY_DAYS)

    def expected_batches(self):
        """{creator: [(settle day, fen)]}: the model of `settle --date D` run
        on every day of the month, refunds (booked today, available today)
        before today's run."""
        out = {c: [] for c in self.creators}
        for cr in self.creators:
            carry = 0
            for d in self.days:
                owed = carry + sum(p["split"]["creator"] for p in self.pays
                                   if p["creator"] == cr and self.available(p) == d)
                if d == self.today:
                    owed -= sum(r["creator"] for p in self.pays if p["creator"] == cr for r in p["refunds"])
                if owed >= MIN_FEN:
                    out[cr].append((d.isoformat(), owed))
                    carry = 0
                else:
                    carry = owed
        return out

    def expected_balances(self):
        """account -> balance (debit positive) after the month."""
        bal = {}

        def add(account, fen):
            bal[account] = bal.get(account, 0) + fen
        for p in self.pays:
            s, ch = p["split"], p["channel"]
            add("clearing:" + ch, s["amount"])
            add("fees:" + ch, -s["fee"])
            add("revenue:platform", -s["platform"])
            if p["creator"]:
                add("payable:creator:" + p["creator"], -s["creator"])
            for r in p["refunds"]:
                add("clearing:" + ch, -r["amount"])
                add("fees:" + ch, r["fee"])
                add("revenue:platform", r["platform"])
                if p["creator"]:
                    add("payable:creator:" + p["creator"], r["creator"])
        for cr, batches in self.expected_batches().items():
            paid = sum(f for _d, f in batches)
            add("payable:creator:" + cr, paid)       # settled: payable -> settled
            add("settled:creator:" + cr, -paid)
            add("settled:creator:" + cr, paid)       # paid out: settled -> paidout
            add("paidout:creator:" + cr, -paid)
        return {k: v for k, v in bal.items() if v != 0}

    def expected_report(self):
        """{(day, channel): columns} as `report` groups them (ROLLUP rows too)."""
        rows = {}

        def add(day, ch, parts, sign):
            for key in ((day, ch), (day, "all"), ("TOTAL", "all")):
                r = rows.setdefault(key, {"gross_fen": 0, "refunds_fen": 0, "fees_fen": 0, "platform_fen": 0,
                                          "creators_fen": 0})
                if sign > 0:
                    r["gross_fen"] += parts["amount"]
                else:
                    r["refunds_fen"] += parts["amount"]
                r["fees_fen"] += sign * parts["fee"]
                r["platform_fen"] += sign * parts["platform"]
                r["creators_fen"] += sign * parts["creator"]
        for p in self.pays:
            add(p["day"].isoformat(), p["channel"], p["split"], 1)
            for r in p["refunds"]:
                add(self.today.isoformat(), p["channel"], r, -1)
        return rows


@pytest.fixture(params=KINDS)
def month(request, harness):
    """The month's harness, stack and paygatectl config (certificate mode,
    payouts on) on stack kind PARAM. Depends on the session's harness so
    that it owns the run folder first."""
    kind = request.param
    wait_past_beijing_midnight(margin_s=240)
    h = Harness(run_dir=RUN / ("month-" + kind), asan_dir=ASAN_DIR)
    st = None
    try:
        h.start()
        st = h.new_stack(kind, name="month", extra_ini=MONEY_INI)
        st.start()
        cli = h.run / "cli-month.ini"
        shutil.copyfile(h.cli_config, cli)
        dest = h.run / "certs"
        dest.mkdir()
        _info, lines = _cert_lines(h, dest)
        _to_cert_mode(cli, lines, payouts=False)
        first = (datetime.datetime.now(TZ_BEIJING).date() - datetime.timedelta(days=29)).isoformat()
        cli.write_text(cli.read_text() + "\n" + MONEY_INI + "[payouts]\nenabled = true\nchannel = alipay\n"
                       "min_fen = %d\nstart_date = %s\n" % (MIN_FEN, first))
        h.ctl("check-config", config=cli)
        catalogue = seed(h, cli)
        yield Month(h, st, cli, catalogue)
    finally:
        if st is not None:
            st.stop()
        errors = h.stop()
    assert not errors, errors


def seed(h, cli):
    """The demo catalogue, as scripts/demo.sh adds it; the creators get a
    payout account."""
    creators, products = demo_catalogue()
    have = {c["id"] for c in h.ctl_json("creator", "list", config=cli)}
    for cid, name in creators:
        if cid not in have:
            h.ctl("creator", "add", "--id", cid, "--name", name, config=cli)
        h.ctl("creator", "update", "--id", cid, "--alipay-account", ACCOUNT[0], "--real-name", ACCOUNT[1],
              config=cli)
    listed = {p["sku"]: p for p in h.ctl_json("product", "list", config=cli)}
    for sku, title, fen, creator in products:
        if sku in listed:
            got = h.query("SELECT price_fen, creator_id FROM products WHERE sku = %s", sku)[0]
            assert (got["price_fen"], got["creator_id"]) == (fen, creator), (sku, got)
            continue
        args = ["product", "add", "--sku", sku, "--title", title, "--price-fen", str(fen)]
        if creator:
            args += ["--creator", creator]
        h.ctl(*args, config=cli)
    return creators, products


def test_a_month_of_the_demo_catalogue_pays_every_creator_their_share(month):
    m, h = month, month.h
    skus = [sku for sku, _t, _f, _c in m.products]
    # every day's orders
    for i, day in enumerate(m.days):
        m.buy("alipay", skus[i % len(skus)], day)
        if i % 2 == 0:
            m.buy("wechat", skus[(i + 1) % len(skus)], day)
    # settle and pay out every day but today
    for day in m.days[:-1]:
        m.settle_and_pay(day)
    by = {(p["channel"], (p["day"] - m.days[0]).days): p for p in m.pays}
    # refunds, today
    settled_full = by[("alipay", 0)]          # settled and paid out 3 weeks ago: all of it
    settled_part = by[("wechat", 0)]          # settled and paid out: a part
    twice = by[("alipay", 4)]                 # two partial refunds of one payment
    no_creator = next(p for p in m.pays if p["creator"] is None and p["channel"] == "alipay")
    in_window = by[("alipay", 27)]            # paid 2 days ago: not settled yet
    for p in (settled_full, settled_part, twice):
        assert p["creator"] and m.available(p) < m.today, p
    assert m.available(in_window) > m.today and in_window["creator"]
    m.refund(settled_full, settled_full["split"]["amount"])
    m.refund(settled_part, 3333)
    m.refund(twice, 1000)
    m.refund(twice, 2500)
    m.refund(no_creator, no_creator["split"]["amount"])
    m.refund(in_window, 2000)
    m.settle_and_pay(m.today)

    want = m.expected_batches()
    for cr, batches in want.items():
        # the debts of the refunds are netted by today's batch, which is paid too
        assert batches and batches[-1][0] == m.today.isoformat(), batches
        got = h.query("SELECT DATE_FORMAT(b.settle_date, '%%Y-%%m-%%d') AS d, b.amount_fen, p.status,"
                      " p.payout_no, p.amount_fen AS paid FROM settlement_batches b"
                      " LEFT JOIN payouts p ON p.batch_id = b.id WHERE b.creator_id = %s ORDER BY b.settle_date",
                      cr)
        assert [(g["d"], g["amount_fen"]) for g in got] == batches, (got, batches)
        assert all(g["status"] == "PAID" and g["paid"] == g["amount_fen"] for g in got), got
        share = sum(p["split"]["creator"] for p in m.pays if p["creator"] == cr and m.available(p) <= m.today) \
            - sum(r["creator"] for p in m.pays if p["creator"] == cr for r in p["refunds"])
        paid = h.query("SELECT COALESCE(SUM(amount_fen), 0) AS s FROM payouts WHERE creator_id = %s"
                       " AND status = 'PAID'", cr)[0]["s"]
        assert paid == share == sum(f for _d, f in batches), (cr, paid, share)

    # the sandbox's transfers are exactly the payouts: one each, to the account
    payouts = {r["payout_no"]: r["amount_fen"] for r in h.query("SELECT payout_no, amount_fen FROM payouts")}
    t = h.sandbox_get("/_sandbox/alipay/transfers").json()
    assert {x["out_biz_no"]: x["fen"] for x in t["transfers"]} == payouts, (t, payouts)
    assert t["calls"] == {k: 1 for k in payouts}, t["calls"]
    assert {(x["identity"], x["name"], x["status"]) for x in t["transfers"]} == {ACCOUNT + ("SUCCESS",)}

    # the ledger: every transaction sums to zero; every account as expected
    assert h.query("SELECT txn_id, SUM(amount_fen) AS s FROM ledger_entries GROUP BY txn_id"
                   " HAVING SUM(amount_fen) <> 0") == []
    balances = {r["account"]: int(r["s"]) for r in
                h.query("SELECT account, SUM(amount_fen) AS s FROM ledger_entries GROUP BY account")}
    balances = {k: v for k, v in balances.items() if v != 0}
    assert balances == m.expected_balances(), (balances, m.expected_balances())
    for cr in m.creators:
        # paid out entirely; what remains payable is the last week's, not yet due
        assert balances.get("settled:creator:" + cr, 0) == 0
        assert balances.get("payable:creator:" + cr, 0) == -sum(
            p["split"]["creator"] for p in m.pays if p["creator"] == cr and m.available(p) > m.today)

    # `report` for the month, to the fen
    frm, to = m.days[0].isoformat(), m.today.isoformat()
    doc = h.ctl_json("report", "--from", frm, "--to", to, config=m.cli)
    cols = ("gross_fen", "refunds_fen", "fees_fen", "platform_fen", "creators_fen")
    got = {(r["day"], r["channel"]): {k: int(r[k]) for k in cols} for r in doc}
    assert got == m.expected_report(), (got, m.expected_report())
    text = h.ctl("report", "--from", frm, "--to", to, config=m.cli).stdout
    assert "every transaction sums to zero: yes (all entries sum to 0 fen)" in text, text
    section = text.split("payouts of batches settled %s..%s:" % (frm, to))[1].splitlines()
    assert section[1].split() == ["status", "payouts", "amount_fen"], section
    all_batches = [f for b in want.values() for _d, f in b]
    assert section[2].split() == ["PAID", str(len(all_batches)), str(sum(all_batches))], section
