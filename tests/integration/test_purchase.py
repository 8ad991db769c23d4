"""The whole purchase through every web stack, and the checkout reply."""

import json
import re
import time
import urllib.parse

import pytest
import requests

from conftest import (APP_ID, PRICES, SELLER_ID, TITLES, TIMEOUT, alipay_string_to_sign,
                      fen_to_amount, parse_html, rsa2_verify, unique_user)

NO_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
BEIJING_TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def pay_in_cashier(harness, pay_url):
    """Open the sandbox cashier like a browser, press Pay; returns the
    redirect response (302 to return_url)."""
    s = requests.Session()
    # verify= on each call: a session's verify loses to $REQUESTS_CA_BUNDLE
    ca = str(harness.ca_file)
    page = s.get(pay_url, timeout=TIMEOUT, verify=ca)
    assert page.status_code == 200, page.text[:500]
    forms = [f for f in parse_html(page.text).forms if "pay-button" in f["ids"]]
    assert forms, "no form with #pay-button in the cashier page:\n" + page.text[:1000]
    form = forms[0]
    assert form["method"] == "post"
    action = urllib.parse.urljoin(page.url, form["action"])
    return s, s.post(action, data=form["fields"], timeout=TIMEOUT, allow_redirects=False,
                     verify=ca)


def test_whole_purchase_checkout_cashier_notify_return_page(harness, stack):
    user = unique_user()
    r = harness.checkout(stack, product="course-c", user=user, method="page")
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["status"] == "CREATED"
    assert c["amount_fen"] == 9900 and c["amount"] == "99.00"
    assert c["channel"] == "alipay" and c["method"] == "page"
    assert NO_RE.match(c["order_no"]) and NO_RE.match(c["payment_no"])
    assert ISO_Z.match(c["expires_at"]), c["expires_at"]
    assert c["pay_url"].startswith(harness.gateway + "?"), c["pay_url"]

    sess, resp = pay_in_cashier(harness, c["pay_url"])
    assert resp.status_code == 302, resp.text[:500]
    return_url = resp.headers["Location"]
    assert return_url.startswith(stack.base_url + "/return/alipay?"), return_url

    # the notification is the source of truth; the return page shows the DB
    harness.wait_order_status(stack, c["order_no"], "PAID")
    page = sess.get(return_url, timeout=TIMEOUT)
    assert page.status_code == 200, page.text[:500]
    assert "text/html" in page.headers.get("Content-Type", "")
    assert c["order_no"] in page.text
    assert "PAID" in page.text

    trade = harness.sandbox_trade(c["payment_no"])
    assert trade["status"] == "TRADE_SUCCESS"
    acked = [n for n in trade["notifications"] if n["acked"]]
    assert len(acked) == 1
    assert acked[0]["attempts"][-1]["body"] == "success"

    pay = harness.payment(c["payment_no"])
    assert pay["status"] == "PAID"
    assert pay["amount_fen"] == 9900
    assert pay["provider_trade_no"] == trade["trade_no"]
    assert pay["paid_at"] is not None
    order = harness.order(c["order_no"])
    assert order["status"] == "PAID"
    assert order["paid_at"] is not None
    assert order["user_ref"] == user

    rows = harness.notifications_for(c["payment_no"])
    accepted = [n for n in rows if n["outcome"] == "accepted"]
    assert len(accepted) == 1, rows
    raw = bytes(accepted[0]["raw_body"]).decode("utf-8")
    form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
    assert form["out_trade_no"] == c["payment_no"]
    assert form["notify_id"] == acked[0]["notify_id"]
    assert form["trade_status"] == "TRADE_SUCCESS"
    assert "sign" in form

    # one access-log line per request, with the order and payment numbers
    log = stack.paygate_log.read_text(errors="replace")
    assert re.search(r"POST /checkout 201 .*%s" % c["order_no"], log), log[-2000:]
    assert re.search(r"POST /notify/alipay 200 .*%s" % c["payment_no"], log), log[-2000:]

    st = harness.order_status(stack, c["order_no"])
    assert st["status"] == "PAID"
    assert st["order_no"] == c["order_no"]
    assert st["amount_fen"] == 9900 and st["refunded_fen"] == 0
    assert st["channel"] == "alipay"
    assert ISO_Z.match(st["paid_at"] or ""), st


@pytest.mark.parametrize("method", ["page", "wap"])
def test_pay_url_is_signed_with_the_app_key_over_every_parameter(harness, stack, method):
    c = harness.new_payment(stack, product="ebook-sql", method=method)
    url = urllib.parse.urlsplit(c["pay_url"])
    assert "%s://%s%s" % (url.scheme, url.netloc, url.path) == harness.gateway
    pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
    keys = [k for k, _v in pairs]
    assert len(keys) == len(set(keys)), "repeated parameters: %s" % keys
    p = dict(pairs)
    assert p["app_id"] == APP_ID
    assert p["method"] == "alipay.trade.%s.pay" % method
    assert p["charset"].lower() == "utf-8"
    assert p["sign_type"] == "RSA2"
    assert p["version"] == "1.0"
    assert p.get("format", "JSON") == "JSON"
    assert BEIJING_TS.match(p["timestamp"]), p["timestamp"]
    assert p["notify_url"] == stack.base_url + "/notify/alipay"
    assert p["return_url"].startswith(stack.base_url + "/return/alipay")
    biz = json.loads(p["biz_content"])
    assert biz["out_trade_no"] == c["payment_no"]
    assert biz["total_amount"] == fen_to_amount(PRICES["ebook-sql"]) == "19.90"
    assert biz["subject"] == TITLES["ebook-sql"]
    assert biz["product_code"] == {"page": "FAST_INSTANT_TRADE_PAY", "wap": "QUICK_WAP_WAY"}[method]
    # requests: sign_type is part of the signed string
    text = alipay_string_to_sign(p, drop_sign_type=False)
    rsa2_verify(harness.app_public, text, p["sign"])


def test_checkout_accepts_a_json_body(harness, stack_lp):
    r = harness.checkout(stack_lp, product="ebook-sql", as_json=True)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["amount_fen"] == 1990 and c["amount"] == "19.90"


def test_qr_checkout_calls_precreate_and_returns_the_qr_code(harness, stack_lp):
    r = harness.checkout(stack_lp, product="course-c", method="qr")
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["method"] == "qr"
    assert c.get("qr_code"), c
    trade = harness.sandbox_trade(c["payment_no"])
    assert trade["total_amount"] == "99.00"
    assert trade["status"] == "WAIT_BUYER_PAY"


def test_return_page_with_a_bad_signature_is_refused(harness, lighttpd_stack):
    st = lighttpd_stack
    c = harness.new_payment(st)
    good = harness.sandbox_pay(c)["return_url_signed"]
    assert good.startswith(st.base_url + "/return/alipay?")
    ok = requests.get(good, timeout=TIMEOUT)
    assert ok.status_code == 200 and c["order_no"] in ok.text
    tampered = good.replace("total_amount=99.00", "total_amount=0.01")
    assert tampered != good
    bad = requests.get(tampered, timeout=TIMEOUT)
    assert bad.status_code == 403
    unsigned = re.sub(r"([?&])sign=[^&]*", r"\1", good)
    assert requests.get(unsigned, timeout=TIMEOUT).status_code in (400, 403)


def test_sandbox_pay_is_recorded_once_and_the_seller_matches(harness, stack_pair):
    c = harness.new_payment(stack_pair)
    harness.sandbox_pay(c)
    harness.wait_order_status(stack_pair, c["order_no"], "PAID")
    deadline = time.time() + 5
    while time.time() < deadline:
        if harness.sandbox_trade(c["payment_no"])["notifications"][0]["acked"]:
            break
        time.sleep(0.1)
    rows = harness.notifications_for(c["payment_no"])
    assert [n["outcome"] for n in rows] == ["accepted"], rows
    form = dict(urllib.parse.parse_qsl(bytes(rows[0]["raw_body"]).decode()))
    assert form["seller_id"] == SELLER_ID


def test_qr_payment_page_then_paid(harness, stack_pair):
    c = harness.new_payment(stack_pair, product="ebook-sql", method="qr")
    page = requests.get("%s/pay/%s" % (stack_pair.base_url, c["payment_no"]), timeout=TIMEOUT)
    assert page.status_code == 200, page.text[:300]
    assert "text/html" in page.headers.get("Content-Type", "")
    assert "<svg" in page.text
    r = harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    assert r.status_code == 200, r.text
    harness.wait_order_status(stack_pair, c["order_no"], "PAID")
    assert harness.payment(c["payment_no"])["status"] == "PAID"
