"""Cards through Stripe Checkout, end to end: paygate (through the web
stacks), the sandbox's Stripe, MariaDB, and the official `stripe` npm
package as the independent judge of the sandbox's signatures and of the
shape of paygate's requests.

Each test points the sandbox's webhook endpoint at its own stack; sync and
close run through paygatectl with a config that has [stripe] enabled."""

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from chaos_helpers import Unchanged
from conftest import ALL_STACKS, API_KEY, TIMEOUT, unique_user
from test_lifecycle import faults, refund_api, refund_row, wait_for, wait_refund

AUTH = {"Authorization": "Bearer " + API_KEY}
SK = "sk_test_paygatesandbox"
WHSEC = "whsec_paygatesandboxsecret"
INTEROP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "sandbox", "interop")


def stripe_ini(harness):
    return ("[stripe]\nenabled = true\nsecret_key = %s\nwebhook_secret = %s\n"
            "api_base = %s\ncurrency = cny\nfee_rate_bp = 340\n" % (SK, WHSEC, harness.sandbox_url))


@pytest.fixture(scope="module", params=ALL_STACKS)
def sst(request, harness):
    """A stack of that kind with [stripe] enabled (beside Alipay and WeChat)."""
    st = harness.new_stack(request.param, name="stripe-" + request.param, extra_ini=stripe_ini(harness))
    st.start()
    yield st
    st.stop()


@pytest.fixture(scope="module")
def stripe_cli(harness):
    path = harness.run / "cli-stripe.ini"
    harness.write_config(path, harness.cli_base_url, harness.run / "paygatectl-stripe.log",
                         harness.keys["pkcs8"], extra=stripe_ini(harness))
    return path


@pytest.fixture(autouse=True)
def endpoint(harness, request):
    """Stripe's events go to the stack under test."""
    st = request.getfixturevalue("sst") if "sst" in request.fixturenames else None
    if st is not None:
        r = harness.sandbox_post("/_sandbox/stripe/endpoint", {"url": st.base_url + "/notify/stripe"})
        assert r.status_code == 200, r.text
    yield


# ------------------------------------------------------------------ helpers

def node(cmd):
    out = subprocess.run(["node", "stripe_interop.js", json.dumps(cmd)], cwd=INTEROP,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def checkout(harness, st, product="course-c", user=None, **kw):
    return harness.checkout(st, product=product, channel="stripe", method="checkout",
                            user=user or unique_user("card"), **kw)


def new_card_order(harness, st, **kw):
    r = checkout(harness, st, **kw)
    assert r.status_code == 201, r.text
    return r.json()


def session_of(harness, payment_no):
    r = harness.sandbox_get("/_sandbox/stripe/by_payment/" + payment_no)
    assert r.status_code == 200, r.text
    return r.json()


def pay(harness, payment_no, delayed=False):
    r = harness.sandbox_post("/_sandbox/stripe/pay", {"payment_no": payment_no, "delayed": delayed})
    assert r.status_code == 200, r.text
    return r.json()


def events(harness, type_=None):
    r = harness.sandbox_get("/_sandbox/stripe/events" + ("?type=" + type_ if type_ else ""))
    assert r.status_code == 200
    return r.json()


def events_of(harness, session_id, type_):
    return [e for e in events(harness, type_)
            if e["data"]["object"].get("id") == session_id
            or e["data"]["object"].get("metadata", {}).get("payment_no") == session_id]


def resend(harness, event_id, t=None):
    body = {"event_id": event_id}
    if t is not None:
        body["t"] = t
    r = harness.sandbox_post("/_sandbox/stripe/resend", body)
    assert r.status_code == 200, r.text
    return r.json()["acked"]


def signed_post(harness, st, body, t=None, secret=WHSEC, header=None):
    if header is None:
        r = harness.sandbox_post("/_sandbox/stripe/sign", {"body": body, "secret": secret,
                                                           "t": int(time.time()) if t is None else t})
        header = r.json()["header"]
    return requests.post(st.base_url + "/notify/stripe", data=body.encode("utf-8"),
                         headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                         timeout=TIMEOUT)


def event_body(type_, obj, account=None, livemode=False, evt_id=None):
    ev = {"id": evt_id or "evt_" + unique_user("t").replace("-", "").replace(".", "")[:20],
          "object": "event", "api_version": "2024-06-20", "created": int(time.time()),
          "type": type_, "livemode": livemode, "data": {"object": obj}}
    if account:
        ev["account"] = account
    return json.dumps(ev)


def stripe_notifications(harness, payment_no):
    return harness.query("SELECT outcome, detail, notify_id FROM notifications WHERE channel='stripe' "
                         "AND payment_no=%s ORDER BY id", payment_no)


def state(harness, c):
    """What an attack must not change."""
    return (harness.order(c["order_no"])["status"], harness.payment(c["payment_no"])["status"],
            harness.query("SELECT COUNT(*) AS n FROM ledger_entries")[0]["n"])


def paid(harness, st):
    c = new_card_order(harness, st)
    pay(harness, c["payment_no"])
    harness.wait_order_status(st, c["order_no"], "PAID")
    return c


# ------------------------------------------------------------------ purchase

def test_checkout_session_shape_and_purchase_through_hosted_page(harness, sst):
    user = unique_user("card")
    c = new_card_order(harness, sst, user=user)
    assert c["channel"] == "stripe" and c["method"] == "checkout" and c["amount_fen"] == 9900
    assert c["pay_url"].startswith(harness.sandbox_url + "/stripe/pay/cs_test_")
    session = session_of(harness, c["payment_no"])
    assert len(session["id"]) > 64          # live ids are this long: the column takes them
    assert harness.payment(c["payment_no"])["provider_trade_no"] == session["id"]
    assert session["client_reference_id"] == c["payment_no"]
    assert session["metadata"] == {"payment_no": c["payment_no"]}
    assert session["amount_total"] == 9900 and session["currency"] == "cny"
    assert session["success_url"].startswith(sst.base_url + "/return/stripe?payment_no=")
    # Stripe bounds: at least 30 minutes ahead although order_ttl is 15
    assert session["expires_at"] - session["created"] >= 1800
    req = [r for r in harness.sandbox_get("/_sandbox/stripe/requests").json()
           if r["path"] == "/v1/checkout/sessions" and ("client_reference_id", c["payment_no"]) in
           [tuple(p) for p in r["form"]]][0]
    assert req["stripe_version"] == "2024-06-20"
    assert req["idempotency_key"] == "paygate-checkout-" + c["payment_no"]
    assert req["content_type"] == "application/x-www-form-urlencoded"
    # the buyer pays on the hosted page and comes back to our return page
    page = requests.get(c["pay_url"], timeout=TIMEOUT)
    assert "Pay" in page.text and "Decline" in page.text
    r = requests.post(c["pay_url"], data={"action": "pay"}, timeout=TIMEOUT, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == session["success_url"]
    harness.wait_order_status(sst, c["order_no"], "PAID")
    back = requests.get(session["success_url"], timeout=TIMEOUT)
    assert back.status_code == 200 and c["order_no"] in back.text
    notes = stripe_notifications(harness, c["payment_no"])
    assert [n["outcome"] for n in notes].count("accepted") == 1
    ent = requests.get(sst.base_url + "/entitlements", params={"user": user}, headers=AUTH,
                       timeout=TIMEOUT).json()["entitlements"]
    assert any(e["product"] == "course-c" for e in ent)


def test_signed_link_redirects_to_the_hosted_page(harness, sst):
    from conftest import signed_link
    url = signed_link(sst.base_url, "course-c", unique_user("link"), extra="&channel=stripe&method=checkout")
    r = requests.get(url, timeout=TIMEOUT, allow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers["Location"].startswith(harness.sandbox_url + "/stripe/pay/cs_test_")


def test_auto_never_picks_stripe_and_minimum_refused(harness, sst):
    r = harness.checkout(sst, channel="auto", method="checkout")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_method", r.text
    r = harness.checkout(sst, channel="auto", method=None)
    assert r.status_code == 201 and r.json()["channel"] != "stripe"
    harness.ctl("product", "add", "--sku", "sticker-" + sst.kind, "--title", "Sticker", "--price-fen", "100",
                check=False)
    r = checkout(harness, sst, product="sticker-" + sst.kind)
    assert r.status_code == 400, r.text
    assert "minimum" in r.json()["error"]["message"]


def test_declined_card_then_paid(harness, sst):
    c = new_card_order(harness, sst)
    r = requests.post(c["pay_url"], data={"action": "decline"}, timeout=TIMEOUT)
    assert "declined" in r.text
    assert harness.order(c["order_no"])["status"] == "CREATED"
    requests.post(c["pay_url"], data={"action": "pay"}, timeout=TIMEOUT, allow_redirects=False)
    harness.wait_order_status(sst, c["order_no"], "PAID")


@pytest.mark.parametrize("succeeded", [True, False])
def test_delayed_payment(harness, sst, succeeded):
    c = new_card_order(harness, sst)
    pay(harness, c["payment_no"], delayed=True)
    wait_for(lambda: any(n["outcome"] == "ignored" for n in stripe_notifications(harness, c["payment_no"])),
             20, "completed (unpaid) recorded as ignored")
    assert harness.order(c["order_no"])["status"] == "CREATED"
    r = harness.sandbox_post("/_sandbox/stripe/async", {"payment_no": c["payment_no"], "succeeded": succeeded})
    assert r.status_code == 200, r.text
    harness.wait_order_status(sst, c["order_no"], "PAID" if succeeded else "CLOSED")


# ------------------------------------------------------- exactly once, order

def test_duplicate_deliveries_have_one_effect(harness, sst):
    c = new_card_order(harness, sst)
    with faults(harness, duplicate=4):
        pay(harness, c["payment_no"])
        harness.wait_order_status(sst, c["order_no"], "PAID")
        wait_for(lambda: len(stripe_notifications(harness, c["payment_no"])) >= 4, 20, "4 copies")
    outcomes = [n["outcome"] for n in stripe_notifications(harness, c["payment_no"])]
    assert outcomes.count("accepted") == 1 and set(outcomes) == {"accepted", "duplicate"}, outcomes
    assert len(harness.query("SELECT id FROM webhook_events WHERE order_no=%s AND type='order.paid'",
                             c["order_no"])) == 1


def test_reordered_events_change_nothing_twice(harness, sst):
    """async_payment_succeeded before the (unpaid) completed; an expired after
    the payment; the replay of each: PAID once, never closed."""
    c = new_card_order(harness, sst)
    with faults(harness, no_notify=True):
        s = pay(harness, c["payment_no"], delayed=True)
        harness.sandbox_post("/_sandbox/stripe/async", {"payment_no": c["payment_no"], "succeeded": True})
    completed = events_of(harness, s["id"], "checkout.session.completed")[0]
    succeeded = events_of(harness, s["id"], "checkout.session.async_payment_succeeded")[0]
    assert resend(harness, succeeded["id"]) == [True]
    assert harness.order(c["order_no"])["status"] == "PAID"
    assert resend(harness, completed["id"]) == [True]
    assert resend(harness, succeeded["id"]) == [True]      # replayed: a duplicate
    expired = dict(s, status="expired", payment_status="paid")
    assert signed_post(harness, sst, event_body("checkout.session.expired", expired)).status_code == 200
    assert harness.order(c["order_no"])["status"] == "PAID"
    assert harness.payment(c["payment_no"])["status"] == "PAID"
    outcomes = [n["outcome"] for n in stripe_notifications(harness, c["payment_no"])]
    assert outcomes.count("accepted") == 1, outcomes


def test_unknown_event_type_acknowledged_and_stored_ignored(harness, sst):
    evt = "evt_unknown_" + sst.kind.replace("-", "_")
    body = event_body("customer.created", {"id": "cus_1", "object": "customer"}, evt_id=evt)
    r = signed_post(harness, sst, body)
    assert r.status_code == 200, r.text
    rows = harness.query("SELECT outcome FROM notifications WHERE notify_id=%s", evt)
    assert [x["outcome"] for x in rows] == ["ignored"]


# ------------------------------------------------------------------ refunds

def test_partial_and_full_refunds(harness, sst):
    c = paid(harness, sst)
    pi = session_of(harness, c["payment_no"])["payment_intent"]
    r = refund_api(sst, c["order_no"], amount_fen="3000")
    assert r.status_code in (200, 201), r.text
    first = r.json()["refund_no"]
    wait_refund(harness, first)
    r = refund_api(sst, c["order_no"])
    second = r.json()["refund_no"]
    wait_refund(harness, second)
    assert harness.order(c["order_no"])["status"] == "REFUNDED"
    assert harness.order(c["order_no"])["refunded_fen"] == 9900
    listed = node({"op": "api", "port": int(harness.sandbox_url.rsplit(":", 1)[1]), "key": SK,
                   "calls": [{"do": "refunds", "payment_intent": pi}]})["results"][0]["data"]
    assert sorted((x["metadata"]["refund_no"], x["amount"]) for x in listed) == sorted(
        [(first, 3000), (second, 6900)])
    reqs = [x for x in harness.sandbox_get("/_sandbox/stripe/requests").json()
            if x["path"] == "/v1/refunds" and x["method"] == "POST"]
    assert {first, second} <= {x["idempotency_key"] for x in reqs}
    # refund.created events for them arrive after: duplicates, nothing moves
    wait_for(lambda: len([n for n in harness.query(
        "SELECT outcome FROM notifications WHERE channel='stripe' AND kind='refund' AND payment_no=%s",
        c["payment_no"])]) >= 2, 20, "refund events recorded")
    assert harness.order(c["order_no"])["refunded_fen"] == 9900


def test_pending_refund_completed_by_its_event(harness, sst):
    c = paid(harness, sst)
    with faults(harness, stripe_refund_pending=True):
        r = refund_api(sst, c["order_no"], amount_fen="1000")
    refund_no = r.json()["refund_no"]
    assert refund_row(harness, refund_no)["status"] == "PENDING"
    re_id = refund_row(harness, refund_no)["provider_refund_no"]
    assert re_id and re_id.startswith("re_")
    r = harness.sandbox_post("/_sandbox/stripe/refund_resolve", {"refund_id": re_id, "status": "succeeded"})
    assert r.status_code == 200, r.text
    wait_refund(harness, refund_no)
    assert harness.order(c["order_no"])["status"] == "PARTIALLY_REFUNDED"


def dashboard_refund(harness, payment_no, **kw):
    r = harness.sandbox_post("/_sandbox/stripe/dashboard_refund", dict(kw, payment_no=payment_no))
    assert r.status_code == 200, r.text
    return r.json()


def refunds_of(harness, c):
    return harness.query("SELECT r.refund_no, r.provider_refund_no, r.amount_fen, r.status, r.kind FROM refunds r "
                         "JOIN orders o ON o.id = r.order_id WHERE o.order_no=%s ORDER BY r.id", c["order_no"])


def refunded_webhooks(harness, c):
    return harness.query("SELECT id FROM webhook_events WHERE order_no=%s AND type='order.refunded'", c["order_no"])


def entitlement(harness, c):
    return harness.query("SELECT e.status FROM entitlements e JOIN orders o ON o.id = e.order_id "
                         "WHERE o.order_no=%s", c["order_no"])[0]["status"]


def test_dashboard_refund_recorded_once(harness, sst):
    """A full refund made in the Stripe Dashboard (no refund number of ours):
    refund.created, charge.refunded and refund.updated all name it; it is
    recorded once under Stripe's refund id, the order REFUNDED, the
    entitlement revoked, one order.refunded; a redelivery changes nothing."""
    c = paid(harness, sst)
    d = dashboard_refund(harness, c["payment_no"])
    assert len(d["event_ids"]) == 3
    harness.wait_order_status(sst, c["order_no"], "REFUNDED")
    wait_for(lambda: len([n for n in stripe_notifications(harness, c["payment_no"])
                          if n["notify_id"] in d["event_ids"]]) >= 3, 20, "the three events recorded")
    rows = refunds_of(harness, c)
    assert [(x["refund_no"], x["provider_refund_no"], x["amount_fen"], x["status"]) for x in rows] == [
        (d["id"], d["id"], 9900, "SUCCEEDED")], rows
    assert harness.order(c["order_no"])["refunded_fen"] == 9900
    assert entitlement(harness, c) == "REVOKED"
    assert len(refunded_webhooks(harness, c)) == 1
    ledger = harness.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE txn_id=%s", "refund:" + d["id"])[0]["n"]
    assert ledger > 0
    for evt in d["event_ids"]:
        assert resend(harness, evt) == [True]
    assert len(refunds_of(harness, c)) == 1 and len(refunded_webhooks(harness, c)) == 1
    assert harness.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE txn_id=%s",
                         "refund:" + d["id"])[0]["n"] == ledger
    outcomes = [n["outcome"] for n in stripe_notifications(harness, c["payment_no"]) if n["notify_id"] in d["event_ids"]]
    assert outcomes.count("accepted") == 1, outcomes


@pytest.mark.parametrize("first", ["refund.updated", "charge.refunded"])
def test_dashboard_partial_refund_reordered_events(harness, sst, first):
    """The events of a partial Dashboard refund delivered late and in another
    order (and twice): recorded once, PARTIALLY_REFUNDED, entitlement kept."""
    c = paid(harness, sst)
    d = dashboard_refund(harness, c["payment_no"], amount=2500, deliver=False)
    by_type = {e["type"]: e["id"] for e in events(harness) if e["id"] in d["event_ids"]}
    order = [first] + [t for t in ("charge.refunded", "refund.updated", "refund.created") if t != first]
    for t in order + order:
        assert resend(harness, by_type[t]) == [True]
    rows = refunds_of(harness, c)
    assert [(x["refund_no"], x["amount_fen"], x["status"]) for x in rows] == [(d["id"], 2500, "SUCCEEDED")], rows
    o = harness.order(c["order_no"])
    assert (o["status"], o["refunded_fen"]) == ("PARTIALLY_REFUNDED", 2500)
    assert entitlement(harness, c) == "ACTIVE"
    assert len(refunded_webhooks(harness, c)) == 1


def test_dashboard_refund_while_stripe_api_fails_is_answered_5xx_then_recorded(harness, sst):
    """The payment intent cannot be read (Stripe 5xx): the event is not
    acknowledged (Stripe sends it again), nothing recorded; the redelivery is."""
    c = paid(harness, sst)
    d = dashboard_refund(harness, c["payment_no"], amount=700, deliver=False)
    with faults(harness, http_5xx=True):
        assert resend(harness, d["event_ids"][0]) == [False]
    assert refunds_of(harness, c) == []
    assert resend(harness, d["event_ids"][0]) == [True]
    assert [(x["refund_no"], x["amount_fen"]) for x in refunds_of(harness, c)] == [(d["id"], 700)]


def test_dashboard_refund_pending_recorded_when_it_succeeds(harness, sst):
    c = paid(harness, sst)
    d = dashboard_refund(harness, c["payment_no"], amount=1000, pending=True)
    wait_for(lambda: harness.query("SELECT outcome FROM notifications WHERE notify_id=%s", d["event_ids"][0]),
             20, "refund.created recorded")
    assert [x["outcome"] for x in harness.query("SELECT outcome FROM notifications WHERE notify_id=%s",
                                                 d["event_ids"][0])] == ["ignored"]
    assert refunds_of(harness, c) == []
    r = harness.sandbox_post("/_sandbox/stripe/refund_resolve", {"refund_id": d["id"], "status": "succeeded"})
    assert r.status_code == 200, r.text
    wait_for(lambda: harness.order(c["order_no"])["refunded_fen"] == 1000, 20, "refund recorded")
    assert [x["refund_no"] for x in refunds_of(harness, c)] == [d["id"]]


def test_own_refund_and_dashboard_refund_each_once(harness, sst):
    """Our API refund (its charge.refunded lists it with our refund number:
    not doubled), then a Dashboard refund of the rest: 9900 in all."""
    c = paid(harness, sst)
    r = refund_api(sst, c["order_no"], amount_fen="4000")
    ours = r.json()["refund_no"]
    wait_refund(harness, ours)
    wait_for(lambda: len(stripe_notifications(harness, c["payment_no"])) >= 3, 20,
             "completed, then our refund's refund.created and charge.refunded")
    assert harness.order(c["order_no"])["refunded_fen"] == 4000
    assert len(refunds_of(harness, c)) == 1
    d = dashboard_refund(harness, c["payment_no"])
    harness.wait_order_status(sst, c["order_no"], "REFUNDED")
    wait_for(lambda: len([n for n in stripe_notifications(harness, c["payment_no"])
                          if n["notify_id"] in d["event_ids"]]) >= 3, 20, "the three events recorded")
    for e in events(harness, "charge.refunded"):
        if e["data"]["object"]["payment_intent"] == d["payment_intent"]:
            assert resend(harness, e["id"]) == [True]
    rows = refunds_of(harness, c)
    assert sorted((x["refund_no"], x["amount_fen"]) for x in rows) == sorted([(ours, 4000), (d["id"], 5900)])
    assert harness.order(c["order_no"])["refunded_fen"] == 9900
    assert len(refunded_webhooks(harness, c)) == 2


def test_refund_beyond_what_was_paid_is_an_anomaly(harness, sst):
    """A (signed) refund event for more than is left of the payment: kept as
    an anomaly, acknowledged, nothing applied."""
    c = paid(harness, sst)
    pi = session_of(harness, c["payment_no"])["payment_intent"]
    r = refund_api(sst, c["order_no"], amount_fen="5000")
    wait_refund(harness, r.json()["refund_no"])
    wait_for(lambda: len(stripe_notifications(harness, c["payment_no"])) >= 3, 20,
             "completed, then our refund's refund.created and charge.refunded")
    refund = {"id": "re_over" + sst.kind.replace("-", "")[:10], "object": "refund", "amount": 5000,
              "currency": "cny", "payment_intent": pi, "status": "succeeded", "metadata": {}}
    with Unchanged(harness) as u:
        resp = signed_post(harness, sst, event_body("refund.updated", refund))
        assert resp.status_code == 200, resp.text
    assert [n["outcome"] for n in stripe_notifications(harness, c["payment_no"])][-1] == "amount_mismatch"
    assert harness.order(c["order_no"])["refunded_fen"] == 5000


# ------------------------------------------------- query, sync, close, expiry

def test_lost_webhook_recovered_by_sync(harness, sst, stripe_cli):
    c = new_card_order(harness, sst)
    with faults(harness, no_notify=True):
        pay(harness, c["payment_no"])
    assert harness.payment(c["payment_no"])["status"] == "CREATED"
    harness.query("UPDATE payments SET created_at = created_at - INTERVAL 2 MINUTE WHERE payment_no=%s",
                  c["payment_no"])
    harness.ctl("sync", config=stripe_cli)
    assert harness.payment(c["payment_no"])["status"] == "PAID"
    assert harness.order(c["order_no"])["status"] == "PAID"


def test_cron_expiry_expires_the_session_and_closes_the_order(harness, sst, stripe_cli):
    c = new_card_order(harness, sst)
    harness.query("UPDATE payments SET expires_at = UTC_TIMESTAMP() - INTERVAL 10 MINUTE,"
                  " created_at = created_at - INTERVAL 30 MINUTE WHERE payment_no=%s", c["payment_no"])
    out = harness.ctl("cron", config=stripe_cli, check=False)
    assert session_of(harness, c["payment_no"])["status"] == "expired", out.stdout + out.stderr
    assert harness.payment(c["payment_no"])["status"] == "CLOSED"
    assert harness.order(c["order_no"])["status"] == "CLOSED"


def test_close_expires_the_session(harness, sst):
    c = new_card_order(harness, sst)
    r = requests.post("%s/orders/%s/close" % (sst.base_url, c["order_no"]), headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert session_of(harness, c["payment_no"])["status"] == "expired"
    assert harness.order(c["order_no"])["status"] == "CLOSED"
    # the expired event that follows is a duplicate
    wait_for(lambda: stripe_notifications(harness, c["payment_no"]), 20, "expired event stored")
    assert harness.order(c["order_no"])["status"] == "CLOSED"


def test_close_of_a_session_paid_meanwhile_answers_409_and_records_paid(harness, sst):
    c = new_card_order(harness, sst)
    with faults(harness, no_notify=True):
        pay(harness, c["payment_no"])
    r = requests.post("%s/orders/%s/close" % (sst.base_url, c["order_no"]), headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 409, r.text
    assert harness.order(c["order_no"])["status"] == "PAID"


def test_sdk_retries_keep_the_idempotency_key(harness, sst):
    with faults(harness, http_5xx=True):
        r = checkout(harness, sst, user=unique_user("retry"))
    assert r.status_code in (502, 504), r.text
    reqs = [x for x in harness.sandbox_get("/_sandbox/stripe/requests").json()
            if x["path"] == "/v1/checkout/sessions"][-3:]
    keys = {x["idempotency_key"] for x in reqs}
    assert len(reqs) == 3 and len(keys) == 1 and next(iter(keys)).startswith("paygate-checkout-"), reqs


# ------------------------------------------------------------------ attacks

@pytest.mark.parametrize("how", ["forged", "stale", "empty_v1", "tampered", "no_header",
                                 "other_account", "livemode", "amount"])
def test_attacks_refused_nothing_changed(harness, sst, how):
    c = new_card_order(harness, sst)
    s = session_of(harness, c["payment_no"])
    obj = dict(s, status="complete", payment_status="paid", payment_intent="pi_forged")
    body = event_body("checkout.session.completed", obj)
    before = state(harness, c)
    with Unchanged(harness) as u:   # row by row: orders, payments, refunds, ledger, webhooks, entitlements
        r = attack(harness, sst, how, body, obj)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert state(harness, c) == before
    assert harness.order(c["order_no"])["status"] == "CREATED"
    assert len(u.rows) == 1, u.rows    # refused and kept (first bytes, reason)


def attack(harness, sst, how, body, obj):
    if how == "forged":
        r = signed_post(harness, sst, body, secret="whsec_attacker")
    elif how == "stale":
        r = signed_post(harness, sst, body, t=int(time.time()) - 301)
    elif how == "empty_v1":
        r = signed_post(harness, sst, body, header="t=%d,v1=" % int(time.time()))
    elif how == "tampered":
        header = harness.sandbox_post("/_sandbox/stripe/sign", {"body": body}).json()["header"]
        r = signed_post(harness, sst, body.replace('"amount_total": 9900', '"amount_total": 1'), header=header)
    elif how == "no_header":
        r = requests.post(sst.base_url + "/notify/stripe", data=body, timeout=TIMEOUT)
    elif how == "other_account":
        r = signed_post(harness, sst, event_body("checkout.session.completed", obj, account="acct_other"))
    elif how == "livemode":
        r = signed_post(harness, sst, event_body("checkout.session.completed", obj, livemode=True))
    else:
        r = signed_post(harness, sst, event_body("checkout.session.completed", dict(obj, amount_total=1)))
    return r


def test_replayed_event_changes_nothing_and_a_stale_replay_is_refused(harness, sst):
    c = paid(harness, sst)
    ev = events_of(harness, session_of(harness, c["payment_no"])["id"], "checkout.session.completed")[0]
    with Unchanged(harness, allowed={"duplicate", "bad_signature"}) as u:
        assert resend(harness, ev["id"]) == [True]                           # a replay: duplicate
        assert resend(harness, ev["id"], t=int(time.time()) - 400) == [False]   # replayed later: stale
    assert sorted(r["outcome"] for r in u.rows) == ["bad_signature", "duplicate"], u.rows


# ------------------------------------------------------- the official package

def test_official_package_verifies_sandbox_signatures(harness):
    got = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((body.decode("utf-8"), self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        harness.sandbox_post("/_sandbox/stripe/endpoint", {"url": "http://127.0.0.1:%d/" % srv.server_port})
        port = int(harness.sandbox_url.rsplit(":", 1)[1])
        made = node({"op": "api", "port": port, "key": SK, "calls": [{"do": "create", "params": {
            "mode": "payment", "line_items": [{"price_data": {"currency": "cny", "unit_amount": 500,
                                                              "product_data": {"name": "x"}}, "quantity": 1}],
            "success_url": "http://x/s", "client_reference_id": "NODE1"}}]})["results"][0]
        pay(harness, "NODE1")
        wait_for(lambda: got, 20, "event delivered")
        body, header = got[0]
        ok = node({"op": "verify", "body": body, "header": header, "secret": WHSEC})
        assert ok == {"ok": True, "type": "checkout.session.completed", "id": json.loads(body)["id"]}
        assert json.loads(body)["data"]["object"]["id"] == made["id"]
        bad = node({"op": "verify", "body": body + " ", "header": header, "secret": WHSEC})
        assert not bad["ok"]
    finally:
        srv.shutdown()


def test_official_package_reads_what_paygate_created_and_shapes_requests_alike(harness, sst):
    c = new_card_order(harness, sst)
    port = int(harness.sandbox_url.rsplit(":", 1)[1])
    sid = harness.payment(c["payment_no"])["provider_trade_no"]
    got = node({"op": "api", "port": port, "key": SK, "calls": [{"do": "retrieve", "id": sid}]})["results"][0]
    assert got["id"] == sid and got["amount_total"] == 9900 and got["client_reference_id"] == c["payment_no"]
    ours = [x for x in harness.sandbox_get("/_sandbox/stripe/requests").json()
            if x["path"] == "/v1/checkout/sessions" and x["method"] == "POST"
            and ["client_reference_id", c["payment_no"]] in x["form"]][0]
    params = {}
    for k, v in ours["form"]:
        params[k] = v
    # the same parameters, given to the official client as objects
    sdk_params = {"mode": "payment", "line_items": [{"price_data": {
        "currency": "cny", "unit_amount": 9900, "product_data": {"name": params[
            "line_items[0][price_data][product_data][name]"], "metadata": {"sku": "course-c"}}}, "quantity": 1}],
        "client_reference_id": c["payment_no"] + "x", "metadata": {"payment_no": c["payment_no"]},
        "payment_intent_data": {"metadata": {"payment_no": c["payment_no"]}},
        "expires_at": int(params["expires_at"]), "success_url": params["success_url"],
        "cancel_url": params["cancel_url"]}
    made = node({"op": "api", "port": port, "key": SK, "calls": [{"do": "create", "params": sdk_params}]})
    assert "id" in made["results"][0], made
    theirs = [x for x in harness.sandbox_get("/_sandbox/stripe/requests").json()
              if x["path"] == "/v1/checkout/sessions" and x["method"] == "POST"
              and ["client_reference_id", c["payment_no"] + "x"] in x["form"]][0]
    assert sorted(k for k, _v in ours["form"]) == sorted(k for k, _v in theirs["form"])
    assert ours["raw"].split("&client_reference_id=")[0] == theirs["raw"].split("&client_reference_id=")[0]


# ------------------------------------------------------------ reconciliation

def beijing_today():
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))


def fee_entries(harness, *txn_ids):
    marks = ", ".join(["%s"] * len(txn_ids))
    rows = harness.query("SELECT COALESCE(SUM(amount_fen), 0) AS s FROM ledger_entries WHERE account='fees:stripe'"
                         " AND txn_id IN (%s)" % marks, *txn_ids)
    return int(rows[0]["s"])


def test_reconciliation_books_actual_fees_and_finds_each_discrepancy(harness, sst, stripe_cli):
    r = harness.sandbox_post("/_sandbox/stripe/fees", {"fee_rate_bp": 340, "fixed": 100})
    assert r.status_code == 200, r.text
    try:
        good = paid(harness, sst)
        refunded = paid(harness, sst)
        rr = refund_api(sst, refunded["order_no"], amount_fen="3000").json()
        wait_refund(harness, rr["refund_no"])
        lost = new_card_order(harness, sst)
        with faults(harness, no_notify=True):
            pay(harness, lost["payment_no"])
        dropped = paid(harness, sst)
        assert harness.sandbox_post("/_sandbox/stripe/balance_fault",
                                    {"payment_no": dropped["payment_no"], "drop": True}).status_code == 200
        wrong = paid(harness, sst)
        assert harness.sandbox_post("/_sandbox/stripe/balance_fault",
                                    {"payment_no": wrong["payment_no"], "amount_delta": 1}).status_code == 200
        closed = new_card_order(harness, sst)
        with faults(harness, no_notify=True):
            pay(harness, closed["payment_no"])
        harness.query("UPDATE payments SET status='CLOSED' WHERE payment_no=%s", closed["payment_no"])
    finally:
        harness.sandbox_post("/_sandbox/stripe/fees", {"fee_rate_bp": None, "fixed": 0})
    assert harness.payment(good["payment_no"])["fee_fen"] == 337          # the estimate, 340 bp
    out = harness.ctl("reconcile", "--channel", "stripe", "--date", beijing_today(), config=stripe_cli, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    run_id = harness.query("SELECT MAX(id) AS id FROM recon_runs WHERE channel='stripe'")[0]["id"]
    items = harness.query("SELECT category, kind, out_trade_no, out_refund_no, detail FROM recon_items WHERE run_id=%s",
                          run_id)

    def item(payment_no, kind="payment"):
        found = [i for i in items if i["out_trade_no"] == payment_no and i["kind"] == kind]
        assert len(found) == 1, (payment_no, kind, found)
        return found[0]

    assert item(good["payment_no"])["category"] == "matched"
    assert "fee adjusted" in item(good["payment_no"])["detail"]
    assert harness.payment(good["payment_no"])["fee_fen"] == 437          # Stripe's actual fee
    assert fee_entries(harness, "pay:" + good["payment_no"], "feeadj:p:" + good["payment_no"]) == -437
    assert item(refunded["payment_no"], "refund")["category"] == "matched"
    # Stripe keeps the fee of a refund: the fee returned in the ledger is taken back
    assert fee_entries(harness, "refund:" + rr["refund_no"], "feeadj:r:" + rr["refund_no"]) == 0
    assert item(lost["payment_no"])["category"] == "missing_local"
    assert item(dropped["payment_no"])["category"] == "missing_provider"
    assert item(wrong["payment_no"])["category"] == "amount_mismatch"
    assert item(closed["payment_no"])["category"] == "status_mismatch"
    assert int(harness.query("SELECT COALESCE(SUM(amount_fen), 0) AS s FROM ledger_entries")[0]["s"]) == 0
    # again: nothing adjusted twice
    adjustments = harness.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE txn_id LIKE 'feeadj:%%'")[0]["n"]
    harness.ctl("reconcile", "--channel", "stripe", "--date", beijing_today(), config=stripe_cli, check=False)
    assert harness.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE txn_id LIKE 'feeadj:%%'")[0]["n"] == adjustments
    assert fee_entries(harness, "pay:" + good["payment_no"], "feeadj:p:" + good["payment_no"]) == -437


# ------------------------------------------------------- zero-decimal currency

@pytest.fixture(scope="module")
def jpy_stack(harness):
    """[stripe] currency = jpy: the shop's prices are yen (no minor unit)."""
    ini = stripe_ini(harness).replace("currency = cny", "currency = jpy")
    st = harness.new_stack("lighttpd", name="stripe-jpy", extra_ini=ini)
    st.start()
    yield st
    st.stop()


def test_zero_decimal_currency_shown_without_decimals(harness, jpy_stack):
    """A card order in yen: the session is in jpy, and the buyer's page and
    the console show JP¥9900, not ¥99.00."""
    from test_admin import signed_in
    st = jpy_stack
    r = harness.sandbox_post("/_sandbox/stripe/endpoint", {"url": st.base_url + "/notify/stripe"})
    assert r.status_code == 200, r.text
    c = new_card_order(harness, st)
    s = session_of(harness, c["payment_no"])
    assert (s["currency"], s["amount_total"]) == ("jpy", 9900)
    pay(harness, c["payment_no"])
    harness.wait_order_status(st, c["order_no"], "PAID")
    page = requests.get(st.base_url + "/return/stripe", params={"payment_no": c["payment_no"]}, timeout=TIMEOUT)
    assert page.status_code == 200, page.text
    assert '<strong id="amount">JP¥9900</strong>' in page.text, page.text[:3000]
    assert "99.00" not in page.text
    console, _ = signed_in(harness, st, "operator", lang="en")
    o = console.get("/orders/%s" % c["order_no"])
    assert o.status_code == 200
    assert "JP¥9900" in o.text and "¥99.00" not in o.text
