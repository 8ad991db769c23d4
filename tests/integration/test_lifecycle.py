"""Order lifecycle through the web stacks, paygatectl, the database and the
sandbox: refunds (partial, full, idempotent, refused, unknown outcome),
WeChat refund notifications, close and expiry, active query, late and double
payments, entitlements, merchant webhooks and cron.

cron and sync act on the whole (shared) database: each test looks only at
its own orders, and forces "old enough" by moving timestamps in the DB."""

import contextlib
import json
import subprocess
import time

import pytest
import requests

from conftest import (API_KEY, BUILD, RUN, TIMEOUT, WX_MCH_ID, unique_user,
                      verify_webhook_signature)

AUTH = {"Authorization": "Bearer " + API_KEY}


@pytest.fixture(autouse=True)
def _callbacks_of_the_cli_arrive(cli_stack):
    """Refunds sent by paygatectl (cron, sync, refund) are notified to the
    CLI config's base_url: that stack must be up."""


# ------------------------------------------------------------------ helpers

def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %s s: %s (last: %r)" % (timeout, what, last))


def new_order(harness, st, channel, product="course-c", user=None):
    """An unpaid order whose trade the sandbox already knows (alipay qr:
    precreate; wechat native: unifiedorder)."""
    method = "qr" if channel == "alipay" else "native"
    r = harness.checkout(st, product=product, channel=channel, method=method,
                         user=user or unique_user("life"))
    assert r.status_code == 201, r.text
    return r.json()


def sandbox_pay(harness, channel, payment_no, path="pay"):
    if channel == "alipay":
        r = harness.sandbox_post("/_sandbox/%s" % path, {"out_trade_no": payment_no,
                                                         "channel": "alipay"}
                                 if path == "pay_closed" else {"out_trade_no": payment_no})
    else:
        r = harness.sandbox_post("/_sandbox/wechat/%s" % path, {"out_trade_no": payment_no})
    assert r.status_code == 200, r.text
    return r.json()


def paid_order(harness, st, channel, product="course-c", user=None):
    c = new_order(harness, st, channel, product, user)
    sandbox_pay(harness, channel, c["payment_no"])
    harness.wait_order_status(st, c["order_no"], "PAID")
    return c


def scan(harness, payment_no):
    """The phone scanned an Alipay precreate code: only then does Alipay
    know the trade (query and close answer ACQ.TRADE_NOT_EXIST before)."""
    r = harness.sandbox_post("/_sandbox/alipay/scan", {"out_trade_no": payment_no})
    assert r.status_code == 200, r.text
    return r.json()


def close_api(st, order_no):
    return requests.post("%s/orders/%s/close" % (st.base_url, order_no), headers=AUTH,
                         timeout=TIMEOUT)


def refund_api(st, order_no, **fields):
    return requests.post("%s/orders/%s/refund" % (st.base_url, order_no), data=fields,
                         headers=AUTH, timeout=60)


def refund_row(harness, refund_no):
    rows = harness.query("SELECT * FROM refunds WHERE refund_no=%s", refund_no)
    return rows[0] if rows else None


def wait_refund(harness, refund_no, status="SUCCEEDED", timeout=20):
    return wait_for(lambda: (refund_row(harness, refund_no) or {}).get("status") == status
                    and refund_row(harness, refund_no), timeout,
                    "refund %s to become %s" % (refund_no, status))


def provider_refunds(harness, channel, payment_no):
    """The sandbox's refunds of a trade: [(refund number, fen)]."""
    if channel == "alipay":
        t = harness.sandbox_trade(payment_no)
        return [(r["out_request_no"], int(round(float(r["refund_amount"]) * 100)))
                for r in t["refunds"]]
    t = harness.wx_trade(payment_no)
    return [(r["out_refund_no"], int(r["refund_fee"])) for r in t["refunds"]]


def entitlements(st, user):
    r = requests.get(st.base_url + "/entitlements", params={"user": user}, headers=AUTH,
                     timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == user
    return body["entitlements"]


def set_faults(harness, **faults):
    r = harness.sandbox_post("/_sandbox/faults", faults)
    assert r.status_code == 200, r.text
    return r.json()


@contextlib.contextmanager
def faults(harness, **on):
    set_faults(harness, **on)
    try:
        yield
    finally:
        set_faults(harness, **{k: (False if isinstance(v, bool) else 0) for k, v in on.items()})


def cron(harness, config=None):
    return harness.ctl("cron", config=config)


def make_due(harness, order_no):
    """Webhook events of ORDER_NO due now."""
    harness.query("UPDATE webhook_events SET next_attempt_at = UTC_TIMESTAMP() "
                  "WHERE order_no=%s AND status='PENDING'", order_no)


def events_in_db(harness, order_no, type_=None):
    if type_:
        return harness.query("SELECT * FROM webhook_events WHERE order_no=%s AND type=%s ORDER BY id",
                             order_no, type_)
    return harness.query("SELECT * FROM webhook_events WHERE order_no=%s ORDER BY id", order_no)


def cli_refund(harness, order_no, amount_fen, config=None):
    """`paygatectl --json refund ORDER_NO --amount-fen N` -> (exit code, JSON
    reply or None). This build skips the first word after `refund` when
    parsing options (test_cli_refund_options_after_the_order_no), so on a
    usage error the order number is given twice."""
    r = harness.ctl("--json", "refund", order_no, "--amount-fen", str(amount_fen), config=config,
                    check=False)
    if r.returncode == 2:
        r = harness.ctl("--json", "refund", order_no, order_no, "--amount-fen", str(amount_fen),
                        config=config, check=False)
    out = r.stdout.strip()
    return r.returncode, (json.loads(out) if out.startswith("{") else None), r


def order_show(harness, order_no):
    return harness.ctl_json("order", "show", order_no)


CHANNELS = ["alipay", "wechat"]


# ------------------------------------------------------------------ refunds

@pytest.mark.parametrize("channel", CHANNELS)
def test_partial_then_full_refund_exact_amounts_and_states(harness, stack_pair, channel):
    st = stack_pair
    user = unique_user("refund")
    c = paid_order(harness, st, channel, user=user)
    assert [e["product"] for e in entitlements(st, user)] == ["course-c"]

    r = refund_api(st, c["order_no"], amount_fen="3000", reason="partial", request_id=unique_user("rq"))
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["amount_fen"] == 3000 and first["status"] in ("PENDING", "SUCCEEDED")
    if channel == "alipay":
        assert first["status"] == "SUCCEEDED"   # Alipay refunds synchronously
    wait_refund(harness, first["refund_no"])
    o = harness.order_status(st, c["order_no"])
    assert o["status"] == "PARTIALLY_REFUNDED" and o["refunded_fen"] == 3000, o
    assert [e["product"] for e in entitlements(st, user)] == ["course-c"]   # still readable

    r = refund_api(st, c["order_no"])   # all that is left
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["amount_fen"] == 6900
    wait_refund(harness, second["refund_no"])
    o = harness.order_status(st, c["order_no"])
    assert o["status"] == "REFUNDED" and o["refunded_fen"] == 9900, o
    assert o["amount_fen"] == 9900
    row = harness.order(c["order_no"])
    assert row["status"] == "REFUNDED" and row["refunded_fen"] == 9900

    rows = harness.query("SELECT refund_no, amount_fen, status, kind, provider_refund_no FROM refunds "
                         "WHERE order_id=%s ORDER BY id", row["id"])
    assert [(x["refund_no"], x["amount_fen"], x["status"], x["kind"]) for x in rows] == [
        (first["refund_no"], 3000, "SUCCEEDED", "merchant"),
        (second["refund_no"], 6900, "SUCCEEDED", "merchant")], rows
    if channel == "wechat":
        assert all(x["provider_refund_no"] and x["provider_refund_no"].startswith("5030") for x in rows)
    assert sorted(provider_refunds(harness, channel, c["payment_no"])) == sorted(
        [(first["refund_no"], 3000), (second["refund_no"], 6900)])
    if channel == "alipay":
        assert harness.sandbox_trade(c["payment_no"])["status"] == "TRADE_CLOSED"
        # Alipay's refund notifications (same notify URL, refund fields) are
        # acknowledged and change nothing more: recorded exactly once
        def refund_notes():
            notes = [n for n in harness.sandbox_trade(c["payment_no"])["notifications"]
                     if n["kind"] == "refund"]
            return len(notes) == 2 and all(n["acked"] for n in notes) and notes
        notes = wait_for(refund_notes, 15, "both Alipay refund notifications to be acknowledged")
        assert sorted(n["out_biz_no"] for n in notes) == sorted([first["refund_no"], second["refund_no"]])
        assert harness.order(c["order_no"])["refunded_fen"] == 9900

    # a full refund revokes the entitlement; nothing is left to refund
    assert entitlements(st, user) == []
    ent = harness.query("SELECT status, revoked_at FROM entitlements WHERE order_id=%s", row["id"])
    assert ent[0]["status"] == "REVOKED" and ent[0]["revoked_at"] is not None
    r = refund_api(st, c["order_no"], amount_fen="1")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] in ("order_not_refundable", "refund_exceeds_paid")
    assert len(events_in_db(harness, c["order_no"], "order.refunded")) == 2

    shown = order_show(harness, c["order_no"])
    assert shown["status"] == "REFUNDED" and shown["refunded_fen"] == 9900
    assert sorted(x["refund_no"] for x in shown["refunds"]) == sorted(
        [first["refund_no"], second["refund_no"]])


def test_refund_idempotency_and_over_refund(harness, stack_lp):
    st = stack_lp
    c = paid_order(harness, st, "alipay", product="ebook-sql")   # 1990
    rid = unique_user("rid")
    r1 = refund_api(st, c["order_no"], amount_fen="990", request_id=rid)
    assert r1.status_code == 201, r1.text
    r2 = refund_api(st, c["order_no"], amount_fen="990", request_id=rid)
    assert r2.status_code == 200, r2.text
    assert r2.json()["refund_no"] == r1.json()["refund_no"]
    assert r2.json()["amount_fen"] == 990 and r2.json()["status"] == "SUCCEEDED"
    r3 = refund_api(st, c["order_no"], amount_fen="500", request_id=rid)
    assert r3.status_code == 409 and r3.json()["error"]["code"] == "idempotency_conflict", r3.text
    r4 = refund_api(st, c["order_no"], amount_fen="1001")
    assert r4.status_code == 409 and r4.json()["error"]["code"] == "refund_exceeds_paid", r4.text
    assert len(harness.query("SELECT id FROM refunds WHERE order_id=%s",
                             harness.order(c["order_no"])["id"])) == 1
    assert harness.order_status(st, c["order_no"])["refunded_fen"] == 990
    assert provider_refunds(harness, "alipay", c["payment_no"]) == [(r1.json()["refund_no"], 990)]

    # an unpaid order cannot be refunded; a bad amount is a 400; no key, 401
    u = new_order(harness, st, "alipay")
    r = refund_api(st, u["order_no"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_not_refundable", r.text
    for bad in ("0", "-5", "1.5", "abc"):
        r = refund_api(st, c["order_no"], amount_fen=bad)
        assert r.status_code == 400, (bad, r.text)
    r = requests.post("%s/orders/%s/refund" % (st.base_url, c["order_no"]), timeout=TIMEOUT)
    assert r.status_code == 401
    r = refund_api(st, "NOSUCHORDER000000000000")
    assert r.status_code == 404


def test_concurrent_refunds_never_exceed_what_was_paid(harness, lighttpd_stack):
    import threading
    st = lighttpd_stack
    c = paid_order(harness, st, "alipay", product="ebook-sql")   # 1990
    results = []
    barrier = threading.Barrier(6)

    def go():
        barrier.wait()
        r = refund_api(st, c["order_no"], amount_fen="700")
        results.append((r.status_code, r.json()))

    ts = [threading.Thread(target=go) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    ok = [b for s, b in results if s == 201]
    assert len(ok) == 2, results   # 2 x 700 <= 1990 < 3 x 700
    assert all(s == 409 for s, _b in results if s != 201), results
    assert harness.order(c["order_no"])["refunded_fen"] == 1400
    assert sum(f for _n, f in provider_refunds(harness, "alipay", c["payment_no"])) == 1400


def make_foreign_client_cert(harness, cn):
    """A client certificate from the sandbox's own CA, but for another
    merchant (CN): the TLS handshake succeeds and the sandbox refuses."""
    d = RUN / ("foreign-cert-%s" % cn)
    d.mkdir(exist_ok=True)
    key, csr, cert = d / "key.pem", d / "req.csr", d / "cert.pem"
    ext = d / "ext.cnf"
    ext.write_text("extendedKeyUsage = clientAuth\n")
    run = lambda *a: subprocess.run(a, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
        "-subj", "/CN=%s" % cn, "-out", str(csr))
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(harness.sandbox_dir / "ca.pem"),
        "-CAkey", str(harness.sandbox_dir / "ca.key"), "-CAcreateserial", "-days", "2",
        "-extfile", str(ext), "-out", str(cert))
    return cert, key


def test_wechat_refund_needs_the_client_certificate(harness, stack_pair):
    st = stack_pair
    c = paid_order(harness, st, "wechat")
    order_id = harness.order(c["order_no"])["id"]

    # 1. no client certificate configured: nothing reaches the provider
    nocert = harness.cli_variant("nocert", client_cert="", client_key="")
    harness.ctl("check-config", config=nocert)
    _rc, out, _r = cli_refund(harness, c["order_no"], 100, config=nocert)
    (row,) = harness.query("SELECT * FROM refunds WHERE order_id=%s", order_id)
    assert row["status"] in ("PENDING", "FAILED"), row
    assert row["status"] != "SUCCEEDED"
    if out:
        assert out["status"] == row["status"]
    assert harness.sandbox_get("/_sandbox/wechat/refunds/" + row["refund_no"]).status_code == 404
    assert provider_refunds(harness, "wechat", c["payment_no"]) == []
    assert harness.order(c["order_no"])["refunded_fen"] == 0
    # the operator must learn why: FAILED with the reason, or at least a log
    # line naming the missing certificate (checked at the end)
    log = (RUN / "paygatectl-nocert.log").read_text(errors="replace")
    problems = []
    if row["status"] == "PENDING" and "certificate" not in log:
        problems.append("a refund without the client certificate stays PENDING (retried by every "
                        "cron pass) and the log does not say why: %s" % log.strip().splitlines()[-1])

    # 2. a certificate of the CA but for another merchant: the sandbox refuses
    cert, key = make_foreign_client_cert(harness, "1900000999")
    assert "1900000999" != WX_MCH_ID
    foreign = harness.cli_variant("foreign", client_cert=cert, client_key=key)
    rc, refused, r = cli_refund(harness, c["order_no"], 200, config=foreign)
    assert rc == 1 and refused, (r.stdout, r.stderr)
    assert refused["status"] == "FAILED" and refused["amount_fen"] == 200
    assert refund_row(harness, refused["refund_no"])["failure"]
    assert harness.sandbox_get("/_sandbox/wechat/refunds/" + refused["refund_no"]).status_code == 404

    # 3. with the certificate: accepted (the pending one is sent by sync, a
    # new one by the API); a FAILED refund reserved nothing
    if row["status"] == "PENDING":
        harness.query("UPDATE refunds SET last_attempt_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE "
                      "WHERE id=%s", row["id"])
        harness.ctl("sync")
        wait_refund(harness, row["refund_no"])
        pending_fen = 100
    else:
        pending_fen = 0
    r = refund_api(st, c["order_no"])
    assert r.status_code == 201, r.text
    assert r.json()["amount_fen"] == 9900 - pending_fen
    wait_refund(harness, r.json()["refund_no"])
    assert harness.order_status(st, c["order_no"])["status"] == "REFUNDED"
    assert sum(f for _n, f in provider_refunds(harness, "wechat", c["payment_no"])) == 9900
    assert not problems, problems


def test_wechat_refund_notification_decrypted_and_applied_once(harness, stack_pair):
    st = stack_pair
    c = paid_order(harness, st, "wechat", product="ebook-sql")
    with faults(harness, drop_notify=True):
        r = refund_api(st, c["order_no"], amount_fen="990")
        assert r.status_code == 201, r.text
        ref = r.json()
        assert ref["status"] == "PENDING"
        wait_for(lambda: harness.sandbox_get("/_sandbox/wechat/refunds/" + ref["refund_no"])
                 .json()["refund_status"] == "SUCCESS", 10, "the sandbox to finish the refund")
        assert refund_row(harness, ref["refund_no"])["status"] == "PENDING"

        # forged (another key) and tampered (refund_fee) copies change nothing
        bad = harness.sandbox_post("/_sandbox/wechat/refund_notify",
                                   {"out_refund_no": ref["refund_no"],
                                    "api_key": "AnotherKeyAnotherKeyAnotherKey12"}).json()
        assert not bad["acked"], bad
        tampered = harness.sandbox_post("/_sandbox/wechat/refund_notify",
                                        {"out_refund_no": ref["refund_no"],
                                         "overrides": {"refund_fee": "991",
                                                       "settlement_refund_fee": "991"}}).json()
        assert not tampered["acked"], tampered
        assert refund_row(harness, ref["refund_no"])["status"] == "PENDING"
        assert harness.order(c["order_no"])["refunded_fen"] == 0

        sent = []
        for _ in range(2):
            n = harness.sandbox_post("/_sandbox/wechat/refund_notify",
                                     {"out_refund_no": ref["refund_no"]}).json()
            assert n["acked"], n
            assert "<req_info>" in n["xml"] and ref["refund_no"] not in n["xml"]   # encrypted
            sent.append(n)
    row = refund_row(harness, ref["refund_no"])
    assert row["status"] == "SUCCEEDED"
    assert row["provider_refund_no"] == harness.sandbox_get(
        "/_sandbox/wechat/refunds/" + ref["refund_no"]).json()["refund_id"]
    o = harness.order(c["order_no"])
    assert o["refunded_fen"] == 990 and o["status"] == "PARTIALLY_REFUNDED"
    rows = harness.query("SELECT outcome FROM notifications WHERE channel='wechat' AND kind='refund' "
                         "AND payment_no=%s ORDER BY id", c["payment_no"])
    outcomes = [x["outcome"] for x in rows]
    assert outcomes.count("accepted") == 1, outcomes
    assert outcomes.count("duplicate") >= 1, outcomes
    assert len(events_in_db(harness, c["order_no"], "order.refunded")) == 1


# ------------------------------------------------------- close and expiry

@pytest.mark.parametrize("channel", CHANNELS)
def test_expiry_closes_at_the_provider_then_here(harness, lighttpd_stack, channel):
    st = lighttpd_stack
    c = new_order(harness, st, channel, product="ebook-sql")
    if channel == "alipay":
        scan(harness, c["payment_no"])
    harness.age_payment(c["payment_no"], 300, channel)   # WeChat: no close before 5 min
    harness.query("UPDATE payments SET expires_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE "
                  "WHERE payment_no=%s", c["payment_no"])
    out = cron(harness).stdout
    assert "expiry" in out, out
    if channel == "alipay":
        assert harness.sandbox_trade(c["payment_no"])["status"] == "TRADE_CLOSED"
    else:
        t = harness.wx_trade(c["payment_no"])
        assert t["trade_state"] == "CLOSED" and t["time_close"], t
    assert harness.payment(c["payment_no"])["status"] == "CLOSED"
    o = harness.order(c["order_no"])
    assert o["status"] == "CLOSED" and o["closed_at"] is not None
    assert harness.order_status(st, c["order_no"])["status"] == "CLOSED"
    (ev,) = events_in_db(harness, c["order_no"], "order.closed")
    assert ev["status"] == "DELIVERED", ev
    got = harness.webhooks.events(c["order_no"], "order.closed", only_ok=True)
    assert len(got) == 1
    verify_webhook_signature(got[0]["headers"]["Paygate-Signature"], got[0]["body"])
    assert got[0]["event"]["data"]["status"] == "CLOSED"
    # a second pass finds nothing more to do for it
    cron(harness)
    assert len(harness.webhooks.events(c["order_no"], "order.closed")) == 1


def test_close_api_closes_at_the_provider(harness, stack_lp):
    st = stack_lp
    c = new_order(harness, st, "wechat")
    harness.age_payment(c["payment_no"], 300, "wechat")   # WeChat: no close before 5 min
    r = requests.post("%s/orders/%s/close" % (st.base_url, c["order_no"]), headers=AUTH,
                      timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CLOSED"
    assert harness.wx_trade(c["payment_no"])["trade_state"] == "CLOSED"
    paid = paid_order(harness, st, "alipay", product="ebook-sql")
    r = requests.post("%s/orders/%s/close" % (st.base_url, paid["order_no"]), headers=AUTH,
                      timeout=TIMEOUT)
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_not_open", r.text


# ------------------- orders whose payment the provider closed (issue 10, item 6)

def closed_events(harness, order_no):
    return events_in_db(harness, order_no, "order.closed")


def test_trade_closed_notification_closes_the_order(harness, stack_lp):
    """Alipay notifies TRADE_CLOSED (its own time_expire): the payment and,
    with no open payment left, the order are CLOSED, order.closed queued once."""
    c = new_order(harness, stack_lp, "alipay")
    form = harness.notification(c["payment_no"], c["amount_fen"], trade_status="TRADE_CLOSED")
    for _ in range(2):   # the duplicate changes nothing more
        r = harness.notify(stack_lp, form)
        assert r.content == b"success", r.text
    assert harness.payment(c["payment_no"])["status"] == "CLOSED"
    o = harness.order(c["order_no"])
    assert o["status"] == "CLOSED" and o["closed_at"] is not None, o
    assert len(closed_events(harness, c["order_no"])) == 1


def test_trade_closed_of_one_payment_leaves_the_order_open_while_another_is(harness, stack_lp):
    c = new_order(harness, stack_lp, "alipay")
    r = harness.checkout(stack_lp, product="course-c", channel="wechat", method="native",
                         user=harness.order(c["order_no"])["user_ref"], order_no=c["order_no"])
    assert r.status_code == 201, r.text
    form = harness.notification(c["payment_no"], c["amount_fen"], trade_status="TRADE_CLOSED")
    assert harness.notify(stack_lp, form).content == b"success"
    assert harness.payment(c["payment_no"])["status"] == "CLOSED"
    assert harness.order(c["order_no"])["status"] == "CREATED"
    assert closed_events(harness, c["order_no"]) == []


def test_sync_seeing_trade_closed_closes_the_order(harness, lighttpd_stack):
    """Alipay closed the trade at its time_expire and notified nobody (page
    pay, precreate): sync's query says TRADE_CLOSED; the order is closed."""
    c = new_order(harness, lighttpd_stack, "alipay")
    scan(harness, c["payment_no"])
    harness.age_payment(c["payment_no"], 960, "alipay")   # past its time_expire at Alipay
    assert harness.sandbox_trade(c["payment_no"])["status"] == "TRADE_CLOSED"
    harness.ctl("sync")
    assert harness.payment(c["payment_no"])["status"] == "CLOSED"
    assert harness.order(c["order_no"])["status"] == "CLOSED"
    assert len(closed_events(harness, c["order_no"])) == 1


def test_expiry_of_a_trade_alipay_closed_itself_closes_the_order(harness, lighttpd_stack):
    """alipay.trade.close on a closed trade answers ACQ.TRADE_STATUS_ERROR:
    that is not "paid meanwhile" -- the query says TRADE_CLOSED."""
    c = new_order(harness, lighttpd_stack, "alipay")
    scan(harness, c["payment_no"])
    harness.age_payment(c["payment_no"], 960, "alipay", expires=True)
    out = cron(harness).stdout
    assert harness.payment(c["payment_no"])["status"] == "CLOSED", out
    assert harness.order(c["order_no"])["status"] == "CLOSED", out
    assert len(closed_events(harness, c["order_no"])) == 1
    assert harness.query("SELECT id FROM webhook_events WHERE order_no=%s AND type='order.paid'",
                         c["order_no"]) == []


def test_close_api_on_a_trade_alipay_closed_is_not_paid_meanwhile(harness, stack_lp):
    c = new_order(harness, stack_lp, "alipay")
    scan(harness, c["payment_no"])
    harness.age_payment(c["payment_no"], 960, "alipay")
    r = close_api(stack_lp, c["order_no"])
    assert r.status_code == 200 and r.json()["status"] == "CLOSED", r.text
    assert harness.payment(c["payment_no"])["status"] == "CLOSED"
    assert len(closed_events(harness, c["order_no"])) == 1


def test_close_api_on_a_never_scanned_qr_code(harness, stack_lp):
    """Alipay does not know a precreate trade nobody scanned (close answers
    ACQ.TRADE_NOT_EXIST): there is nothing to close there, the order closes."""
    c = new_order(harness, stack_lp, "alipay")
    assert harness.sandbox_trade(c["payment_no"])["scanned"] is False
    r = close_api(stack_lp, c["order_no"])
    assert r.status_code == 200 and r.json()["status"] == "CLOSED", r.text


def test_close_api_says_paid_only_when_the_query_says_paid(harness, stack_lp):
    c = new_order(harness, stack_lp, "alipay")
    with faults(harness, no_notify=True):
        sandbox_pay(harness, "alipay", c["payment_no"])
    r = close_api(stack_lp, c["order_no"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_not_open", r.text
    assert harness.payment(c["payment_no"])["status"] == "PAID"
    assert harness.order(c["order_no"])["status"] == "PAID"


def test_cron_closes_orders_left_open_with_every_payment_closed(harness, lighttpd_stack):
    """Orders a provider's close left CREATED before this fix are found."""
    c = new_order(harness, lighttpd_stack, "alipay")
    harness.query("UPDATE payments SET status='CLOSED', closed_at=UTC_TIMESTAMP() WHERE payment_no=%s",
                  c["payment_no"])
    cron(harness)
    assert harness.order(c["order_no"])["status"] == "CLOSED"
    assert len(closed_events(harness, c["order_no"])) == 1
    cron(harness)
    assert len(closed_events(harness, c["order_no"])) == 1


# ------------------------------ WeChat: no close within 5 minutes (item 14)

def test_close_api_waits_for_a_wechat_payment_to_be_5_minutes_old(harness, stack_lp):
    c = new_order(harness, stack_lp, "wechat")
    r = close_api(stack_lp, c["order_no"])
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "too_early_to_close", r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 300, r.headers
    assert harness.payment(c["payment_no"])["status"] == "CREATED"
    t = harness.wx_trade(c["payment_no"])
    assert t["trade_state"] == "NOTPAY" and t["closeorder_calls"] == [], t   # never asked
    harness.age_payment(c["payment_no"], 240, "wechat")
    r = close_api(stack_lp, c["order_no"])
    assert r.status_code == 409 and 1 <= int(r.headers["Retry-After"]) <= 60, r.headers
    harness.age_payment(c["payment_no"], 60, "wechat")
    r = close_api(stack_lp, c["order_no"])
    assert r.status_code == 200 and r.json()["status"] == "CLOSED", r.text
    assert harness.wx_trade(c["payment_no"])["trade_state"] == "CLOSED"


def test_expiry_skips_a_wechat_payment_younger_than_5_minutes(harness, lighttpd_stack):
    c = new_order(harness, lighttpd_stack, "wechat")
    harness.query("UPDATE payments SET expires_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE "
                  "WHERE payment_no=%s", c["payment_no"])
    cron(harness)
    assert harness.payment(c["payment_no"])["status"] == "CREATED"
    t = harness.wx_trade(c["payment_no"])
    assert t["trade_state"] == "NOTPAY" and t["closeorder_calls"] == [], t   # not even asked
    harness.age_payment(c["payment_no"], 300, "wechat")
    cron(harness)
    t = harness.wx_trade(c["payment_no"])
    assert t["trade_state"] == "CLOSED" and t["closeorder_calls"] == ["SUCCESS"], t
    assert harness.payment(c["payment_no"])["status"] == "CLOSED"
    assert harness.order(c["order_no"])["status"] == "CLOSED"


# --------------------------------- codes expire before orders (item 15)

def test_repeated_request_after_the_mweb_url_expired_gets_a_fresh_payment(harness, stack_lp):
    st = stack_lp
    user, rid = unique_user("mweb"), unique_user("rid")
    first = harness.checkout(st, product="course-c", channel="wechat", method="mweb", user=user,
                             request_id=rid)
    assert first.status_code == 201, first.text
    first = first.json()
    again = harness.checkout(st, product="course-c", channel="wechat", method="mweb", user=user,
                             request_id=rid)
    assert again.status_code == 200 and again.json()["mweb_url"] == first["mweb_url"], again.text
    harness.age_payment(first["payment_no"], 301, "wechat")   # the mweb_url lives 5 minutes
    assert requests.get(first["mweb_url"], timeout=TIMEOUT).status_code == 400
    fresh = harness.checkout(st, product="course-c", channel="wechat", method="mweb", user=user,
                             request_id=rid)
    assert fresh.status_code == 200, fresh.text
    fresh = fresh.json()
    assert fresh["order_no"] == first["order_no"] and fresh["status"] == "CREATED"
    assert fresh["payment_no"] != first["payment_no"] and fresh["mweb_url"] != first["mweb_url"]
    assert requests.get(fresh["mweb_url"], timeout=TIMEOUT).status_code == 200
    old = harness.query("SELECT expires_at <= UTC_TIMESTAMP() AS due FROM payments WHERE payment_no=%s",
                        first["payment_no"])[0]
    assert old["due"] == 1   # cron closes it at WeChat (5 minutes old: allowed) after
    harness.query("UPDATE payments SET expires_at = expires_at - INTERVAL 2 MINUTE "   # its grace
                  "WHERE payment_no=%s", first["payment_no"])
    cron(harness)
    assert harness.wx_trade(first["payment_no"])["trade_state"] == "CLOSED"
    assert harness.payment(first["payment_no"])["status"] == "CLOSED"
    assert harness.order(first["order_no"])["status"] == "CREATED"   # the fresh payment is open
    assert closed_events(harness, first["order_no"]) == []
    # and the fresh one is served again while it is fresh
    same = harness.checkout(st, product="course-c", channel="wechat", method="mweb", user=user,
                            request_id=rid).json()
    assert same["payment_no"] == fresh["payment_no"]


@pytest.fixture(scope="module")
def long_ttl_stack(harness):
    st = harness.new_stack("lighttpd", name="lighttpd-ttl15d", order_ttl=15 * 86400)
    st.start()
    yield st
    st.stop()


@pytest.mark.parametrize("channel,method", [("alipay", "qr"), ("wechat", "native"),
                                            ("wechat", "mweb"), ("alipay", "page")])
def test_a_payment_lives_no_longer_than_its_code(harness, long_ttl_stack, channel, method):
    """order_ttl = 15 days: a QR code / prepay_id lives 2 hours, so does the
    payment (time_expire at the provider, expires_at here); a page URL keeps
    the order's ttl."""
    r = harness.checkout(long_ttl_stack, product="course-c", channel=channel, method=method)
    assert r.status_code == 201, r.text
    row = harness.query("SELECT TIMESTAMPDIFF(SECOND, created_at, expires_at) AS life FROM payments "
                        "WHERE payment_no=%s", r.json()["payment_no"])[0]
    want = 15 * 86400 if method == "page" else 7200
    assert want - 5 <= row["life"] <= want + 5, row


# ------------------------------------------------------------ active query

@pytest.mark.parametrize("channel", CHANNELS)
def test_lost_notification_recovered_by_sync(harness, lighttpd_stack, channel):
    st = lighttpd_stack
    c = new_order(harness, st, channel)
    with faults(harness, no_notify=True):
        sandbox_pay(harness, channel, c["payment_no"])
    assert harness.payment(c["payment_no"])["status"] == "CREATED"
    # younger than 60 s: sync leaves it alone
    harness.ctl("sync")
    assert harness.payment(c["payment_no"])["status"] == "CREATED"
    harness.query("UPDATE payments SET created_at = created_at - INTERVAL 2 MINUTE "
                  "WHERE payment_no=%s", c["payment_no"])
    out = harness.ctl("sync").stdout
    assert "found paid" in out, out
    pay = harness.payment(c["payment_no"])
    assert pay["status"] == "PAID", pay
    if channel == "wechat":
        assert pay["provider_trade_no"] == harness.wx_trade(c["payment_no"])["transaction_id"]
    else:
        assert pay["provider_trade_no"] == harness.sandbox_trade(c["payment_no"])["trade_no"]
    assert harness.order(c["order_no"])["status"] == "PAID"
    rows = harness.query("SELECT outcome, kind FROM notifications WHERE payment_no=%s", c["payment_no"])
    assert [r["outcome"] for r in rows] == ["accepted"], rows
    assert len(events_in_db(harness, c["order_no"], "order.paid")) == 1
    # asking again changes nothing
    harness.query("UPDATE payments SET last_query_at = NULL WHERE payment_no=%s", c["payment_no"])
    harness.ctl("sync")
    assert len(events_in_db(harness, c["order_no"], "order.paid")) == 1


@pytest.mark.parametrize("channel", CHANNELS)
def test_lost_notification_recovered_by_order_polling(harness, stack_pair, channel):
    st = stack_pair
    c = new_order(harness, st, channel, product="ebook-sql")
    with faults(harness, no_notify=True):
        sandbox_pay(harness, channel, c["payment_no"])
    assert harness.order_status(st, c["order_no"])["status"] == "CREATED"   # < 30 s: not asked
    assert harness.payment(c["payment_no"])["last_query_at"] is None
    harness.query("UPDATE payments SET created_at = created_at - INTERVAL 40 SECOND "
                  "WHERE payment_no=%s", c["payment_no"])
    o = harness.order_status(st, c["order_no"])
    assert o["status"] == "PAID", o
    assert harness.payment(c["payment_no"])["query_count"] == 1


# ------------------------------------------------- late and double payments

@pytest.mark.parametrize("channel", CHANNELS)
def test_late_payment_is_refunded_automatically(harness, stack_lp, channel):
    st = stack_lp
    c = new_order(harness, st, channel)
    harness.age_payment(c["payment_no"], 300, channel)   # WeChat: no close before 5 min
    r = requests.post("%s/orders/%s/close" % (st.base_url, c["order_no"]), headers=AUTH,
                      timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["status"] == "CLOSED", r.text
    trade = sandbox_pay(harness, channel, c["payment_no"], path="pay_closed")
    assert trade["channel"] == channel
    pay = wait_for(lambda: (harness.payment(c["payment_no"])["status"] == "PAID")
                   and harness.payment(c["payment_no"]), 10, "the late payment to be recorded")
    assert pay["anomaly"] == "late_payment"
    o = harness.order(c["order_no"])
    assert o["status"] == "CLOSED" and o["refunded_fen"] == 0
    (ref,) = harness.query("SELECT * FROM refunds WHERE payment_id=%s", pay["id"])
    assert ref["kind"] == "auto" and ref["amount_fen"] == 9900

    cron(harness)
    wait_refund(harness, ref["refund_no"])
    assert provider_refunds(harness, channel, c["payment_no"]) == [(ref["refund_no"], 9900)]
    (ev,) = events_in_db(harness, c["order_no"], "payment.anomaly")
    make_due(harness, c["order_no"])
    cron(harness)
    got = harness.webhooks.events(c["order_no"], "payment.anomaly", only_ok=True)
    assert len(got) == 1, harness.webhooks.events(c["order_no"])
    data = got[0]["event"]["data"]
    assert data["anomaly"] == "late_payment" and data["refund_no"] == ref["refund_no"]
    assert data["anomaly_payment_no"] == c["payment_no"]
    verify_webhook_signature(got[0]["headers"]["Paygate-Signature"], got[0]["body"])
    shown = order_show(harness, c["order_no"])
    assert shown["status"] == "CLOSED"
    assert [(x["refund_no"], x["status"], x["kind"]) for x in shown["refunds"]] == [
        (ref["refund_no"], "SUCCEEDED", "auto")], shown
    assert "late_payment" in json.dumps(shown), shown
    assert [p.get("anomaly") for p in shown["payments"]] == ["late_payment"], \
        "order show --json: the payment does not say it was a late payment: %r" % shown["payments"]
    # no entitlement for a closed order
    assert not harness.query("SELECT id FROM entitlements WHERE order_id=%s AND status='ACTIVE'",
                             o["id"])


@pytest.mark.parametrize("first,second", [("wechat", "alipay"), ("alipay", "wechat")])
def test_double_payment_is_refunded_automatically(harness, lighttpd_stack, first, second):
    """Two payments of one order (the buyer switched channel and paid both).
    paygate has no API to start a second payment of an existing order yet,
    so the second checkout's payment is moved to the first order in the DB."""
    st = lighttpd_stack
    user = unique_user("twice")
    a = new_order(harness, st, first, user=user)
    b = new_order(harness, st, second, user=user)
    o = harness.order(a["order_no"])
    harness.query("UPDATE payments SET order_id=%s WHERE payment_no=%s", o["id"], b["payment_no"])
    harness.query("UPDATE orders SET status='CLOSED', closed_at=UTC_TIMESTAMP() WHERE order_no=%s",
                  b["order_no"])
    sandbox_pay(harness, first, a["payment_no"])
    harness.wait_order_status(st, a["order_no"], "PAID")
    sandbox_pay(harness, second, b["payment_no"])
    pb = wait_for(lambda: harness.payment(b["payment_no"])["status"] == "PAID"
                  and harness.payment(b["payment_no"]), 10, "the second payment to be recorded")
    assert pb["anomaly"] == "double_payment"
    assert harness.payment(a["payment_no"])["anomaly"] is None
    (ref,) = harness.query("SELECT * FROM refunds WHERE payment_id=%s", pb["id"])
    assert ref["kind"] == "auto" and ref["amount_fen"] == 9900
    cron(harness)
    wait_refund(harness, ref["refund_no"])
    assert provider_refunds(harness, second, b["payment_no"]) == [(ref["refund_no"], 9900)]
    assert provider_refunds(harness, first, a["payment_no"]) == []
    o = harness.order(a["order_no"])
    assert o["status"] == "PAID" and o["refunded_fen"] == 0
    assert [e["order_no"] for e in entitlements(st, user)] == [a["order_no"]]
    make_due(harness, a["order_no"])
    cron(harness)
    got = harness.webhooks.events(a["order_no"], "payment.anomaly", only_ok=True)
    assert len(got) == 1 and got[0]["event"]["data"]["anomaly"] == "double_payment"
    verify_webhook_signature(got[0]["headers"]["Paygate-Signature"], got[0]["body"])
    shown = order_show(harness, a["order_no"])
    assert [(x["refund_no"], x["status"], x["kind"]) for x in shown["refunds"]] == [
        (ref["refund_no"], "SUCCEEDED", "auto")], shown
    assert "double_payment" in json.dumps(shown), shown
    assert sorted((p["payment_no"], p.get("anomaly")) for p in shown["payments"]) == sorted(
        [(a["payment_no"], None), (b["payment_no"], "double_payment")]), \
        "order show --json: the payments do not show the anomaly: %r" % shown["payments"]


# ------------------------------------------------------------ entitlements

def test_entitlement_granted_on_paid_and_revoked_on_full_refund(harness, stack_lp):
    st = stack_lp
    user = unique_user("ent")
    assert entitlements(st, user) == []
    c1 = paid_order(harness, st, "wechat", product="course-c", user=user)
    c2 = paid_order(harness, st, "alipay", product="ebook-sql", user=user)
    got = entitlements(st, user)
    assert sorted((e["product"], e["order_no"]) for e in got) == sorted(
        [("course-c", c1["order_no"]), ("ebook-sql", c2["order_no"])])
    assert all(e["title"] and e["granted_at"] for e in got)
    rows = harness.query("SELECT product_id FROM entitlements WHERE user_ref=%s AND status='ACTIVE'",
                         user)
    assert len(rows) == 2   # the documented query for shops
    r = refund_api(st, c2["order_no"])
    assert r.status_code == 201, r.text
    wait_refund(harness, r.json()["refund_no"])
    assert [e["product"] for e in entitlements(st, user)] == ["course-c"]
    r = requests.get(st.base_url + "/entitlements", params={"user": user}, timeout=TIMEOUT)
    assert r.status_code == 401
    assert entitlements(st, unique_user("nobody")) == []


# ---------------------------------------------------------------- webhooks

def test_webhook_delivered_with_a_signature_verified_independently(harness, stack_pair):
    st = stack_pair
    c = paid_order(harness, st, "wechat", product="ebook-sql")
    (ev,) = events_in_db(harness, c["order_no"], "order.paid")
    assert ev["status"] == "PENDING"
    out = harness.ctl("webhooks", "deliver").stdout
    assert "delivered" in out, out
    got = harness.webhooks.events(c["order_no"], "order.paid")
    assert len(got) == 1, got
    call = got[0]
    assert call["status"] == 200
    assert call["headers"]["Content-Type"].startswith("application/json")
    verify_webhook_signature(call["headers"]["Paygate-Signature"], call["body"])
    body = call["event"]
    assert body["id"] == ev["event_id"] and body["type"] == "order.paid"
    assert abs(body["created"] - time.time()) < 300
    data = body["data"]
    assert data["order_no"] == c["order_no"] and data["status"] == "PAID"
    assert data["amount_fen"] == 1990 and data["refunded_fen"] == 0
    assert data["product"] == "ebook-sql" and data["channel"] == "wechat"
    assert data["payment_no"] == c["payment_no"] and data["paid_at"]
    # a forged signature would not pass the same check
    with pytest.raises(AssertionError):
        verify_webhook_signature(call["headers"]["Paygate-Signature"], call["body"] + b" ")
    (ev,) = events_in_db(harness, c["order_no"], "order.paid")
    assert ev["status"] == "DELIVERED" and ev["delivered_at"] is not None
    harness.ctl("webhooks", "deliver")
    assert len(harness.webhooks.events(c["order_no"], "order.paid")) == 1


def test_webhook_retried_after_the_receiver_fails(harness, lighttpd_stack):
    st = lighttpd_stack
    c = paid_order(harness, st, "alipay", product="ebook-sql")
    harness.webhooks.fail_next(1, match=c["order_no"])
    harness.ctl("webhooks", "deliver")
    (ev,) = events_in_db(harness, c["order_no"], "order.paid")
    assert ev["status"] == "PENDING" and ev["attempts"] == 1, ev
    assert "500" in (ev["last_error"] or ""), ev
    wait_s = harness.query("SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), next_attempt_at) AS s "
                           "FROM webhook_events WHERE id=%s", ev["id"])[0]["s"]
    assert 20 <= wait_s <= 31, wait_s   # 30 s backoff after the first failure
    cron(harness)   # not due yet
    assert len(harness.webhooks.events(c["order_no"], "order.paid")) == 1
    make_due(harness, c["order_no"])
    cron(harness)
    calls = harness.webhooks.events(c["order_no"], "order.paid")
    assert [x["status"] for x in calls] == [500, 200], calls
    assert calls[0]["event"]["id"] == calls[1]["event"]["id"]   # same event, same id
    assert calls[0]["event"] == calls[1]["event"]
    for x in calls:
        verify_webhook_signature(x["headers"]["Paygate-Signature"], x["body"])
    (ev,) = events_in_db(harness, c["order_no"], "order.paid")
    assert ev["status"] == "DELIVERED" and ev["attempts"] >= 1


def test_webhook_dead_lettered_after_the_last_try_then_retried(harness, lighttpd_stack):
    st = lighttpd_stack
    c = paid_order(harness, st, "wechat", product="ebook-sql")
    harness.webhooks.fail_next(1, match=c["order_no"])
    harness.query("UPDATE webhook_events SET created_at = UTC_TIMESTAMP() - INTERVAL 2 DAY "
                  "WHERE order_no=%s", c["order_no"])
    harness.ctl("webhooks", "deliver")
    (ev,) = events_in_db(harness, c["order_no"], "order.paid")
    assert ev["status"] == "DEAD", ev
    listed = harness.ctl_json("webhooks", "list", "--status", "DEAD")
    if isinstance(listed, dict):
        listed = next(v for v in listed.values() if isinstance(v, list))
    assert ev["event_id"] in [x.get("event_id") for x in listed], listed
    harness.ctl("webhooks", "deliver")   # DEAD is not retried by itself
    assert len(harness.webhooks.events(c["order_no"], "order.paid")) == 1
    out = harness.ctl("webhooks", "retry", "--dead").stdout
    assert "queued again" in out, out
    (ev,) = events_in_db(harness, c["order_no"], "order.paid")
    assert ev["status"] == "PENDING", ev
    harness.ctl("webhooks", "deliver")
    (ev,) = events_in_db(harness, c["order_no"], "order.paid")
    assert ev["status"] == "DELIVERED", ev
    calls = harness.webhooks.events(c["order_no"], "order.paid")
    assert [x["status"] for x in calls] == [500, 200]


def test_webhook_receiver_down_never_blocks_a_notification(harness, lighttpd_stack):
    """Delivery happens later (cron), so a failing receiver cannot slow down
    or fail the provider's notification."""
    st = lighttpd_stack
    c = new_order(harness, st, "wechat", product="ebook-sql")
    harness.webhooks.fail_next(10, match=c["order_no"])
    t0 = time.time()
    harness.wx_pay(c["payment_no"])
    harness.wait_order_status(st, c["order_no"], "PAID")
    assert time.time() - t0 < 5
    assert harness.webhooks.events(c["order_no"]) == []
    harness.webhooks.clear_failures()


# -------------------------------------------------------- unknown outcome

@pytest.mark.parametrize("channel", CHANNELS)
def test_refund_timeout_settled_by_query_never_twice(harness, lighttpd_stack, channel):
    st = lighttpd_stack
    c = paid_order(harness, st, channel, product="ebook-sql")
    # the provider's refund notification is held back too, so that only a
    # query can tell the outcome
    with faults(harness, refund_timeout=True, drop_notify=True):
        t0 = time.time()
        if channel == "alipay":
            r = refund_api(st, c["order_no"], amount_fen="1000")
            assert r.status_code == 201, r.text
            ref = r.json()
        else:
            rc, ref, r = cli_refund(harness, c["order_no"], 1000)
            assert rc == 0 and ref, (r.stdout, r.stderr)
        took = time.time() - t0
    assert ref["status"] == "PENDING", ref
    assert 5 < took < 29, took   # paygate gave up before the sandbox answered
    row = refund_row(harness, ref["refund_no"])
    assert row["status"] == "PENDING" and row["attempts"] == 1, row
    # the provider did execute it
    assert provider_refunds(harness, channel, c["payment_no"]) == [(ref["refund_no"], 1000)]
    # younger than the threshold: sync does not touch it
    harness.ctl("sync")
    assert refund_row(harness, ref["refund_no"])["attempts"] == 1
    harness.query("UPDATE refunds SET last_attempt_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE "
                  "WHERE refund_no=%s", ref["refund_no"])
    harness.ctl("sync")
    row = wait_refund(harness, ref["refund_no"])
    assert row["status"] == "SUCCEEDED"
    assert provider_refunds(harness, channel, c["payment_no"]) == [(ref["refund_no"], 1000)]
    o = harness.order(c["order_no"])
    assert o["refunded_fen"] == 1000 and o["status"] == "PARTIALLY_REFUNDED"
    # asked again: still one refund at the provider, one change here
    harness.query("UPDATE refunds SET last_attempt_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE "
                  "WHERE refund_no=%s", ref["refund_no"])
    harness.ctl("sync")
    assert provider_refunds(harness, channel, c["payment_no"]) == [(ref["refund_no"], 1000)]
    assert harness.order(c["order_no"])["refunded_fen"] == 1000
    assert len(events_in_db(harness, c["order_no"], "order.refunded")) == 1


# -------------------------------------------------------------------- cron

def test_two_concurrent_cron_passes_do_each_duty_once(harness, lighttpd_stack):
    st = lighttpd_stack
    paid = paid_order(harness, st, "alipay", product="ebook-sql")
    expiring = new_order(harness, st, "wechat", product="ebook-sql")
    harness.age_payment(expiring["payment_no"], 300, "wechat")   # WeChat: no close before 5 min
    harness.query("UPDATE payments SET expires_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE "
                  "WHERE payment_no=%s", expiring["payment_no"])
    make_due(harness, paid["order_no"])
    # the first pass holds the lock while the receiver answers slowly
    harness.webhooks.slow_next(1, 3, match=paid["order_no"])
    cmd = [str(BUILD / "paygatectl"), "-c", str(harness.cli_config), "cron"]
    p1 = subprocess.Popen(cmd, env=harness.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    time.sleep(0.5)
    p2 = subprocess.Popen(cmd, env=harness.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    out1, err1 = p1.communicate(timeout=120)
    out2, err2 = p2.communicate(timeout=120)
    harness.webhooks.clear_failures()
    assert p1.returncode == 0 and p2.returncode == 0, (out1, err1, out2, err2)
    outs = [out1, out2]
    assert any("another cron pass is running" in o for o in outs), outs
    assert not all("another cron pass is running" in o for o in outs), outs
    # each duty once
    assert len(harness.webhooks.events(paid["order_no"], "order.paid")) == 1
    assert harness.order(expiring["order_no"])["status"] == "CLOSED"
    assert len(events_in_db(harness, expiring["order_no"], "order.closed")) == 1
    assert harness.wx_trade(expiring["payment_no"])["trade_state"] == "CLOSED"
    # and a following pass adds nothing
    cron(harness)
    assert len(harness.webhooks.events(paid["order_no"], "order.paid")) == 1
    assert len(harness.webhooks.events(expiring["order_no"], "order.closed")) == 1


def test_cli_refund_options_after_the_order_no(harness, lighttpd_stack):
    """README: `refund ORDER_NO [--amount-fen N] [--reason R] [--request-id ID]`."""
    c = paid_order(harness, lighttpd_stack, "alipay", product="ebook-sql")
    r = harness.ctl("--json", "refund", c["order_no"], "--amount-fen", "100", check=False)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[:300])
    assert json.loads(r.stdout)["amount_fen"] == 100
    r = harness.ctl("--json", "refund", c["order_no"], check=False)   # all that is left
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[:300])
    assert json.loads(r.stdout)["amount_fen"] == 1890
    assert harness.order(c["order_no"])["status"] == "REFUNDED"
