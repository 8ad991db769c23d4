"""Reconciliation of a WeChat day paid through API v3 (issue 12): the v3
trade bill (GET /v3/bill/tradebill -> download_url + SHA1, a signed GET of
the download, gunzip, the SHA1 checked) feeds the same reconciliation as the
v2 bill. Its own harness (database and sandbox in <run>/wxv3recon) so that
the day's bill holds only this module's trades: two payments and a refund
made through a v3 stack of every kind (ALL_STACKS), reconciled once (the
reconciliation itself is paygatectl's, the same on every stack)."""

import datetime

import pytest
import requests

from conftest import ALL_STACKS, ASAN_DIR, RUN, TIMEOUT, Harness
from test_ledger import (clear_bill_faults, counts, fee_of, forget_bill, item_keys, reconcile,
                         set_bill_faults, wait_past_beijing_midnight)
from test_wechat_v3 import AUTH, V3, checkout, wait_for

TZ_BEIJING = datetime.timezone(datetime.timedelta(hours=8))


@pytest.fixture(scope="module")
def rh(harness):
    h = Harness(run_dir=RUN / "wxv3recon", asan_dir=ASAN_DIR)
    try:
        h.start()
    except BaseException:
        h.stop()
        raise
    yield h
    errors = h.stop()
    assert not errors, errors


def v3_day_through(rh, kind):
    """Two v3 payments and a partial refund through a v3 stack of KIND."""
    v = V3(rh, name="wxv3recon-" + kind, kind=kind)
    v.stack.start()
    try:
        st = v.stack
        paid = []
        for product in ("course-c", "ebook-sql"):
            c = checkout(rh, st, product=product)
            assert rh.payment(c["payment_no"])["api_version"] == "v3"
            rh.wx_pay(c["payment_no"])
            rh.wait_order_status(st, c["order_no"], "PAID")
            paid.append(c)
        r = requests.post("%s/orders/%s/refund" % (st.base_url, paid[0]["order_no"]),
                          data={"amount_fen": "3333"}, headers=AUTH, timeout=60)
        assert r.status_code == 201, r.text
        refund_no = r.json()["refund_no"]
        wait_for(lambda: rh.query("SELECT status FROM refunds WHERE refund_no=%s",
                                  refund_no)[0]["status"] == "SUCCEEDED", 15, "the v3 refund")
        return v, paid, refund_no
    finally:
        v.stack.stop()


@pytest.fixture(scope="module")
def v3day(rh):
    wait_past_beijing_midnight()
    paid, refunds = [], []
    for kind in ALL_STACKS:
        v, p, refund_no = v3_day_through(rh, kind)
        paid += p
        refunds.append((p[0]["payment_no"], refund_no))
    date = datetime.datetime.now(TZ_BEIJING).date().isoformat()
    # paygatectl's config of the last one (api_version = v3)
    yield {"v3": v, "date": date, "paid": paid, "refunds": refunds}


def v3_reconcile(rh, v, date):
    """paygatectl with the v3 stack's config (api_version = v3)."""
    saved = rh.ctl

    def ctl(*args, **kw):
        return saved(*args, config=v.cli, **kw)
    rh.ctl = ctl
    try:
        return reconcile(rh, "wechat", date)
    finally:
        rh.ctl = saved


def bill_calls(rh):
    log = (rh.run / "sandbox.log").read_text(errors="replace")
    return log.count("wechat v3 bill"), log.count("wechat bill ")


def test_v3_day_reconciles_clean_through_the_v3_bill(rh, v3day):
    v, date, paid = v3day["v3"], v3day["date"], v3day["paid"]
    before = bill_calls(rh)
    code, doc = v3_reconcile(rh, v, date)
    after = bill_calls(rh)
    assert after[0] == before[0] + 1 and after[1] == before[1], (before, after)   # v3, not v2
    want = {("payment", p["payment_no"], None) for p in paid}
    want |= {("refund", payment_no, refund_no) for payment_no, refund_no in v3day["refunds"]}
    n = len(ALL_STACKS)
    assert code == 0, doc
    assert counts(doc) == {"matched": 3 * n, "amount_mismatch": 0, "status_mismatch": 0,
                           "fee_mismatch": 0, "missing_local": 0, "missing_provider": 0}, doc
    assert item_keys(doc, "matched") == want, doc["items"]
    rows = rh.query("SELECT kind, amount_fen, fee_fen FROM bill_rows WHERE channel='wechat' AND bill_date=%s",
                    date)
    assert sorted((r["kind"], r["amount_fen"]) for r in rows) == sorted(
        [("payment", 9900), ("payment", 1990), ("refund", 3333)] * n), rows
    for r in rows:
        assert abs(r["fee_fen"]) == fee_of(r["amount_fen"]), r


def test_v3_day_with_an_injected_discrepancy(rh, v3day):
    v, date, paid = v3day["v3"], v3day["date"], v3day["paid"]
    forget_bill(rh, "wechat", date)
    set_bill_faults(rh, "wechat", date, amount_mismatch=paid[1]["payment_no"])
    try:
        code, doc = v3_reconcile(rh, v, date)
    finally:
        clear_bill_faults(rh, "wechat", date)
        forget_bill(rh, "wechat", date)
    assert code == 1, doc
    assert doc["amount_mismatch"] == 1 and doc["matched"] == 3 * len(ALL_STACKS) - 1, doc
    assert item_keys(doc, "amount_mismatch") == {("payment", paid[1]["payment_no"], None)}
    bad = [i for i in doc["items"] if i["category"] == "amount_mismatch"][0]
    assert (int(bad["local_fen"]), int(bad["bill_fen"])) == (1990, 1991), bad


def test_v3_bill_whose_sha1_does_not_match_is_refused(rh, v3day):
    """hash_value is the SHA1 of the bill text: a download that differs
    (changed or cut on the way) is refused and nothing is imported."""
    v, date = v3day["v3"], v3day["date"]
    forget_bill(rh, "wechat", date)
    assert rh.sandbox_post("/_sandbox/wechat_v3/config", {"bill_fault": "hash_mismatch"}).status_code == 200
    try:
        r = rh.ctl("reconcile", "--channel", "wechat", "--date", date, config=v.cli, check=False)
    finally:
        assert rh.sandbox_post("/_sandbox/wechat_v3/config", {"bill_fault": None}).status_code == 200
    assert r.returncode == 1 and "reconcile failed" in r.stderr and "SHA1" in r.stderr, (
        r.returncode, r.stdout, r.stderr)
    assert rh.query("SELECT COUNT(*) AS n FROM bill_rows WHERE channel='wechat' AND bill_date=%s",
                    date)[0]["n"] == 0
    # the next attempt, with an intact bill, reconciles
    code, doc = v3_reconcile(rh, v, date)
    assert code == 0 and doc["matched"] == 3 * len(ALL_STACKS), doc
