"""Creator payouts by WeChat Pay v3 merchant transfer (SPEC §12.3): the
batch number (without its '-') is out_bill_no, the transfer's idempotency
key; an unknown outcome is queried before anything is sent again; a
transfer waiting for the payee's confirmation is WAITING_CONFIRMATION with
WeChat's package_info. The sandbox answers transfers in public-key mode (its
sandbox/wechat_v3_transfer.py). Each test makes its own creator, pays an
order of its product, backdates the creator's entries to a day of its own in
2003, settles that day and pays out that day only."""

import datetime
import random

import pytest

from test_lifecycle import faults
from test_wechat_v3 import V3

PRICE = 9900
FEE = (PRICE * 60 + 5000) // 10000
SHARE = (PRICE - FEE) * 7000 // 10000
PAYOUTS = "\n[payouts]\nenabled = true\nchannel = wechat\nmin_fen = 100\nstart_date = 2003-01-01\n"


@pytest.fixture(scope="module")
def wx(harness):
    v = V3(harness, name="wxpayout")
    v.stack.start()
    v.cli.write_text(v.cli.read_text() + PAYOUTS)
    try:
        yield v
    finally:
        v.stack.stop()


_DAYS = iter(range(random.randint(0, 150), 366))


def _day():
    return (datetime.date(2003, 1, 1) + datetime.timedelta(days=next(_DAYS))).isoformat()


def _creator(harness, wx, openid):
    cid = "wp" + harness.query("SELECT LOWER(HEX(RANDOM_BYTES(5))) AS h")[0]["h"]
    args = ["creator", "add", "--id", cid, "--name", "Payout " + cid]
    if openid:
        args += ["--wechat-openid", openid + cid]
    wx.ctl(*args)
    wx.ctl("product", "add", "--sku", "wp-" + cid, "--title", "Payout course", "--price-fen", str(PRICE),
           "--creator", cid)
    return cid


def _settled(harness, wx, cid):
    c = harness.new_payment(wx.stack, product="wp-" + cid, channel="alipay", method="qr")
    r = harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    assert r.status_code == 200, r.text
    harness.wait_order_status(wx.stack, c["order_no"], "PAID")
    day = _day()
    harness.query("UPDATE ledger_entries SET available_on = %s WHERE creator_id = %s", day, cid)
    out = harness.ctl_json("settle", "--date", day, config=wx.cli)
    assert out["batches"] >= 1, out
    batch = harness.query("SELECT * FROM settlement_batches WHERE creator_id = %s", cid)
    assert len(batch) == 1 and batch[0]["amount_fen"] == SHARE, batch
    return day, batch[0]["batch_no"]


def _payout(harness, wx, day):
    return harness.ctl_json("payout", "--date", day, config=wx.cli)


def _row(harness, batch_no):
    rows = harness.query("SELECT * FROM payouts WHERE payout_no = %s", batch_no)
    assert len(rows) == 1, rows
    return rows[0]


def _bill(harness, batch_no):
    bill_no = batch_no.replace("-", "")
    t = harness.sandbox_get("/_sandbox/wechat_v3/transfers").json()
    return [x for x in t["transfers"] if x["out_bill_no"] == bill_no], t["calls"].get(bill_no, 0)


def _paid_once(harness, batch_no, cid):
    bills, calls = _bill(harness, batch_no)
    assert calls == 1 and len(bills) == 1 and bills[0]["state"] == "SUCCESS", (calls, bills)
    assert bills[0]["fen"] == SHARE and bills[0]["openid"].endswith(cid)
    row = _row(harness, batch_no)
    assert row["status"] == "PAID" and row["provider_order_id"] == bills[0]["transfer_bill_no"], row
    rows = harness.query("SELECT account, amount_fen FROM ledger_entries WHERE txn_id = %s ORDER BY account",
                         "payout:" + batch_no)
    assert rows == [{"account": "paidout:creator:" + cid, "amount_fen": -SHARE},
                    {"account": "settled:creator:" + cid, "amount_fen": SHARE}], rows


def test_payout_pays_the_batch_once(harness, wx):
    cid = _creator(harness, wx, "o-ok")
    day, batch_no = _settled(harness, wx, cid)
    out = _payout(harness, wx, day)
    assert out["paid"] == 1 and out["paid_fen"] == SHARE and out["failed"] == 0, out
    _paid_once(harness, batch_no, cid)
    assert _payout(harness, wx, day)["paid"] == 0     # nothing left to pay
    assert _bill(harness, batch_no)[1] == 1
    listed = harness.ctl_json("payout", "list", "--status", "PAID", config=wx.cli)
    assert any(p["payout_no"] == batch_no and p["channel"] == "wechat" for p in listed), listed


@pytest.mark.parametrize("fault", ["wx_transfer_timeout", "wx_transfer_system_error", "wx_transfer_processing"])
def test_unknown_outcome_is_queried_never_sent_again(harness, wx, fault):
    """A timeout or SYSTEM_ERROR after WeChat executed the transfer, a bill
    still PROCESSING: PENDING; the next run queries by out_bill_no and records
    PAID without a second transfer."""
    cid = _creator(harness, wx, "o-ok")
    day, batch_no = _settled(harness, wx, cid)
    # no MCHTRANSFER.BILL.FINISHED (test_payouts_wechat_confirm.py): the query alone decides
    with faults(harness, no_notify=True, **{fault: 1 if fault == "wx_transfer_processing" else True}):
        out = _payout(harness, wx, day)
        assert out["pending"] == 1 and out["paid"] == 0 and out["failed"] == 0, out
        row = _row(harness, batch_no)
        assert row["status"] == "PENDING" and row["sent"] == 1, row
        if fault == "wx_transfer_processing":   # the first query still says PROCESSING
            out = _payout(harness, wx, day)
            assert out["pending"] == 1, out
    out = _payout(harness, wx, day)
    assert out["paid"] == 1, out
    _paid_once(harness, batch_no, cid)


def test_name_mismatch_fails_with_the_reason(harness, wx):
    cid = _creator(harness, wx, "o-wrongname")
    day, batch_no = _settled(harness, wx, cid)
    out = _payout(harness, wx, day)
    assert out["failed"] == 1 and out["paid"] == 0, out
    row = _row(harness, batch_no)
    assert row["status"] == "FAILED" and "NAME_NOT_CORRECT" in row["reason"], row
    assert row["reason"].startswith("payee account:"), row
    events = harness.query("SELECT type FROM webhook_events WHERE payload LIKE %s", "%" + batch_no + "%")
    assert [e["type"] for e in events] in ([], ["payout.failed"])
    assert harness.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE txn_id = %s",
                         "payout:" + batch_no)[0]["n"] == 0


def test_unknown_payee_is_refused_and_fails(harness, wx):
    cid = _creator(harness, wx, "o-nobody")
    day, batch_no = _settled(harness, wx, cid)
    out = _payout(harness, wx, day)
    assert out["failed"] == 1, out
    row = _row(harness, batch_no)
    assert row["status"] == "FAILED" and "INVALID_REQUEST" in row["reason"], row


def test_balance_too_low_stays_pending_then_pays(harness, wx):
    cid = _creator(harness, wx, "o-ok")
    day, batch_no = _settled(harness, wx, cid)
    saved = harness.sandbox_get("/_sandbox/wechat_v3/transfers").json()["balance_fen"]
    harness.sandbox_post("/_sandbox/wechat_v3/transfer_balance", {"fen": SHARE - 1})
    try:
        out = _payout(harness, wx, day)
    finally:
        harness.sandbox_post("/_sandbox/wechat_v3/transfer_balance", {"fen": saved})
    assert out["pending"] == 1 and out["paid"] == 0 and out["failed"] == 0, out
    row = _row(harness, batch_no)
    assert row["status"] == "PENDING" and "NOT_ENOUGH" in row["reason"] and row["sent"] == 0, row
    out = _payout(harness, wx, day)
    assert out["paid"] == 1, out
    assert _bill(harness, batch_no)[1] == 2   # refused once (nothing moved), then paid


def test_waiting_for_the_payee_keeps_package_info_then_pays(harness, wx):
    cid = _creator(harness, wx, "o-ok")
    day, batch_no = _settled(harness, wx, cid)
    with faults(harness, wx_transfer_confirm=True):
        out = _payout(harness, wx, day)
    assert out["pending"] == 1, out
    row = _row(harness, batch_no)
    bills, _ = _bill(harness, batch_no)
    assert row["status"] == "WAITING_CONFIRMATION" and "WAIT_USER_CONFIRM" in row["reason"], row
    assert row["package_info"] == bills[0]["package_info"], (row, bills)
    assert not [p for p in harness.ctl_json("payout", "list", "--status", "PENDING", config=wx.cli)
                if p["payout_no"] == batch_no]
    listed = harness.ctl_json("payout", "list", "--status", "WAITING_CONFIRMATION", config=wx.cli)
    mine = [p for p in listed if p["payout_no"] == batch_no]
    assert mine and mine[0]["package_info"] == bills[0]["package_info"], mine
    assert _payout(harness, wx, day)["pending"] == 1          # still waiting: queried, not sent
    assert _row(harness, batch_no)["status"] == "WAITING_CONFIRMATION"
    with faults(harness, no_notify=True):   # learned by the next run's query, not by the notification
        r = harness.sandbox_post("/_sandbox/wechat_v3/transfer_confirm", {"out_bill_no": batch_no.replace("-", "")})
    assert r.status_code == 200, r.text
    out = _payout(harness, wx, day)
    assert out["paid"] == 1, out
    _paid_once(harness, batch_no, cid)
    assert _row(harness, batch_no)["package_info"] is None


def test_a_claimed_payout_is_sent_by_nobody_else(harness, wx):
    """Another run holds the claim: this run leaves it alone; once the claim
    expired, the next run asks WeChat first (it may have been sent), finds no
    bill, and sends it only then."""
    cid = _creator(harness, wx, "o-ok")
    day, batch_no = _settled(harness, wx, cid)
    harness.query("INSERT INTO payouts (payout_no, batch_id, creator_id, amount_fen, channel, sent, attempts,"
                  " claimed_until) SELECT batch_no, id, creator_id, amount_fen, 'wechat', 1, 1,"
                  " UTC_TIMESTAMP() + INTERVAL 1 HOUR FROM settlement_batches WHERE batch_no = %s", batch_no)
    out = _payout(harness, wx, day)
    assert out["paid"] == 0 and out["pending"] == 0 and out["failed"] == 0, out
    assert _bill(harness, batch_no)[1] == 0
    harness.query("UPDATE payouts SET claimed_until = UTC_TIMESTAMP() - INTERVAL 1 SECOND WHERE payout_no = %s",
                  batch_no)
    out = _payout(harness, wx, day)
    assert out["paid"] == 1, out
    _paid_once(harness, batch_no, cid)


def test_check_config_wechat_channel_needs_v3(harness, wx, tmp_path):
    cfg = tmp_path / "v2.ini"
    cfg.write_text(wx.cli.read_text().replace("api_version = v3", "api_version = v2"))
    r = harness.ctl("check-config", config=cfg, check=False)
    assert r.returncode != 0 and "merchant transfers need" in (r.stdout + r.stderr), r
