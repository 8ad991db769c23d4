"""What a provider's answer to a refund means (issue 10, items 11, 12, 16),
against a sandbox that answers as the providers do in production:

- Alipay: a 10000 reply to alipay.trade.refund is a confirmed refund only
  with fund_change Y; N (or none) means "confirm with the refund query".
- Alipay: the refund query confirms a refund only with refund_status
  REFUND_SUCCESS; its business fields without that status mean "not
  received or failed".
- WeChat: refund_status CHANGE is an abnormal refund, to be handled by hand
  in the merchant platform: neither failed nor succeeded, its amount stays
  reserved, the operator is alerted.

Each test drives the sandbox's fault switches and paygatectl sync step by
step (timestamps moved in the database, no sleeping on races)."""

import json
import time

import pytest

from test_lifecycle import (cli_refund, events_in_db, faults, order_show, paid_order,
                            provider_refunds, refund_api, refund_row, wait_for)


@pytest.fixture(autouse=True)
def _callbacks_of_the_cli_arrive(cli_stack):
    """Refunds sent by paygatectl are notified to the CLI config's base_url."""


def make_due(harness, refund_no, age="5 MINUTE"):
    harness.query("UPDATE refunds SET last_attempt_at = UTC_TIMESTAMP() - INTERVAL %s "
                  "WHERE refund_no=%%s" % age, refund_no)


def sync(harness):
    return harness.ctl("sync")


def refund_ledger(harness, refund_no):
    return harness.query("SELECT account, amount_fen FROM ledger_entries WHERE txn_id=%s",
                         "refund:" + refund_no)


def cli_log(harness):
    path = harness.run / "paygatectl.log"
    return path.read_text(errors="replace") if path.exists() else ""


# ------------------------------------------------------------ Alipay (11, 12)

def test_alipay_fund_change_n_stays_pending_until_the_query_says_refund_success(harness,
                                                                                lighttpd_stack):
    st = lighttpd_stack
    c = paid_order(harness, st, "alipay", product="ebook-sql")
    with faults(harness, alipay_refund_deferred=True, drop_notify=True):
        r = refund_api(st, c["order_no"], amount_fen="1000")
        assert r.status_code == 201, r.text
        ref = r.json()
        # 10000 with fund_change N: no money moved yet
        assert ref["status"] == "PENDING", ref
        row = refund_row(harness, ref["refund_no"])
        assert row["status"] == "PENDING" and row["attempts"] == 1, row
        assert harness.order(c["order_no"])["refunded_fen"] == 0
        assert refund_ledger(harness, ref["refund_no"]) == []
        assert events_in_db(harness, c["order_no"], "order.refunded") == []

        # the query answers refund_amount without refund_status: not done;
        # paygate sends the same out_request_no again (Alipay's advice), which
        # is answered fund_change N again and refunds nothing twice
        make_due(harness, ref["refund_no"])
        sync(harness)
        row = refund_row(harness, ref["refund_no"])
        assert row["status"] == "PENDING", row
        assert harness.order(c["order_no"])["refunded_fen"] == 0
        assert provider_refunds(harness, "alipay", c["payment_no"]) == [(ref["refund_no"], 1000)]
        t = harness.sandbox_trade(c["payment_no"])
        assert [x["refund_status"] for x in t["refunds"]] == [None], t["refunds"]

        # the refund completes at Alipay (its notification is dropped): the
        # next query says REFUND_SUCCESS and only then is it SUCCEEDED
        done = harness.sandbox_post("/_sandbox/alipay/refund_complete",
                                    {"out_trade_no": c["payment_no"],
                                     "out_request_no": ref["refund_no"]})
        assert done.status_code == 200, done.text
        assert refund_row(harness, ref["refund_no"])["status"] == "PENDING"
        make_due(harness, ref["refund_no"])
        sync(harness)
    row = refund_row(harness, ref["refund_no"])
    assert row["status"] == "SUCCEEDED", row
    o = harness.order(c["order_no"])
    assert o["refunded_fen"] == 1000 and o["status"] == "PARTIALLY_REFUNDED"
    assert sum(e["amount_fen"] for e in refund_ledger(harness, ref["refund_no"])) == 0
    assert refund_ledger(harness, ref["refund_no"]) != []
    assert provider_refunds(harness, "alipay", c["payment_no"]) == [(ref["refund_no"], 1000)]
    assert len(events_in_db(harness, c["order_no"], "order.refunded")) == 1


def test_alipay_refund_query_without_refund_status_is_not_a_refund(harness, lighttpd_stack):
    """The refund call's reply is lost (timeout), so only the query can tell;
    the query's business fields without refund_status must not count."""
    st = lighttpd_stack
    c = paid_order(harness, st, "alipay", product="ebook-sql")
    with faults(harness, alipay_refund_deferred=True, refund_timeout=True, drop_notify=True):
        r = refund_api(st, c["order_no"], amount_fen="700")
        assert r.status_code == 201, r.text
        ref = r.json()
    assert ref["status"] == "PENDING", ref
    with faults(harness, alipay_refund_deferred=True, drop_notify=True):
        make_due(harness, ref["refund_no"])
        sync(harness)
        row = refund_row(harness, ref["refund_no"])
        assert row["status"] == "PENDING", row
        assert harness.order(c["order_no"])["refunded_fen"] == 0
        assert refund_ledger(harness, ref["refund_no"]) == []
        assert provider_refunds(harness, "alipay", c["payment_no"]) == [(ref["refund_no"], 700)]
        harness.sandbox_post("/_sandbox/alipay/refund_complete",
                             {"out_trade_no": c["payment_no"], "out_request_no": ref["refund_no"]})
        make_due(harness, ref["refund_no"])
        sync(harness)
    assert refund_row(harness, ref["refund_no"])["status"] == "SUCCEEDED"
    assert harness.order(c["order_no"])["refunded_fen"] == 700
    assert len(events_in_db(harness, c["order_no"], "order.refunded")) == 1


# ----------------------------------------------------------- WeChat CHANGE (16)

def wx_refund_to_change(harness, st, order_no, amount_fen):
    """A WeChat refund (sent by paygatectl, which holds the client
    certificate) that the sandbox ends in CHANGE."""
    rc, ref, r = cli_refund(harness, order_no, amount_fen)
    assert rc == 0 and ref, (r.stdout, r.stderr)
    assert ref["status"] == "PENDING", ref
    wait_for(lambda: harness.wx_refund_status(ref["refund_no"]) == "CHANGE", 10,
             "the sandbox to end the refund in CHANGE")
    return ref


def test_wechat_refund_change_is_abnormal_reserved_alerted_and_shown(harness, lighttpd_stack):
    st = lighttpd_stack
    c = paid_order(harness, st, "wechat", product="ebook-sql")
    # drop_notify all along: the refund notification (and its retries) would
    # tell too; here the query is the only source
    with faults(harness, wechat_refund_change=True, drop_notify=True):
        abnormal_then_resolved_by_hand(harness, st, c)


def abnormal_then_resolved_by_hand(harness, st, c):
    paid_fen = harness.order(c["order_no"])["amount_fen"]
    ref = wx_refund_to_change(harness, st, c["order_no"], 1000)
    assert refund_row(harness, ref["refund_no"])["status"] == "PENDING"

    log_before = len(cli_log(harness))
    make_due(harness, ref["refund_no"])
    sync(harness)
    row = refund_row(harness, ref["refund_no"])
    assert row["status"] == "ABNORMAL", row
    assert row["succeeded_at"] is None
    o = harness.order(c["order_no"])
    assert o["refunded_fen"] == 0 and o["status"] == "PAID", o
    assert refund_ledger(harness, ref["refund_no"]) == []
    # alerted: an error line in the log and one refund.abnormal event
    new_log = cli_log(harness)[log_before:]
    assert any(" error: " in line and ref["refund_no"] in line and "ABNORMAL" in line
               for line in new_log.splitlines()), new_log
    ev = events_in_db(harness, c["order_no"], "refund.abnormal")
    assert len(ev) == 1, ev
    payload = json.loads(ev[0]["payload"])
    assert payload["data"]["refund_no"] == ref["refund_no"], payload
    assert events_in_db(harness, c["order_no"], "order.refunded") == []

    # the amount stays reserved: the rest can be refunded, the whole cannot
    rc, full, r = cli_refund(harness, c["order_no"], paid_fen)
    assert rc == 1 and full is None, (r.stdout, r.stderr)
    assert "refund_exceeds_paid" in r.stderr, r.stderr

    # shown in order show (JSON and text)
    doc = order_show(harness, c["order_no"])
    assert [(x["refund_no"], x["status"]) for x in doc["refunds"]] == [(ref["refund_no"],
                                                                        "ABNORMAL")], doc
    text = harness.ctl("order", "show", c["order_no"]).stdout
    assert "ABNORMAL" in text and "merchant platform" in text, text

    # asked again later: still CHANGE, nothing new (no second alert event)
    make_due(harness, ref["refund_no"], "2 HOUR")
    sync(harness)
    assert refund_row(harness, ref["refund_no"])["status"] == "ABNORMAL"
    assert len(events_in_db(harness, c["order_no"], "refund.abnormal")) == 1

    # reconciliation lists it as its own category and exits 1
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    r = harness.ctl("--json", "reconcile", "--channel", "wechat", "--date", today, check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    recon = json.loads(r.stdout)
    mine = [i for i in recon["items"] if i["out_refund_no"] == ref["refund_no"]]
    assert [i["category"] for i in mine] == ["refund_abnormal"], recon["items"]
    assert recon["refund_abnormal"] >= 1 and recon["unexplained"] >= 1, recon

    # handled by hand in the merchant platform: WeChat now says SUCCESS
    res = harness.sandbox_post("/_sandbox/wechat/refund_resolve",
                               {"out_refund_no": ref["refund_no"], "refund_status": "SUCCESS"})
    assert res.status_code == 200, res.text
    make_due(harness, ref["refund_no"], "2 HOUR")
    sync(harness)
    row = refund_row(harness, ref["refund_no"])
    assert row["status"] == "SUCCEEDED", row
    o = harness.order(c["order_no"])
    assert o["refunded_fen"] == 1000 and o["status"] == "PARTIALLY_REFUNDED", o
    assert sum(e["amount_fen"] for e in refund_ledger(harness, ref["refund_no"])) == 0
    assert len(events_in_db(harness, c["order_no"], "order.refunded")) == 1
    assert provider_refunds(harness, "wechat", c["payment_no"]) == [(ref["refund_no"], 1000)]


def test_wechat_refund_notification_change_marks_abnormal_once(harness, lighttpd_stack):
    st = lighttpd_stack
    c = paid_order(harness, st, "wechat", product="ebook-sql")
    with faults(harness, wechat_refund_change=True):
        ref = wx_refund_to_change(harness, st, c["order_no"], 500)
        # the sandbox's own refund notification (refund_status CHANGE)
        wait_for(lambda: refund_row(harness, ref["refund_no"])["status"] != "PENDING", 10,
                 "the CHANGE notification to be recorded")
    assert refund_row(harness, ref["refund_no"])["status"] == "ABNORMAL"
    again = harness.sandbox_post("/_sandbox/wechat/refund_notify",
                                 {"out_refund_no": ref["refund_no"]}).json()
    assert again["acked"], again
    assert "<refund_status><![CDATA[CHANGE]]></refund_status>" in again["plain"], again["plain"]
    assert refund_row(harness, ref["refund_no"])["status"] == "ABNORMAL"
    outcomes = [x["outcome"] for x in harness.query(
        "SELECT outcome FROM notifications WHERE channel='wechat' AND kind='refund' "
        "AND payment_no=%s ORDER BY id", c["payment_no"])]
    assert outcomes.count("accepted") == 1 and outcomes.count("duplicate") >= 1, outcomes
    assert len(events_in_db(harness, c["order_no"], "refund.abnormal")) == 1
    assert harness.order(c["order_no"])["refunded_fen"] == 0
