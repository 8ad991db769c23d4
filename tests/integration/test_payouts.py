"""Alipay certificate mode end to end, and creator payouts by Alipay transfer.

A stack and a paygatectl config in certificate mode (the sandbox's own root
bundle, Alipay certificate and app certificate, GET /_sandbox/alipay/certs),
with [payouts] enabled. Each payout test makes its own creator, pays an order
of its product, backdates that creator's payable entries to a day of its own
in 2002, settles that day and pays out that day only, so the session's other
traffic never changes the amounts here. Expected amounts come from the
documented split (README "Money"): fee round_half_up(A*60/10000), creator
floor((A-F)*7000/10000)."""

import datetime
import random
import re
import shutil

import pytest
import requests

from conftest import API_KEY, TIMEOUT, load_private, pick, unique_user
from test_lifecycle import faults

PRICE = 9900
FEE = (PRICE * 60 + 5000) // 10000
SHARE = (PRICE - FEE) * 7000 // 10000


def _cert_lines(harness, dest):
    """Copies the sandbox's certificates to dest; the [alipay] lines of
    certificate mode."""
    info = harness.sandbox_get("/_sandbox/alipay/certs").json()
    lines = []
    for key in ("app_cert", "alipay_cert", "alipay_root_cert"):
        copy = dest / ("%s.crt" % key)
        shutil.copyfile(info[key], copy)
        lines.append("%s = %s" % (key, copy))
    return info, "\n".join(lines)


def _to_cert_mode(path, cert_lines, payouts=True):
    text = path.read_text()
    text, n = re.subn(r"(?m)^alipay_public_key = .*$", "alipay_public_key =\n" + cert_lines, text)
    assert n == 1
    if payouts:
        text += "\n[payouts]\nenabled = true\nchannel = alipay\nmin_fen = 100\nstart_date = 2002-01-01\n"
    path.write_text(text)


@pytest.fixture(scope="module")
def cert(harness):
    """(stack, cli config, SNs) in certificate mode with payouts on."""
    dest = harness.run / "certmode"
    dest.mkdir(exist_ok=True)
    info, lines = _cert_lines(harness, dest)
    st = harness.new_stack(pick("lighttpd")[0], name="certmode", fcgi_children=2)
    writer = st.config_writer

    def write(s):
        writer(s)
        _, stack_lines = _cert_lines(harness, s.dir)
        _to_cert_mode(s.config, stack_lines)
    st.config_writer = write
    st.start()
    cli = harness.run / "cli-certmode.ini"
    harness.write_config(cli, st.base_url, harness.run / "paygatectl-certmode.log", harness.keys["pkcs8"])
    _to_cert_mode(cli, lines)
    yield st, cli, info
    st.stop()


_DAYS = iter(range(random.randint(0, 150), 366))


def _day():
    """A day of 2002 no other test of this run uses (its batches only)."""
    return (datetime.date(2002, 1, 1) + datetime.timedelta(days=next(_DAYS))).isoformat()


def _creator(harness, cli, account="creator@example.com", name="Zhang San"):
    cid = "po" + unique_user("")[-10:].replace("-", "").lower()
    args = ["creator", "add", "--id", cid, "--name", "Payout " + cid]
    if account:
        args += ["--alipay-account", account, "--real-name", name]
    harness.ctl(*args, config=cli)
    harness.ctl("product", "add", "--sku", "po-" + cid, "--title", "Payout course", "--price-fen",
                str(PRICE), "--creator", cid, config=cli)
    return cid


def _paid_and_settled(harness, st, cli, cid):
    """One paid order of cid's product, its share settled on a day of its own."""
    c = harness.new_payment(st, product="po-" + cid, channel="alipay", method="qr")
    r = harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    assert r.status_code == 200, r.text
    harness.wait_order_status(st, c["order_no"], "PAID")
    day = _day()
    harness.query("UPDATE ledger_entries SET available_on = %s WHERE creator_id = %s", day, cid)
    out = harness.ctl_json("settle", "--date", day, config=cli)
    assert out["batches"] >= 1, out
    batch = harness.query("SELECT * FROM settlement_batches WHERE creator_id = %s", cid)
    assert len(batch) == 1 and batch[0]["amount_fen"] == SHARE, batch
    return day, batch[0]["batch_no"]


def _payout(harness, cli, day):
    return harness.ctl_json("payout", "--date", day, config=cli)


def _row(harness, batch_no):
    rows = harness.query("SELECT * FROM payouts WHERE payout_no = %s", batch_no)
    assert len(rows) == 1, rows
    return rows[0]


def _transfer(harness, batch_no):
    t = harness.sandbox_get("/_sandbox/alipay/transfers").json()
    return [x for x in t["transfers"] if x["out_biz_no"] == batch_no], t["calls"].get(batch_no, 0)


def _ledger_payout(harness, batch_no, cid):
    rows = harness.query("SELECT account, amount_fen FROM ledger_entries WHERE txn_id = %s ORDER BY account",
                         "payout:" + batch_no)
    assert rows == [{"account": "paidout:creator:" + cid, "amount_fen": -SHARE},
                    {"account": "settled:creator:" + cid, "amount_fen": SHARE}], rows
    settled = harness.query("SELECT SUM(amount_fen) AS s FROM ledger_entries WHERE account = %s",
                            "settled:creator:" + cid)[0]["s"]
    assert settled == 0, "the creator's settled balance is paid out entirely"


# ------------------------------------------------------- certificate mode

def test_check_config_shows_the_sandbox_sns(harness, cert):
    _st, cli, info = cert
    r = harness.ctl("check-config", config=cli)
    assert "certificate mode" in r.stdout
    for key in ("app_cert_sn", "alipay_cert_sn", "alipay_root_cert_sn"):
        assert "%s %s" % (key, info[key]) in r.stdout, r.stdout
    # the root SN leaves out the ECDSA root of the sandbox's bundle
    assert info["alipay_root_cert_sn"].count("_") == 1


def test_check_config_refuses_a_mix_of_modes(harness, cert):
    _st, cli, _info = cert
    bad = harness.run / "cli-certmode-mixed.ini"
    text = cli.read_text().replace("alipay_public_key =\n",
                                   "alipay_public_key = %s\n" % harness.alipay_public_key_file)
    bad.write_text(text)
    r = harness.ctl("check-config", config=bad, check=False)
    assert r.returncode != 0
    assert "[alipay] alipay_public_key: set together with app_cert" in r.stderr


def test_cert_mode_pay_query_refund(harness, cert):
    """precreate, the notification (verified with the key inside
    alipay_cert), query and refund all in certificate mode."""
    st, _cli, _info = cert
    c = harness.new_payment(st, product="course-c", channel="alipay", method="qr")
    r = harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    assert r.status_code == 200, r.text
    harness.wait_order_status(st, c["order_no"], "PAID")
    rr = requests.post("%s/orders/%s/refund" % (st.base_url, c["order_no"]),
                       data={"amount_fen": "100", "reason": "cert mode"},
                       headers={"Authorization": "Bearer " + API_KEY}, timeout=TIMEOUT)
    assert rr.status_code in (200, 201, 202), rr.text
    assert harness.sandbox_trade(c["payment_no"])["refunds"], "the refund reached the sandbox"


def test_reply_under_another_alipay_cert_sn_is_refused(harness, cert):
    st, _cli, _info = cert
    with faults(harness, alipay_cert_sn_other=True):
        r = harness.checkout(st, product="course-c", channel="alipay", method="qr")
    assert r.status_code != 201 and r.json()["error"]["code"] == "upstream_error", r.text
    log = st.logs()["paygate.log"].read_text()
    assert "alipay_cert_sn" in log


def test_notification_signed_with_the_app_key_is_refused(harness, cert):
    """Signed with the app's own private key (whose certificate is app_cert,
    not alipay_cert): refused, logged as such, and no state table changes."""
    from chaos_helpers import REJECTED, STATE_TABLES, new_notifications, snapshot
    st, _cli, _info = cert
    c = harness.new_payment(st, product="course-c", channel="alipay", method="qr")
    before = snapshot(harness)
    form = harness.notification(c["payment_no"], 9900, key=load_private(harness.keys["pkcs8"]))
    r = harness.notify(st, form)
    assert r.text != "success"
    assert harness.order_status(st, c["order_no"])["status"] != "PAID"
    after = snapshot(harness)
    assert {t: after.get(t) for t in STATE_TABLES} == {t: before.get(t) for t in STATE_TABLES}
    logged = new_notifications(harness, before["_max_notification_id"])
    assert [n["outcome"] for n in logged] == ["bad_signature"] and logged[0]["outcome"] in REJECTED, logged


# --------------------------------------------------------------- payouts

def test_payout_pays_the_batch_once(harness, cert):
    st, cli, _info = cert
    cid = _creator(harness, cli)
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    out = _payout(harness, cli, day)
    assert out["paid"] == 1 and out["paid_fen"] == SHARE, out
    row = _row(harness, batch_no)
    assert row["status"] == "PAID" and row["amount_fen"] == SHARE and row["provider_order_id"]
    transfers, calls = _transfer(harness, batch_no)
    assert calls == 1 and len(transfers) == 1 and transfers[0]["fen"] == SHARE
    assert transfers[0]["identity"] == "creator@example.com" and transfers[0]["name"] == "Zhang San"
    _ledger_payout(harness, batch_no, cid)
    again = _payout(harness, cli, day)
    assert again["paid"] == 0 and again["created"] == 0, again
    assert _transfer(harness, batch_no)[1] == 1
    listed = harness.ctl_json("payout", "list", "--status", "PAID", config=cli)
    assert any(p["payout_no"] == batch_no and p["creator_id"] == cid for p in listed), listed
    # the account is stored, shown masked, never whole
    creators = harness.ctl_json("creator", "list", config=cli)
    mine = [x for x in creators if x["id"] == cid][0]
    assert mine["alipay_account"] == "c*****om" and "creator@example.com" not in str(creators)
    log = (harness.run / "paygatectl-certmode.log")
    assert not log.exists() or "creator@example.com" not in log.read_text()
    report = harness.ctl("report", "--from", day, "--to", day, config=cli)
    assert "PAID" in report.stdout and "every transaction sums to zero: yes" in report.stdout


def test_batches_before_start_date_are_never_paid_out(harness, cert):
    """[payouts] start_date = 2002-01-01: a batch settled on a day before it
    (paid by hand from the payout CSV before transfers were switched on) is
    neither paid by `payout --date` nor by a run over every day."""
    st, cli, _info = cert
    cid = _creator(harness, cli)
    c = harness.new_payment(st, product="po-" + cid, channel="alipay", method="qr")
    assert harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]}).status_code == 200
    harness.wait_order_status(st, c["order_no"], "PAID")
    day = "2001-12-31"
    harness.query("UPDATE ledger_entries SET available_on = %s WHERE creator_id = %s", day, cid)
    assert harness.ctl_json("settle", "--date", day, config=cli)["batches"] >= 1
    batch_no = harness.query("SELECT batch_no FROM settlement_batches WHERE creator_id = %s", cid)[0]["batch_no"]
    out = _payout(harness, cli, day)
    assert out["created"] == 0 and out["paid"] == 0, out
    harness.ctl_json("payout", config=cli)
    assert not harness.query("SELECT id FROM payouts WHERE payout_no = %s", batch_no)
    assert _transfer(harness, batch_no)[1] == 0


def test_payee_not_found_fails_then_retry_after_fixing_the_account(harness, cert):
    st, cli, _info = cert
    cid = _creator(harness, cli, account="nobody@example.com")
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    out = _payout(harness, cli, day)
    assert out["failed"] == 1 and out["paid"] == 0, out
    row = _row(harness, batch_no)
    assert row["status"] == "FAILED" and "PAYEE_NOT_EXIST" in row["reason"], row
    assert harness.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE txn_id = %s",
                         "payout:" + batch_no)[0]["n"] == 0
    harness.ctl("creator", "update", "--id", cid, "--alipay-account", "fixed@example.com",
                "--real-name", "Zhang San", config=cli)
    harness.ctl("payout", "retry", batch_no, config=cli)
    out = _payout(harness, cli, day)
    assert out["paid"] == 1, out
    assert _row(harness, batch_no)["status"] == "PAID"
    # the retry is a new transfer number: the refused one never existed at Alipay
    assert _transfer(harness, batch_no) == ([], 1)
    transfers, _calls = _transfer(harness, batch_no + "R1")
    assert len(transfers) == 1 and transfers[0]["identity"] == "fixed@example.com"
    _ledger_payout(harness, batch_no, cid)


def test_a_returned_transfer_is_retried_under_a_new_out_biz_no(harness, cert):
    """A transfer Alipay accepted and then returned (REFUND, 退票) is final:
    FAILED. Alipay answers that out_biz_no with the returned order forever,
    so the retry goes out as <batch>R1 and pays (it used to come back FAILED
    again)."""
    st, cli, _info = cert
    cid = _creator(harness, cli)
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    with faults(harness, transfer_dealing=5):
        assert _payout(harness, cli, day)["pending"] == 1
    r = harness.sandbox_post("/_sandbox/alipay/transfer_refund", {"out_biz_no": batch_no})
    assert r.status_code == 200, r.text
    out = _payout(harness, cli, day)
    assert out["failed"] == 1, out
    row = _row(harness, batch_no)
    assert row["status"] == "FAILED" and "REFUND" in row["reason"], row
    harness.ctl("payout", "retry", batch_no, config=cli)
    row = _row(harness, batch_no)
    assert row["status"] == "PENDING" and row["bill_gen"] == 1 and row["sent"] == 0, row
    out = _payout(harness, cli, day)
    assert out["paid"] == 1, out
    returned, calls = _transfer(harness, batch_no)
    assert calls == 1 and returned[0]["status"] == "REFUND", returned
    paid, calls = _transfer(harness, batch_no + "R1")
    assert calls == 1 and paid[0]["status"] == "SUCCESS", paid
    row = _row(harness, batch_no)
    assert row["status"] == "PAID" and row["provider_order_id"] == paid[0]["order_id"], row
    _ledger_payout(harness, batch_no, cid)
    assert _payout(harness, cli, day)["paid"] == 0
    assert _transfer(harness, batch_no + "R1")[1] == 1


def test_balance_too_low_stays_pending_then_pays(harness, cert):
    st, cli, _info = cert
    cid = _creator(harness, cli)
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    saved = harness.sandbox_get("/_sandbox/alipay/transfers").json()["balance_fen"]
    harness.sandbox_post("/_sandbox/alipay/balance", {"fen": SHARE - 1})
    try:
        out = _payout(harness, cli, day)
    finally:
        harness.sandbox_post("/_sandbox/alipay/balance", {"fen": saved})
    assert out["pending"] == 1 and out["paid"] == 0 and out["failed"] == 0, out
    row = _row(harness, batch_no)
    assert row["status"] == "PENDING" and "BALANCE_IS_NOT_ENOUGH" in row["reason"] and row["sent"] == 0
    out = _payout(harness, cli, day)
    assert out["paid"] == 1, out
    assert _transfer(harness, batch_no)[1] == 2   # refused once (nothing moved), then paid


@pytest.mark.parametrize("fault", ["transfer_system_error", "transfer_other_out_biz_no", "transfer_dealing"])
def test_unknown_outcome_is_queried_never_sent_again(harness, cert, fault):
    """SYSTEM_ERROR after executing, a reply naming another out_biz_no, a
    transfer still processing: PENDING, and the next run asks (query) and
    records PAID without a second transfer."""
    st, cli, _info = cert
    cid = _creator(harness, cli)
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    with faults(harness, **{fault: 1 if fault == "transfer_dealing" else True}):
        out = _payout(harness, cli, day)
        assert out["pending"] == 1 and out["paid"] == 0 and out["failed"] == 0, out
        assert _row(harness, batch_no)["status"] == "PENDING"
        if fault == "transfer_dealing":   # the first query still says DEALING
            out = _payout(harness, cli, day)
            assert out["pending"] == 1, out
    out = _payout(harness, cli, day)
    assert out["paid"] == 1, out
    transfers, calls = _transfer(harness, batch_no)
    assert calls == 1 and len(transfers) == 1, (calls, transfers)
    _ledger_payout(harness, batch_no, cid)


def test_timeout_after_executing_is_queried(harness, cert):
    st, cli, _info = cert
    cid = _creator(harness, cli)
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    with faults(harness, transfer_timeout=True):
        out = _payout(harness, cli, day)
    assert out["pending"] == 1, out
    out = _payout(harness, cli, day)
    assert out["paid"] == 1, out
    assert _transfer(harness, batch_no)[1] == 1
    _ledger_payout(harness, batch_no, cid)


def test_a_claimed_payout_is_sent_by_nobody_else(harness, cert):
    """Another run holds the claim (a second `payout` at the same moment):
    this run leaves it alone; once the claim expired, the next run asks
    Alipay first (it may have been sent) and sends it only then."""
    st, cli, _info = cert
    cid = _creator(harness, cli)
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    out = harness.ctl_json("payout", "--date", "1999-01-01", config=cli)   # creates nothing of ours
    assert out["paid"] == 0
    harness.query("INSERT INTO payouts (payout_no, batch_id, creator_id, amount_fen, channel, sent, attempts,"
                  " claimed_until) SELECT batch_no, id, creator_id, amount_fen, 'alipay', 1, 1,"
                  " UTC_TIMESTAMP() + INTERVAL 1 HOUR FROM settlement_batches WHERE batch_no = %s", batch_no)
    out = _payout(harness, cli, day)
    assert out["paid"] == 0 and out["pending"] == 0 and out["failed"] == 0, out
    assert _transfer(harness, batch_no)[1] == 0
    harness.query("UPDATE payouts SET claimed_until = UTC_TIMESTAMP() - INTERVAL 1 SECOND WHERE payout_no = %s",
                  batch_no)
    out = _payout(harness, cli, day)
    assert out["paid"] == 1, out
    assert _transfer(harness, batch_no)[1] == 1


def test_small_balances_wait_and_creators_without_account_wait(harness, cert):
    st, cli, _info = cert
    cid = _creator(harness, cli, account=None)
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    out = _payout(harness, cli, day)
    assert out["waiting_for_account"] == 1 and out["paid"] == 0, out
    harness.ctl("creator", "update", "--id", cid, "--alipay-account", "2088000000000042", config=cli)
    out = _payout(harness, cli, day)
    assert out["paid"] == 1, out
    transfers, _ = _transfer(harness, batch_no)
    assert transfers[0]["identity"] == "2088000000000042"
    # below min_fen: settlement leaves the entries for the next batch
    small = harness.run / "cli-certmode-min.ini"
    small.write_text(cli.read_text().replace("min_fen = 100", "min_fen = 100000000"))
    cid2 = _creator(harness, cli)
    c = harness.new_payment(st, product="po-" + cid2, channel="alipay", method="qr")
    harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    harness.wait_order_status(st, c["order_no"], "PAID")
    d2 = _day()
    harness.query("UPDATE ledger_entries SET available_on = %s WHERE creator_id = %s", d2, cid2)
    harness.ctl_json("settle", "--date", d2, config=small)
    assert harness.query("SELECT COUNT(*) AS n FROM settlement_batches WHERE creator_id = %s", cid2)[0]["n"] == 0


def test_an_open_payout_of_another_channel_does_not_stop_the_run(harness, cert):
    """A WeChat payout still open from before [payouts] channel became alipay
    (this configuration cannot send or query WeChat transfers) is left as it
    is and counted; the Alipay payout of the same day is paid. (The run used
    to stop at it: exit 1, nobody paid.)"""
    st, cli, _info = cert
    old, cid = _creator(harness, cli), _creator(harness, cli)
    harness.ctl("creator", "update", "--id", old, "--wechat-openid", "o-old-channel", config=cli)
    day, old_batch = _paid_and_settled(harness, st, cli, old)
    batch = harness.query("SELECT id, amount_fen FROM settlement_batches WHERE batch_no = %s", old_batch)[0]
    # the payout made while [payouts] channel was wechat
    harness.query("INSERT INTO payouts (payout_no, batch_id, creator_id, amount_fen, channel, status,"
                  " package_info) VALUES (%s, %s, %s, %s, 'wechat', 'WAITING_CONFIRMATION', 'pkg')",
                  old_batch, batch["id"], old, batch["amount_fen"])
    c = harness.new_payment(st, product="po-" + cid, channel="alipay", method="qr")
    assert harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]}).status_code == 200
    harness.wait_order_status(st, c["order_no"], "PAID")
    harness.query("UPDATE ledger_entries SET available_on = %s WHERE creator_id = %s", day, cid)
    assert harness.ctl_json("settle", "--date", day, config=cli)["batches"] >= 1
    batch_no = harness.query("SELECT batch_no FROM settlement_batches WHERE creator_id = %s", cid)[0]["batch_no"]
    out = _payout(harness, cli, day)
    # (settling the day may also have batched other tests' leftover entries)
    assert out["paid"] >= 1 and out["unsendable"] == 1, out
    assert _row(harness, batch_no)["status"] == "PAID"
    kept = _row(harness, old_batch)
    assert kept["status"] == "WAITING_CONFIRMATION" and kept["attempts"] == 0 and kept["claimed_until"] is None
    assert _transfer(harness, old_batch)[1] == 0


# ----------------------------------------------- attacked transfer replies

@pytest.mark.parametrize("fault", ["alipay_cert_sn_other", "transfer_other_out_biz_no"])
def test_an_attacked_transfer_reply_changes_nothing(harness, cert, fault):
    """A transfer reply under another alipay_cert_sn (the SN of a
    certificate that is not alipay_cert), or one that names another
    out_biz_no: refused. Only the payout's own claim bookkeeping exists
    (PENDING, sent); no ledger move, no webhook event, no batch change, no
    provider order id. Under another SN the query's reply is refused too.
    Once the replies are genuine, a query (not a second transfer) pays it."""
    from chaos_helpers import STATE_TABLES, snapshot
    st, cli, _info = cert
    cid = _creator(harness, cli)
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    log = harness.run / "paygatectl-certmode.log"
    logged = log.stat().st_size if log.exists() else 0
    before = snapshot(harness)
    with faults(harness, **{fault: True}):
        out = _payout(harness, cli, day)
        assert out["pending"] >= 1 and out["paid"] == 0, out
        runs = 2 if fault == "alipay_cert_sn_other" else 1
        if runs == 2:   # the query's reply carries the other SN too
            _payout(harness, cli, day)
        after = snapshot(harness)
        assert {t: after.get(t) for t in STATE_TABLES} == {t: before.get(t) for t in STATE_TABLES}
        row = _row(harness, batch_no)
        assert row["status"] == "PENDING" and row["sent"] == 1 and row["attempts"] == runs, row
        assert row["provider_order_id"] is None and row["paid_at"] is None, row
        assert _transfer(harness, batch_no)[1] == 1   # executed once; the rest were queries
    new = log.read_bytes()[logged:].decode("utf-8", "replace")
    assert batch_no in new and ("alipay_cert_sn" if fault == "alipay_cert_sn_other" else "out_biz_no") in new, new
    out = _payout(harness, cli, day)
    assert out["paid"] >= 1, out
    transfers, calls = _transfer(harness, batch_no)
    assert calls == 1 and len(transfers) == 1, (calls, transfers)
    _ledger_payout(harness, batch_no, cid)
