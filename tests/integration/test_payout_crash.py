"""A creator is never paid twice: `paygatectl payout` killed with SIGKILL at
deterministic points, and two payout runs at once (issue 15, crash test).

Both transfer channels: Alipay (alipay.fund.trans.uni.transfer, certificate
mode) and WeChat Pay v3 merchant transfers. paygatectl runs as a child
process; each payout has its own creator, an order of its product paid
through the session's stack, that creator's entries moved to a day of its
own (2004 for Alipay, 2005 for WeChat, as test_payouts does) and settled.

The points where paygatectl is killed, none of them a race:
  reply held   the sandbox executed the transfer (its per-out_biz_no /
               out_bill_no call count says so) and holds the reply
               (transfer_timeout / wx_transfer_timeout): paygatectl waits for
               it and can do nothing else when SIGKILL arrives;
  before COMMIT the provider answered SUCCESS, paygatectl recorded PAID and
               the ledger move and sent COMMIT, which a TCP proxy in front of
               MariaDB holds (commit_proxy.py): SIGKILL, and the COMMIT never
               reaches the server (the proxy closes both sides), which rolls
               the transaction back;
  after COMMIT the same, but the proxy forwards the COMMIT after the kill:
               the server committed, paygatectl never heard it;
  in the claim the run waits in the claim's UPDATE for a row lock held by a
               pymysql session: nothing sent (the server still runs the
               dead client's UPDATE once the lock is free: a claim, marked
               sent, of a transfer the provider never saw).
After the first two kills the payout is claimed by the dead run: a run at
once leaves it alone (not due while claimed: nothing sent). The claim (2
minutes, PAYOUT_CLAIM_S in src/core/payout.c, no config key) is waited out the way production
waits for it — the last test sleeps until MariaDB's clock passes every
claimed_until of this module, once for all kills — and then `payout` and
`cron` resolve every payout by querying first: PAID, exactly one transfer
at the provider (one money movement; one transfer call, plus the refused
one of a balance too low where the test made one), exactly one ledger move.

Two runs at once: both started while a pymysql session holds the payout's
row lock, so both wait in the claim's UPDATE (seen in the processlist);
the lock is released with the transfer's reply held: one run claims and
sends, the other is skipped; one call, one transfer."""

import datetime
import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import BUILD, pick, unique_user
from test_lifecycle import faults
from test_payouts import _cert_lines, _to_cert_mode

PRICE = 9900
FEE = (PRICE * 60 + 5000) // 10000
SHARE = (PRICE - FEE) * 7000 // 10000
CLAIM_S = 120                 # PAYOUT_CLAIM_S in src/core/payout.c
CHANNELS = ["alipay", "wechat"]
HELD = {"alipay": "transfer_timeout", "wechat": "wx_transfer_timeout"}
PAID_SQL = "UPDATE payouts SET status = 'PAID'"

_DAYS = {"alipay": iter(range(random.randint(0, 150), 366)),
         "wechat": iter(range(random.randint(0, 150), 366))}
# payouts killed with their claim still held: resolved by the last test
CLAIMED = []


def _day(channel):
    year = 2004 if channel == "alipay" else 2005
    return (datetime.date(year, 1, 1) + datetime.timedelta(days=next(_DAYS[channel]))).isoformat()


def _payouts_section(channel):
    return "\n[payouts]\nenabled = true\nchannel = %s\nmin_fen = 100\nstart_date = 2004-01-01\n" % channel


@pytest.fixture(scope="module")
def cfg(harness):
    """{channel: paygatectl config}. Both configs have Alipay in
    certificate mode and WeChat in API v3, so either can settle a payout of
    the other channel (a payout keeps the channel it was created with)."""
    dest = harness.run / "payoutcrash"
    dest.mkdir(exist_ok=True)
    _info, cert_lines = _cert_lines(harness, dest)
    v3 = harness.sandbox_get("/_sandbox/wechat_v3/config").json()
    assert v3["mode"] == "pubkey", v3
    v3_lines = ("api_version = v3\napi_v3_key = %s\nwechatpay_public_key = %s\nwechatpay_public_key_id = %s\n"
                % (v3["api_v3_key"], v3["files"]["wechatpay_public_key"], v3["pubkey_id"]))
    out = {}
    for ch in CHANNELS:
        path = harness.run / ("cli-payoutcrash-%s.ini" % ch)
        harness.write_config(path, harness.cli_base_url, harness.run / "paygatectl-payoutcrash.log",
                             harness.keys["pkcs8"])
        _to_cert_mode(path, cert_lines, payouts=False)
        text = path.read_text().replace("[wechat]\n", "[wechat]\n" + v3_lines, 1) + _payouts_section(ch)
        path.write_text(text)
        harness.ctl("check-config", config=path)
        out[ch] = path
    return out


@pytest.fixture(scope="module")
def st(harness):
    return harness.stack(pick("lighttpd")[0])


def _via_proxy(harness, path, proxy):
    """A copy of config PATH whose database is reached through PROXY."""
    text, n = re.subn(r"(?m)^port = %d$" % harness.db_port, "port = %d" % proxy.port, path.read_text())
    assert n == 1
    out = path.with_name(path.stem + "-proxy.ini")
    out.write_text(text)
    return out


# ------------------------------------------------------------------ helpers

def _creator(harness, cfg, channel):
    cid = "pc" + unique_user("")[-10:].replace("-", "").lower()
    args = ["creator", "add", "--id", cid, "--name", "Crash " + cid]
    if channel == "alipay":
        args += ["--alipay-account", "crash-%s@example.com" % cid, "--real-name", "Li Si"]
    else:
        args += ["--wechat-openid", "o-ok" + cid]
    harness.ctl(*args, config=cfg[channel])
    harness.ctl("product", "add", "--sku", "pc-" + cid, "--title", "Crash course", "--price-fen", str(PRICE),
                "--creator", cid, config=cfg[channel])
    return cid


def _settled(harness, st, cfg, channel):
    """(creator, day, batch_no): one paid order, settled on a day of its own."""
    cid = _creator(harness, cfg, channel)
    c = harness.new_payment(st, product="pc-" + cid, channel="alipay", method="qr")
    r = harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    assert r.status_code == 200, r.text
    harness.wait_order_status(st, c["order_no"], "PAID")
    day = _day(channel)
    harness.query("UPDATE ledger_entries SET available_on = %s WHERE creator_id = %s", day, cid)
    assert harness.ctl_json("settle", "--date", day, config=cfg[channel])["batches"] >= 1
    batch = harness.query("SELECT batch_no, amount_fen FROM settlement_batches WHERE creator_id = %s", cid)
    assert len(batch) == 1 and batch[0]["amount_fen"] == SHARE, batch
    return cid, day, batch[0]["batch_no"]


def _provider(harness, channel, batch_no):
    """(transfers the provider executed for that batch, its transfer calls)."""
    if channel == "alipay":
        t = harness.sandbox_get("/_sandbox/alipay/transfers").json()
        return [x for x in t["transfers"] if x["out_biz_no"] == batch_no], t["calls"].get(batch_no, 0)
    bill_no = batch_no.replace("-", "")
    t = harness.sandbox_get("/_sandbox/wechat_v3/transfers").json()
    return [x for x in t["transfers"] if x["out_bill_no"] == bill_no], t["calls"].get(bill_no, 0)


def _row(harness, batch_no):
    rows = harness.query("SELECT *, claimed_until > UTC_TIMESTAMP() AS claimed FROM payouts WHERE payout_no = %s",
                         batch_no)
    assert len(rows) == 1, rows
    return rows[0]


def _moves(harness, batch_no):
    return harness.query("SELECT account, amount_fen FROM ledger_entries WHERE txn_id = %s ORDER BY account",
                         "payout:" + batch_no)


def _start(harness, cfg_path, *args):
    """`paygatectl --json payout ARGS` as a child process."""
    return subprocess.Popen([str(BUILD / "paygatectl"), "-c", str(cfg_path), "--json", "payout"] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=harness.env)


def _wait(what, cond, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def _kill(p):
    assert p.poll() is None, "paygatectl ended before the kill: %s %s" % p.communicate()
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=10)
    assert p.returncode == -signal.SIGKILL


def _killed_state(harness, channel, batch_no, cid):
    """Right after a kill before PAID committed: one transfer executed, the
    payout PENDING, marked sent, still claimed by the dead run; no ledger
    move. A run at once leaves it alone."""
    transfers, calls = _provider(harness, channel, batch_no)
    assert calls == 1 and len(transfers) == 1 and transfers[0]["fen"] == SHARE, (calls, transfers)
    row = _row(harness, batch_no)
    assert row["status"] == "PENDING" and row["sent"] == 1 and row["claimed"] == 1, row
    assert _moves(harness, batch_no) == []
    return row


def _left_alone(harness, cfg, channel, day, batch_no, cid):
    """A run right after the kill does not touch the claimed payout."""
    before = _killed_state(harness, channel, batch_no, cid)
    harness.ctl_json("payout", "--date", day, config=cfg[channel])
    after = _killed_state(harness, channel, batch_no, cid)   # still one call: nothing sent
    assert after["attempts"] == before["attempts"] and after["claimed_until"] == before["claimed_until"]


def _paid_once(harness, channel, batch_no, cid, want_calls=1):
    transfers, calls = _provider(harness, channel, batch_no)
    assert calls == want_calls and len(transfers) == 1 and transfers[0]["fen"] == SHARE, (calls, transfers)
    if channel == "wechat":
        assert transfers[0]["state"] == "SUCCESS", transfers
    row = _row(harness, batch_no)
    assert row["status"] == "PAID" and row["amount_fen"] == SHARE, row
    want_order = transfers[0]["order_id"] if channel == "alipay" else transfers[0]["transfer_bill_no"]
    assert row["provider_order_id"] == want_order, (row, transfers)
    assert _moves(harness, batch_no) == [{"account": "paidout:creator:" + cid, "amount_fen": -SHARE},
                                         {"account": "settled:creator:" + cid, "amount_fen": SHARE}]
    settled = harness.query("SELECT COALESCE(SUM(amount_fen), 0) AS s FROM ledger_entries WHERE account = %s",
                            "settled:creator:" + cid)[0]["s"]
    assert settled == 0
    events = harness.query("SELECT type FROM webhook_events WHERE type LIKE 'payout.%%' AND payload LIKE %s",
                           "%" + batch_no + "%")
    assert [e["type"] for e in events] == ["payout.paid"], events


# ------------------------------------------------------------------ kills

@pytest.mark.parametrize("channel", CHANNELS)
def test_kill_while_the_provider_holds_the_executed_transfers_reply(harness, st, cfg, channel):
    cid, day, batch_no = _settled(harness, st, cfg, channel)
    with faults(harness, **{HELD[channel]: True}):
        p = _start(harness, cfg[channel], "--date", day)
        _wait("the sandbox to record the transfer", lambda: _provider(harness, channel, batch_no)[1] == 1)
        _kill(p)
    _left_alone(harness, cfg, channel, day, batch_no, cid)
    CLAIMED.append((channel, cid, day, batch_no, 1))


@pytest.mark.parametrize("channel", CHANNELS)
def test_kill_with_the_paid_commit_not_yet_at_the_server(harness, st, cfg, channel):
    from commit_proxy import CommitProxy
    cid, day, batch_no = _settled(harness, st, cfg, channel)
    proxy = CommitProxy(harness.db_port)
    try:
        proxy.hold_commit(PAID_SQL)
        p = _start(harness, _via_proxy(harness, cfg[channel], proxy), "--date", day)
        assert proxy.held.wait(30), "paygatectl never sent the COMMIT of PAID"
        assert _provider(harness, channel, batch_no)[1] == 1
        assert _row(harness, batch_no)["status"] == "PENDING"   # not committed
        _kill(p)
        for c in list(proxy.conns):   # the COMMIT is dropped, never forwarded
            c.close()
    finally:
        proxy.stop()
    # the server saw the connection go and rolled PAID and the ledger move back
    _wait("the rollback", lambda: _moves(harness, batch_no) == [] and
          _row(harness, batch_no)["status"] == "PENDING", timeout=10)
    _left_alone(harness, cfg, channel, day, batch_no, cid)
    CLAIMED.append((channel, cid, day, batch_no, 1))


@pytest.mark.parametrize("channel", CHANNELS)
def test_kill_after_the_paid_commit_reached_the_server(harness, st, cfg, channel):
    """paygatectl dies waiting for the COMMIT's reply; the server committed:
    PAID with its ledger move; nothing is left to do, nothing is sent again."""
    from commit_proxy import CommitProxy
    cid, day, batch_no = _settled(harness, st, cfg, channel)
    proxy = CommitProxy(harness.db_port)
    try:
        proxy.hold_commit(PAID_SQL)
        p = _start(harness, _via_proxy(harness, cfg[channel], proxy), "--date", day)
        assert proxy.held.wait(30), "paygatectl never sent the COMMIT of PAID"
        _kill(p)
        proxy.release()     # the COMMIT goes on to the server after the kill
        _wait("the commit", lambda: _row(harness, batch_no)["status"] == "PAID", timeout=10)
    finally:
        proxy.stop()
    _paid_once(harness, channel, batch_no, cid)
    harness.ctl_json("payout", "--date", day, config=cfg[channel])   # nothing left to do
    _paid_once(harness, channel, batch_no, cid)


# ---------------------------------------------------------- two runs at once

def _waiting_in_claim(harness, n):
    rows = harness.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST"
                         " WHERE INFO LIKE 'UPDATE payouts SET claimed_until%%'")
    return rows[0]["n"] == n


def _unsent(harness, st, cfg, channel):
    """(creator, day, batch_no) of a payout that exists, PENDING and never
    sent: a first run met a merchant balance too low (one refused call)."""
    cid, day, batch_no = _settled(harness, st, cfg, channel)
    ctl_path = "/_sandbox/alipay/transfers" if channel == "alipay" else "/_sandbox/wechat_v3/transfers"
    bal_path = "/_sandbox/alipay/balance" if channel == "alipay" else "/_sandbox/wechat_v3/transfer_balance"
    saved = harness.sandbox_get(ctl_path).json()["balance_fen"]
    harness.sandbox_post(bal_path, {"fen": SHARE - 1})
    try:
        out = harness.ctl_json("payout", "--date", day, config=cfg[channel])
    finally:
        harness.sandbox_post(bal_path, {"fen": saved})
    row = _row(harness, batch_no)
    assert row["status"] == "PENDING" and row["sent"] == 0 and not row["claimed"], (out, row)
    assert _provider(harness, channel, batch_no) == ([], 1)   # refused, nothing moved
    return cid, day, batch_no


@pytest.mark.parametrize("channel", CHANNELS)
def test_kill_while_waiting_for_the_claim_sends_nothing(harness, st, cfg, channel):
    """Killed while its claim's UPDATE waits for a row lock (held here by a
    pymysql session): nothing was sent. MariaDB still runs a statement it
    received from a client that has gone once the lock is free, so the dead
    run may hold the claim (marked sent) — the last test then finds, by
    querying, that the provider has no such transfer and sends it once."""
    cid, day, batch_no = _unsent(harness, st, cfg, channel)
    lock = harness.db()
    lock.autocommit(False)
    try:
        with lock.cursor() as cur:
            cur.execute("SELECT id FROM payouts WHERE payout_no = %s FOR UPDATE", (batch_no,))
        p = _start(harness, cfg[channel], "--date", day)
        _wait("the run to wait in the claim", lambda: _waiting_in_claim(harness, 1))
        _kill(p)
    finally:
        lock.rollback()
        lock.close()
    _wait("the killed run's statement to end", lambda: _waiting_in_claim(harness, 0), timeout=10)
    row = _row(harness, batch_no)
    assert row["status"] == "PENDING", row
    assert _provider(harness, channel, batch_no) == ([], 1)   # still only the refused call
    assert _moves(harness, batch_no) == []
    CLAIMED.append((channel, cid, day, batch_no, 2))


@pytest.mark.parametrize("channel", CHANNELS)
def test_two_runs_at_once_send_one_transfer(harness, st, cfg, channel):
    cid, day, batch_no = _unsent(harness, st, cfg, channel)
    lock = harness.db()
    lock.autocommit(False)
    runs = []
    try:
        with faults(harness, **{HELD[channel]: True}):
            with lock.cursor() as cur:
                cur.execute("SELECT id FROM payouts WHERE payout_no = %s FOR UPDATE", (batch_no,))
            runs = [_start(harness, cfg[channel], "--date", day) for _ in range(2)]
            _wait("both runs to wait in the claim", lambda: _waiting_in_claim(harness, 2))
            lock.rollback()
            _wait("the transfer", lambda: _provider(harness, channel, batch_no)[1] == 2)
            outs = [p.communicate(timeout=60) for p in runs]
    finally:
        for p in runs:
            if p.poll() is None:
                p.kill()
                p.communicate()
        lock.close()
    assert [p.returncode for p in runs] == [0, 0], outs
    docs = sorted((json.loads(o) for o, _e in outs), key=lambda d: d["skipped"])
    # the winner sent it and timed out waiting for the reply; the other left
    # it alone (counts also hold other batches a settle put on this day)
    assert docs[0]["pending"] >= 1 and docs[0]["skipped"] == 0, docs
    assert docs[1]["skipped"] == 1, docs
    row = _row(harness, batch_no)
    assert row["status"] == "PENDING" and row["sent"] == 1 and not row["claimed"], row
    transfers, calls = _provider(harness, channel, batch_no)
    assert calls == 2 and len(transfers) == 1, (calls, transfers)
    out = harness.ctl_json("payout", "--date", day, config=cfg[channel])
    assert out["paid"] == 1, out
    transfers, calls = _provider(harness, channel, batch_no)
    assert calls == 2 and len(transfers) == 1, (calls, transfers)   # queried, not sent again
    row = _row(harness, batch_no)
    assert row["status"] == "PAID" and _moves(harness, batch_no) == [
        {"account": "paidout:creator:" + cid, "amount_fen": -SHARE},
        {"account": "settled:creator:" + cid, "amount_fen": SHARE}], row


# ------------------------------------------------- after the claims expire

def test_after_the_claims_expire_the_killed_payouts_are_queried_and_paid_once(harness, cfg):
    """Every payout a kill left claimed, once MariaDB's clock passed its
    claimed_until (what production waits for too: the next cron pass after
    two minutes): `payout --date` resolves the first of each channel, `cron`
    the rest. Each is PAID after a query, with one transfer and one move."""
    assert len(CLAIMED) == 6, "the kill tests ran first (file order): %r" % CLAIMED
    nos = [c[3] for c in CLAIMED]
    marks = ",".join(["%s"] * len(nos))
    left = harness.query("SELECT GREATEST(0, COALESCE(MAX(TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), claimed_until)),"
                         " 0)) AS s FROM payouts WHERE payout_no IN (" + marks + ")", *nos)[0]["s"]
    assert left <= CLAIM_S, left
    time.sleep(left + 1.5)
    first = {}
    for channel, cid, day, batch_no, calls in CLAIMED:
        if channel in first:
            continue
        first[channel] = batch_no
        out = harness.ctl_json("payout", "--date", day, config=cfg[channel])
        assert out["paid"] >= 1, out
        _paid_once(harness, channel, batch_no, cid, calls)
    for ch in CHANNELS:
        doc = harness.ctl_json("cron", config=cfg[ch])
        assert doc["skipped"] is False, doc
    for channel, cid, _day_, batch_no, calls in CLAIMED:
        _paid_once(harness, channel, batch_no, cid, calls)
