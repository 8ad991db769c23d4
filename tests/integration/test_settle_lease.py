"""Settlement pays exactly what it marks, a creator id of the longest
allowed length has a ledger, and cron's lease (issue 10, items 2-4).

Every interleaving here is driven step by step: a second database session
holds a lock the paygatectl process must wait for, the test waits until the
server shows that process waiting (information_schema.INNODB_TRX), acts,
then releases it; a webhook receiver of the test's own holds cron in a
delivery until the test lets it go. Nothing depends on timing.

The tests use the session's database: settlement runs for dates days ahead
(one per test, so their batches never meet), and the cron lease is left
free at the end of every test."""

import datetime
import json
import subprocess
import threading
import time
import uuid

import pymysql
import pytest
import requests

from conftest import API_KEY, BUILD, unique_user

AUTH = {"Authorization": "Bearer " + API_KEY}
TZ_BEIJING = datetime.timezone(datetime.timedelta(hours=8))


def beijing_day(plus):
    return (datetime.datetime.now(TZ_BEIJING).date() + datetime.timedelta(days=plus)).isoformat()


def wait_for(pred, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out after %s s: %s" % (timeout, what))


def new_creator(h, cid=None, price_fen=1000):
    cid = cid or "cr_" + uuid.uuid4().hex[:10]
    sku = "sku-" + uuid.uuid4().hex[:10]
    h.ctl("creator", "add", "--id", cid, "--name", "Creator " + cid[:8])
    h.ctl("product", "add", "--sku", sku, "--title", "Course of " + cid[:8], "--price-fen",
          str(price_fen), "--creator", cid)
    return cid, sku


def buy(h, st, sku):
    r = h.checkout(st, product=sku, channel="alipay", method="qr", user=unique_user("settle"))
    assert r.status_code == 201, r.text
    c = r.json()
    r = h.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    assert r.status_code == 200, r.text
    h.wait_order_status(st, c["order_no"], "PAID")
    return c


def refund(h, st, order_no, amount_fen):
    r = requests.post("%s/orders/%s/refund" % (st.base_url, order_no),
                      data={"amount_fen": str(amount_fen), "request_id": unique_user("rq")},
                      headers=AUTH, timeout=60)
    assert r.status_code == 201, r.text
    rno = r.json()["refund_no"]
    wait_for(lambda: h.query("SELECT status FROM refunds WHERE refund_no=%s",
                             rno)[0]["status"] == "SUCCEEDED", 30, "refund %s to succeed" % rno)
    return rno


def payable_entries(h, cid):
    """The creator's payable entries from payments and refunds (not the
    settling entries of its batches)."""
    return h.query("SELECT id, amount_fen, settlement_batch_id, txn_id FROM ledger_entries "
                   "WHERE account=%s AND kind <> 'settlement' ORDER BY id", "payable:creator:" + cid)


def assert_every_batch_is_the_sum_of_its_entries(h):
    """For every batch: amount = what its creator's entries in it owe, the
    count is theirs, and its settling txn moves exactly that amount."""
    bad = h.query(
        "SELECT b.id, b.batch_no, b.amount_fen, b.entries, "
        "  COALESCE(-SUM(e.amount_fen), 0) AS owed, COUNT(e.id) AS n "
        "FROM settlement_batches b LEFT JOIN ledger_entries e "
        "  ON e.settlement_batch_id = b.id AND e.kind <> 'settlement' "
        "GROUP BY b.id, b.batch_no, b.amount_fen, b.entries "
        "HAVING owed <> b.amount_fen OR n <> b.entries")
    assert bad == [], bad
    bad = h.query(
        "SELECT b.batch_no, b.amount_fen, SUM(IF(e.account LIKE 'settled:%%', -e.amount_fen, 0)) AS s "
        "FROM settlement_batches b JOIN ledger_entries e ON e.txn_id = CONCAT('settle:', b.batch_no) "
        "GROUP BY b.batch_no, b.amount_fen HAVING s <> b.amount_fen")
    assert bad == [], bad
    # and no entry of another creator's account ever sits in a batch
    bad = h.query("SELECT e.id FROM ledger_entries e JOIN settlement_batches b ON b.id = e.settlement_batch_id "
                  "WHERE e.kind <> 'settlement' AND e.account <> CONCAT('payable:creator:', b.creator_id)")
    assert bad == [], bad


def settle_proc(h, date, config=None):
    return subprocess.Popen([str(BUILD / "paygatectl"), "-c", str(config or h.cli_config), "--json",
                             "settle", "--date", date], env=h.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def as_root(h, sql, *args):
    """information_schema.INNODB_TRX needs the PROCESS privilege, which the
    application account rightly lacks: the private test server's root
    (socket only) observes."""
    conn = pymysql.connect(unix_socket=str(h.db_dir / "mysqld.sock"), user="root", password="",
                           database="paygate", autocommit=True, cursorclass=pymysql.cursors.DictCursor)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


# InnoDB refreshes the INNODB_TRX snapshot only when it was not read for
# 0.1 s (trx0i_s.cc, CACHE_MIN_IDLE_TIME_US): polled faster, it shows the
# same stale snapshot for ever, and a lock wait that began after it is never
# seen. So it is polled more slowly than that.
TRX_POLL_S = 0.25


def waiting_trx(h, like):
    rows = as_root(h, "SELECT trx_id, trx_started, trx_mysql_thread_id, trx_query FROM "
                 "information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE %s",
                 like)
    return rows[0] if len(rows) == 1 else None


# ------------------------------------------------------------ item 2: settle

def test_an_entry_committed_while_settling_is_neither_paid_nor_marked(harness, lighttpd_stack):
    """The settle transaction reads the creator's entries FOR UPDATE, then
    inserts the batch. Session B holds that batch's unique key (an
    uncommitted batch row of the same creator and date), so the settle
    waits on its INSERT, after its read. Meanwhile another payment of the
    creator is paid and a refund of the first succeeds, both committed
    (READ COMMITTED: no gap locks stop them). B rolls back; the settle goes
    on. The batch pays the one entry it read, and exactly that entry is
    marked; the two new ones go to the next batch."""
    h, st = harness, lighttpd_stack
    cid, sku = new_creator(h)
    first = buy(h, st, sku)
    (e1,) = payable_entries(h, cid)
    assert e1["settlement_batch_id"] is None and e1["amount_fen"] == -695   # floor((1000 - 6) * 0.7)
    date = beijing_day(9)
    b = pymysql.connect(host="127.0.0.1", port=h.db_port, user="paygate", password="paygate",
                        database="paygate", autocommit=False)
    proc = None
    try:
        with b.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("INSERT INTO settlement_batches (batch_no, creator_id, settle_date, amount_fen, "
                        "entries) VALUES (%s, %s, %s, 0, 0)", ("HOLD-" + cid, cid, date))
        proc = settle_proc(h, date)
        w = wait_for(lambda: waiting_trx(h, "INSERT INTO settlement_batches%"), 30,
                     "the settle to wait on its batch INSERT", TRX_POLL_S)
        # committed while the settle holds its read: a payment and a refund
        second = buy(h, st, sku)
        refund(h, st, first["order_no"], 500)
        entries = payable_entries(h, cid)
        assert len(entries) == 3 and all(e["settlement_batch_id"] is None for e in entries), entries
        # still the same wait of the same transaction (no lock-wait timeout and retry)
        time.sleep(TRX_POLL_S)
        again = waiting_trx(h, "INSERT INTO settlement_batches%")
        assert again and (again["trx_id"], again["trx_started"]) == (w["trx_id"], w["trx_started"]), (w, again)
        b.rollback()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (out, err)
    finally:
        b.close()
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
    (batch,) = h.query("SELECT id, amount_fen, entries FROM settlement_batches WHERE creator_id=%s", cid)
    assert (batch["amount_fen"], batch["entries"]) == (695, 1), batch
    marked = [e["id"] for e in payable_entries(h, cid) if e["settlement_batch_id"] == batch["id"]]
    assert marked == [e1["id"]], (marked, payable_entries(h, cid))
    assert_every_batch_is_the_sum_of_its_entries(h)
    # the date's batch exists: a second run leaves the new entries alone...
    assert h.ctl_json("settle", "--date", date)["batches"] == 0
    assert [e["settlement_batch_id"] for e in payable_entries(h, cid)][1:] == [None, None]
    # ...and the next date's batch pays them, exactly
    rest = -sum(e["amount_fen"] for e in payable_entries(h, cid)[1:])
    h.ctl_json("settle", "--date", beijing_day(10))
    rows = h.query("SELECT amount_fen, entries FROM settlement_batches WHERE creator_id=%s ORDER BY id", cid)
    assert [(r["amount_fen"], r["entries"]) for r in rows] == [(695, 1), (rest, 2)], rows
    assert all(e["settlement_batch_id"] is not None for e in payable_entries(h, cid))
    assert_every_batch_is_the_sum_of_its_entries(h)
    assert second["order_no"]


def test_batches_equal_their_entries_under_concurrent_payments_refunds_and_settles(harness,
                                                                                      lighttpd_stack):
    """A property over whatever interleaving happens: payments and refunds of
    two creators go on while pairs of settle runs close successive dates;
    afterwards every batch is the sum of its entries and everything each
    creator earned is in a batch, apart from a refund that came after the
    creator's last settled payment (a debt carried to the next batch)."""
    h, st = harness, lighttpd_stack
    creators = [new_creator(h, price_fen=fen) for fen in (1000, 2345)]
    errors = []

    def traffic(sku):
        try:
            for i in range(3):
                c = buy(h, st, sku)
                if i != 1:
                    refund(h, st, c["order_no"], 100 + i)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=traffic, args=(sku,)) for _cid, sku in creators]
    for t in threads:
        t.start()
    day = 30
    while any(t.is_alive() for t in threads) or day < 33:
        date = beijing_day(day)
        procs = [settle_proc(h, date) for _ in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, (out, err)
        day += 1
    for t in threads:
        t.join()
    assert not errors, errors
    h.ctl_json("settle", "--date", beijing_day(day))
    assert_every_batch_is_the_sum_of_its_entries(h)
    for cid, _sku in creators:
        entries = payable_entries(h, cid)
        earned = -sum(e["amount_fen"] for e in entries)
        paid = sum(r["amount_fen"] for r in h.query(
            "SELECT amount_fen FROM settlement_batches WHERE creator_id=%s", cid))
        # A refund posted after the last payment's batch leaves the creator
        # owing it back: the payable is positive, no batch is made (README
        # "Settlement"; test_ledger covers it step by step), and the next
        # earnings net it. So: what was paid is what was earned plus that
        # debt, and the only entries left unsettled are such a debt.
        debt = sum(e["amount_fen"] for e in entries if e["settlement_batch_id"] is None)
        assert debt >= 0, (cid, debt, entries)
        assert paid == earned + debt and earned > 0, (cid, paid, earned, debt)


# -------------------------------------------------- item 3: creator id limit

def test_a_creator_id_of_the_maximum_length_is_paid_and_settled(harness, lighttpd_stack):
    h, st = harness, lighttpd_stack
    cid = ("maxlen_" + uuid.uuid4().hex)[:16].ljust(64, "x")
    assert len(cid) == 64
    # one longer is refused where the creator is made, with the reason
    r = h.ctl("creator", "add", "--id", cid + "y", "--name", "Too long", check=False)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "65 characters" in r.stderr and "at most 64" in r.stderr, r.stderr
    assert h.query("SELECT id FROM creators WHERE id=%s", cid + "y") == []
    cid, sku = new_creator(h, cid)
    c = buy(h, st, sku)   # the notification is recorded: the order is PAID
    pay = h.query("SELECT account, amount_fen FROM ledger_entries WHERE txn_id=%s",
                  "pay:" + c["payment_no"])
    assert {e["account"]: e["amount_fen"] for e in pay}["payable:creator:" + cid] == -695, pay
    assert sum(e["amount_fen"] for e in pay) == 0
    h.ctl_json("settle", "--date", beijing_day(8))
    (b,) = h.query("SELECT batch_no, amount_fen, entries FROM settlement_batches WHERE creator_id=%s", cid)
    assert (b["amount_fen"], b["entries"]) == (695, 1), b
    settle = h.query("SELECT account, amount_fen FROM ledger_entries WHERE txn_id=%s", "settle:" + b["batch_no"])
    assert {e["account"]: e["amount_fen"] for e in settle} == {"payable:creator:" + cid: 695,
                                                               "settled:creator:" + cid: -695}, settle
    assert_every_batch_is_the_sum_of_its_entries(h)


# ------------------------------------------------------------ item 4: lease

def lease(h):
    rows = h.query("SELECT holder, expires_at > UTC_TIMESTAMP(6) AS live FROM cron_leases WHERE name='cron'")
    return rows[0] if rows else None


def set_lease(h, holder, seconds):
    h.query("INSERT INTO cron_leases (name, holder, expires_at) VALUES ('cron', %s, "
            "UTC_TIMESTAMP(6) + INTERVAL %s SECOND) ON DUPLICATE KEY UPDATE holder = VALUES(holder), "
            "expires_at = VALUES(expires_at)", holder, seconds)


def free_lease(h):
    h.query("UPDATE cron_leases SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE name='cron'")


def expiring_order(h, st):
    r = h.checkout(st, product="ebook-sql", channel="alipay", method="qr", user=unique_user("lease"))
    assert r.status_code == 201, r.text
    c = r.json()
    h.query("UPDATE payments SET expires_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE WHERE payment_no=%s",
            c["payment_no"])
    return c


def cron_json(h, config=None, check=True):
    r = h.ctl("--json", "cron", config=config, check=check)
    return r, json.loads(r.stdout)


def test_a_live_lease_of_another_pass_stops_cron_and_an_expired_one_is_taken_over(harness,
                                                                                  lighttpd_stack):
    h, st = harness, lighttpd_stack
    c = expiring_order(h, st)
    try:
        set_lease(h, "otherhost:4242:abcdefgh", 600)
        _r, doc = cron_json(h)
        assert doc["skipped"] is True, doc
        assert h.payment(c["payment_no"])["status"] == "CREATED"   # no duty done
        assert lease(h) == {"holder": "otherhost:4242:abcdefgh", "live": 1}
        # that pass crashed: its lease runs out, the next pass takes it over
        set_lease(h, "otherhost:4242:abcdefgh", -1)
        _r, doc = cron_json(h)
        assert doc["skipped"] is False and doc["lease_lost"] is False and doc["daily_done"] is True, doc
        assert h.payment(c["payment_no"])["status"] == "CLOSED"
        now = lease(h)
        assert now["holder"] != "otherhost:4242:abcdefgh" and now["live"] == 0, now   # given back
    finally:
        free_lease(h)


CLAIM = "UPDATE webhook_events SET next_attempt_at%"


@pytest.fixture
def held_pass(harness, lighttpd_stack):
    """A cron pass holding the lease, waiting in the claim of a paid order's
    due order.paid event, whose row session B has locked (FOR UPDATE).
    Yields the process, B and the waiting transaction; B's commit lets the
    pass go on."""
    h, st = harness, lighttpd_stack
    free_lease(h)
    c = buy(h, st, "ebook-sql")
    h.query("UPDATE webhook_events SET next_attempt_at = UTC_TIMESTAMP() WHERE order_no=%s "
            "AND status='PENDING' AND type='order.paid'", c["order_no"])
    b = pymysql.connect(host="127.0.0.1", port=h.db_port, user="paygate", password="paygate",
                        database="paygate", autocommit=False)
    proc = None
    try:
        with b.cursor() as cur:
            cur.execute("START TRANSACTION")
            n = cur.execute("SELECT id FROM webhook_events WHERE order_no=%s AND type='order.paid' "
                            "AND status='PENDING' FOR UPDATE", (c["order_no"],))
            assert n == 1
        proc = subprocess.Popen([str(BUILD / "paygatectl"), "-c", str(h.cli_config), "--json", "cron"],
                                env=h.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        w = wait_for(lambda: waiting_trx(h, CLAIM), 90, "the cron pass to wait on the claim", TRX_POLL_S)
        yield proc, b, w
    finally:
        b.close()
        if proc and proc.poll() is None:
            proc.communicate(timeout=90)
        free_lease(h)


def test_a_pass_whose_connection_is_killed_keeps_others_out_and_finishes(harness, held_pass):
    """GET_LOCK died with its connection: after the silent reconnect the pass
    went on unlocked and the next pass ran alongside. The lease is a row:
    after the kill and the reconnect it still names the pass, a second pass
    does nothing, and the first renews it and ends."""
    h = harness
    proc, b, w = held_pass
    holder = lease(h)
    assert holder and holder["live"] == 1, holder
    h.query("KILL CONNECTION %s" % int(w["trx_mysql_thread_id"]))
    # the pass reconnected on its own and waits on the claim again
    wait_for(lambda: (waiting_trx(h, CLAIM) or {}).get("trx_mysql_thread_id") not in
             (None, w["trx_mysql_thread_id"]), 60, "the pass to reconnect and wait again", TRX_POLL_S)
    r, doc = cron_json(h)
    assert doc["skipped"] is True, doc
    assert lease(h) == holder
    b.commit()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, (out, err)
    doc = json.loads(out)
    assert doc["skipped"] is False and doc["lease_lost"] is False and doc["daily_done"] is True, doc
    assert doc["webhooks_delivered"] >= 1, doc
    after = lease(h)
    assert after["holder"] == holder["holder"] and after["live"] == 0, after   # given back


def test_a_pass_whose_lease_was_taken_over_stops(harness, held_pass):
    """The pass was held past its lease and another pass took it over. At its
    next renewal the held pass sees that and stops: no daily duties."""
    h = harness
    proc, b, _w = held_pass
    set_lease(h, "otherhost:99:takeover", 600)
    b.commit()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, (out, err)
    doc = json.loads(out)
    assert doc["lease_lost"] is True and doc["daily_done"] is False, doc
    assert "lease was taken over" in err, err
    assert lease(h) == {"holder": "otherhost:99:takeover", "live": 1}   # left to its holder
