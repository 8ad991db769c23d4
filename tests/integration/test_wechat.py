"""WeChat Pay v2 through real lighttpd and real Apache with the sandbox:
native/JSAPI/H5 purchases, notification verification, exactly-once under
concurrency, XXE, channel choice by User-Agent and the QR page.

Notifications that test verification are built and signed by the test
itself (conftest.wx_sign, written from the protocol description), not by
the sandbox or src/."""

import html.parser
import re
import threading
import time
import urllib.parse
import uuid

import pytest
import requests

from conftest import (API_KEY, PRICES, TIMEOUT, WX_APPID, WX_MCH_ID, WX_SIGN_TYPE, parse_html, signed_link,
                      unique_user, wx_parse, wx_sign, wx_string_to_sign, wx_xml)

WECHAT_UA = ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 MicroMessenger/8.0.43.2480(0x28002B37) "
             "NetType/WIFI Language/zh_CN")
MOBILE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
DESKTOP_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def wx_checkout(harness, st, method="native", product="course-c", **kw):
    r = harness.checkout(st, product=product, channel="wechat", method=method, **kw)
    assert r.status_code == 201, "checkout: %s %s" % (r.status_code, r.text)
    c = r.json()
    assert c["channel"] == "wechat" and c["method"] == method
    return c


def assert_fail_reply(r):
    assert r.status_code == 200, r.text
    assert "xml" in r.headers.get("Content-Type", ""), r.headers
    reply = wx_parse(r.text)
    assert reply["return_code"] == "FAIL", r.text
    assert reply.get("return_msg"), r.text
    return reply


def assert_success_reply(r):
    assert r.status_code == 200, r.text
    reply = wx_parse(r.text)
    assert reply["return_code"] == "SUCCESS", r.text
    return reply


def assert_unchanged(harness, c):
    assert harness.payment(c["payment_no"])["status"] == "CREATED"
    order = harness.order(c["order_no"])
    assert order["status"] == "CREATED"
    assert order["paid_at"] is None
    assert not harness.query("SELECT id FROM entitlements WHERE order_id=%s", order["id"])


def pay_on_phone(harness, url, **form_extra):
    """Open a sandbox phone page (scan / mweb / jsapi), press Pay; returns
    the response to the form POST (not followed)."""
    page = requests.get(url, timeout=TIMEOUT)
    assert page.status_code == 200, page.text[:500]
    forms = [f for f in parse_html(page.text).forms if "pay-button" in f["ids"]]
    assert forms, page.text[:1000]
    form = forms[0]
    assert form["method"] == "post"
    fields = dict(form["fields"], **form_extra)
    return requests.post(urllib.parse.urljoin(page.url, form["action"]), data=fields,
                         timeout=TIMEOUT, allow_redirects=False)


def wait_acked(harness, payment_no, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        t = harness.wx_trade(payment_no)
        if any(n["acked"] for n in t["notifications"]):
            return t
        time.sleep(0.1)
    raise AssertionError("notification for %s never acknowledged: %r" % (payment_no, t))


class AttrParser(html.parser.HTMLParser):
    """Attributes of every element by id, and whether an <svg> appeared."""

    def __init__(self):
        super().__init__()
        self.by_id = {}
        self.svg = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svg = True
        if a.get("id"):
            self.by_id[a["id"]] = dict(a, _tag=tag)


def attrs(text):
    p = AttrParser()
    p.feed(text)
    return p


# ------------------------------------------------------------------ native

def test_native_purchase_end_to_end(harness, stack_pair):
    st = stack_pair
    sign_type = WX_SIGN_TYPE[st.kind]
    user = unique_user("wx")
    c = wx_checkout(harness, st, user=user)
    assert c["status"] == "CREATED" and c["amount_fen"] == PRICES["course-c"]
    assert re.match(r"^weixin://wxpay/bizpayurl\?pr=[A-Za-z0-9]+$", c["code_url"]), c
    trade = harness.wx_trade(c["payment_no"])
    assert trade["trade_type"] == "NATIVE" and trade["trade_state"] == "NOTPAY"
    assert trade["total_fee"] == 9900          # integer fen on the wire
    assert trade["sign_type"] == sign_type     # the stack's configured algorithm
    assert trade["notify_url"] == st.base_url + "/notify/wechat"
    assert trade["code_url"] == c["code_url"]

    # the phone scans the code and pays (form POST /wechat/pay)
    resp = pay_on_phone(harness, "%s/wechat/scan?code_url=%s" % (
        harness.sandbox_url, urllib.parse.quote(c["code_url"], safe="")))
    assert resp.status_code in (200, 302), resp.text[:500]
    harness.wait_order_status(st, c["order_no"], "PAID")
    trade = wait_acked(harness, c["payment_no"])
    assert trade["trade_state"] == "SUCCESS"
    acked = [n for n in trade["notifications"] if n["acked"]]
    assert len(acked) == 1, trade["notifications"]
    reply = wx_parse(acked[0]["attempts"][-1]["body"])
    assert reply["return_code"] == "SUCCESS" and reply.get("return_msg") == "OK"

    pay = harness.payment(c["payment_no"])
    assert pay["status"] == "PAID" and pay["paid_at"] is not None
    assert pay["provider_trade_no"] == trade["transaction_id"]
    order = harness.order(c["order_no"])
    assert order["status"] == "PAID" and order["user_ref"] == user
    st_json = harness.order_status(st, c["order_no"])
    assert st_json["status"] == "PAID" and st_json["channel"] == "wechat"

    rows = harness.wx_notifications_for(c["payment_no"])
    accepted = [r for r in rows if r["outcome"] == "accepted"]
    assert len(accepted) == 1, rows
    raw = bytes(accepted[0]["raw_body"]).decode("utf-8")
    fields = wx_parse(raw)                     # stored raw: the XML as sent
    assert fields["out_trade_no"] == c["payment_no"]
    assert fields["transaction_id"] == trade["transaction_id"]
    assert fields["total_fee"] == "9900"
    assert fields["sign"] == wx_sign(fields, sign_type)

    log = st.paygate_log.read_text(errors="replace")
    assert re.search(r"POST /notify/wechat 200 .*%s" % c["payment_no"], log), log[-2000:]


def test_native_paid_through_the_control_api_records_once(harness, stack):
    """Every stack (lighttpd TCP/unix, Apache proxy_fcgi/fcgid; MD5 and
    HMAC-SHA256)."""
    c = wx_checkout(harness, stack, product="ebook-sql")
    assert harness.wx_trade(c["payment_no"])["sign_type"] == WX_SIGN_TYPE[stack.kind]
    harness.wx_pay(c["payment_no"])
    harness.wait_order_status(stack, c["order_no"], "PAID")
    wait_acked(harness, c["payment_no"])
    outcomes = [r["outcome"] for r in harness.wx_notifications_for(c["payment_no"])]
    assert outcomes.count("accepted") == 1, outcomes
    assert set(outcomes) <= {"accepted", "duplicate"}, outcomes


# ------------------------------------------------------------------- JSAPI

def test_jsapi_object_is_signed_and_pays(harness, stack_pair):
    st = stack_pair
    sign_type = WX_SIGN_TYPE[st.kind]
    c = wx_checkout(harness, st, method="jsapi", openid=OPENID)
    obj = c["jsapi"]
    assert isinstance(obj, dict), c
    assert set(obj) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}, obj
    assert obj["appId"] == WX_APPID
    assert re.match(r"^\d{10}$", obj["timeStamp"]) and abs(int(obj["timeStamp"]) - time.time()) < 300
    assert 1 <= len(obj["nonceStr"]) <= 32
    assert obj["signType"] == sign_type
    trade = harness.wx_trade(c["payment_no"])
    assert trade["trade_type"] == "JSAPI" and trade["openid"] == OPENID
    assert obj["package"] == "prepay_id=" + trade["prepay_id"]
    # our own v2 sign over the five keys, &key= appended
    five = {k: obj[k] for k in ("appId", "timeStamp", "nonceStr", "package", "signType")}
    assert obj["paySign"] == wx_sign(five, sign_type), wx_string_to_sign(five)
    tampered = dict(five, package="prepay_id=wx" + "0" * 30)
    assert obj["paySign"] != wx_sign(tampered, sign_type)

    # the sandbox's JSAPI cashier checks the same object, then pays
    resp = pay_on_phone(harness, harness.sandbox_url + "/wechat/jsapi?" + urllib.parse.urlencode(obj),
                        openid=OPENID)
    assert resp.status_code in (200, 302), resp.text[:500]
    harness.wait_order_status(st, c["order_no"], "PAID")
    pay = harness.payment(c["payment_no"])
    assert pay["method"] == "jsapi" and pay["status"] == "PAID"


def test_jsapi_without_openid_is_refused(harness, stack_pair):
    r = harness.checkout(stack_pair, channel="wechat", method="jsapi")
    assert r.status_code == 400, r.text
    assert "openid" in r.text


# --------------------------------------------------------------------- H5

def test_mweb_url_and_browser_redirect_back_to_the_status_page(harness, stack_pair):
    st = stack_pair
    c = wx_checkout(harness, st, method="mweb")
    assert c["mweb_url"].startswith(harness.sandbox_url + "/wechat/mweb?prepay_id="), c
    trade = harness.wx_trade(c["payment_no"])
    assert trade["trade_type"] == "MWEB"
    assert trade["spbill_create_ip"] == "127.0.0.1"   # the buyer's REMOTE_ADDR
    assert "h5_info" in (trade["request"].get("scene_info") or ""), trade["request"]

    # a browser's signed link: 302 to the H5 cashier, back to /pay/{payment_no}
    user = unique_user("h5")
    r = requests.get(signed_link(st.base_url, "ebook-sql", user, extra="&channel=wechat&method=mweb"),
                     allow_redirects=False, timeout=TIMEOUT, headers={"User-Agent": MOBILE_UA})
    assert r.status_code == 302, r.text[:300]
    loc = r.headers["Location"]
    assert loc.startswith(harness.sandbox_url + "/wechat/mweb?"), loc
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
    (order,) = harness.query("SELECT o.order_no, p.payment_no FROM orders o JOIN payments p "
                             "ON p.order_id=o.id WHERE o.user_ref=%s", user)
    assert q["redirect_url"] == "%s/pay/%s" % (st.base_url, order["payment_no"]), q
    assert q["prepay_id"] == harness.wx_trade(order["payment_no"])["prepay_id"]

    resp = pay_on_phone(harness, loc)
    assert resp.status_code == 302, resp.text[:500]
    assert resp.headers["Location"] == q["redirect_url"]
    harness.wait_order_status(st, order["order_no"], "PAID")
    page = requests.get(resp.headers["Location"], timeout=TIMEOUT)
    assert page.status_code == 200
    assert order["order_no"] in page.text and "PAID" in page.text


# ------------------------------------------------- verification failures

def test_forged_sign_is_refused_and_changes_nothing(harness, stack_pair):
    st = stack_pair
    sign_type = WX_SIGN_TYPE[st.kind]
    c = wx_checkout(harness, st)
    # signed with another key
    f = harness.wx_notification(c["payment_no"], 9900, sign_type,
                                key="ThisIsNotTheMerchantsApiKey00000")
    assert_fail_reply(harness.notify_wechat(st, f))
    # a genuine sign with one character changed
    f = harness.wx_notification(c["payment_no"], 9900, sign_type)
    f["sign"] = ("0" if f["sign"][0] != "0" else "1") + f["sign"][1:]
    assert_fail_reply(harness.notify_wechat(st, f))
    # no sign
    f = harness.wx_notification(c["payment_no"], 9900, sign_type)
    del f["sign"]
    assert_fail_reply(harness.notify_wechat(st, f))
    # a field changed after signing
    f = harness.wx_notification(c["payment_no"], 9900, sign_type, result_code="FAIL")
    f["result_code"] = "SUCCESS"
    assert_fail_reply(harness.notify_wechat(st, f))
    # signed with the other algorithm but claiming the configured one
    other = "MD5" if sign_type == "HMAC-SHA256" else "HMAC-SHA256"
    f = harness.wx_notification(c["payment_no"], 9900, other, with_sign_type_field=False)
    f["sign_type"] = sign_type
    assert_fail_reply(harness.notify_wechat(st, f))
    assert_unchanged(harness, c)
    rows = harness.wx_notifications_for(c["payment_no"])
    assert len(rows) == 5, rows
    assert {r["outcome"] for r in rows} <= {"bad_signature", "bad_input"}, rows
    assert sum(r["outcome"] == "bad_signature" for r in rows) >= 4, rows


def test_total_fee_mismatch_correctly_signed_is_refused(harness, stack_pair):
    st = stack_pair
    sign_type = WX_SIGN_TYPE[st.kind]
    c = wx_checkout(harness, st)   # 9900 fen
    for fee in (1, 9899, 9901, 990000):
        f = harness.wx_notification(c["payment_no"], fee, sign_type)
        assert_fail_reply(harness.notify_wechat(st, f))
    assert_unchanged(harness, c)
    outcomes = [r["outcome"] for r in harness.wx_notifications_for(c["payment_no"])]
    assert outcomes == ["amount_mismatch"] * 4, outcomes


def test_wrong_mch_id_or_appid_signed_is_refused(harness, stack_pair):
    st = stack_pair
    sign_type = WX_SIGN_TYPE[st.kind]
    c = wx_checkout(harness, st)
    for over in ({"mch_id": "1900000999"}, {"appid": "wx0000000000000bad"}):
        f = harness.wx_notification(c["payment_no"], 9900, sign_type, **over)
        assert over["mch_id" if "mch_id" in over else "appid"] != (WX_MCH_ID if "mch_id" in over
                                                                   else WX_APPID)
        assert_fail_reply(harness.notify_wechat(st, f))
    assert_unchanged(harness, c)
    outcomes = [r["outcome"] for r in harness.wx_notifications_for(c["payment_no"])]
    assert outcomes == ["mismatch"] * 2, outcomes


def test_unknown_out_trade_no_is_refused(harness, stack_pair):
    no = "NOSUCHWX" + uuid.uuid4().hex[:20]
    f = harness.wx_notification(no, 9900, WX_SIGN_TYPE[stack_pair.kind])
    assert_fail_reply(harness.notify_wechat(stack_pair, f))
    rows = harness.wx_notifications_for(no)
    assert [r["outcome"] for r in rows] == ["unknown_payment"], rows


def test_correct_own_notification_pays_and_repeats_are_duplicates(harness, stack_pair):
    st = stack_pair
    sign_type = WX_SIGN_TYPE[st.kind]
    c = wx_checkout(harness, st)
    f = harness.wx_notification(c["payment_no"], 9900, sign_type)
    body = wx_xml(f)
    reply = assert_success_reply(harness.notify_wechat(st, body))
    assert reply.get("return_msg") == "OK"
    assert harness.payment(c["payment_no"])["status"] == "PAID"
    assert_success_reply(harness.notify_wechat(st, body))
    rows = harness.wx_notifications_for(c["payment_no"])
    assert [r["outcome"] for r in rows] == ["accepted", "duplicate"], rows
    assert bytes(rows[0]["raw_body"]) == body.encode()


def test_50_concurrent_identical_notifications_record_one_payment(harness, stack_pair):
    st = stack_pair
    c = wx_checkout(harness, st)
    body = wx_xml(harness.wx_notification(c["payment_no"], 9900, WX_SIGN_TYPE[st.kind])).encode()
    n = 50
    barrier = threading.Barrier(n)
    results = [None] * n

    def send(i):
        s = requests.Session()
        barrier.wait()
        try:
            r = s.post(st.base_url + "/notify/wechat", data=body, timeout=60,
                       headers={"Content-Type": "text/xml"})
            results[i] = (r.status_code, wx_parse(r.text)["return_code"])
        except Exception as e:  # asserted below
            results[i] = ("error", repr(e))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    codes = [r[1] for r in results]
    assert all(x in ("SUCCESS", "FAIL") for x in codes), results
    assert "SUCCESS" in codes
    pay = harness.payment(c["payment_no"])
    assert pay["status"] == "PAID"
    order = harness.order(c["order_no"])
    assert order["status"] == "PAID"
    rows = harness.wx_notifications_for(c["payment_no"])
    outcomes = [r["outcome"] for r in rows]
    assert outcomes.count("accepted") == 1, outcomes
    assert set(outcomes) <= {"accepted", "duplicate"}, outcomes
    assert len(rows) >= codes.count("SUCCESS")
    assert len(harness.query("SELECT id FROM entitlements WHERE order_id=%s", order["id"])) == 1
    assert len(harness.query("SELECT id FROM webhook_events WHERE order_no=%s AND type='order.paid'",
                             c["order_no"])) == 1


def test_xxe_notification_leaks_nothing_and_changes_nothing(harness, stack_pair):
    st = stack_pair
    c = wx_checkout(harness, st)
    f = harness.wx_notification(c["payment_no"], 9900, WX_SIGN_TYPE[st.kind])
    inner = "".join("<%s><![CDATA[%s]]></%s>" % (k, v, k) for k, v in f.items()
                    if k != "out_trade_no")
    docs = [
        '<?xml version="1.0"?>\n<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        '<xml><out_trade_no>%s</out_trade_no><attach>&x;</attach>%s</xml>' % (c["payment_no"], inner),
        '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml>'
        '<out_trade_no>%s&x;</out_trade_no>%s</xml>' % (c["payment_no"], inner),
        '<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml><out_trade_no>%s</out_trade_no>%s</xml>'
        % (c["payment_no"], inner),
        # billion laughs, small
        '<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><xml><out_trade_no>%s</out_trade_no>'
        '<attach>&c;</attach>%s</xml>' % (c["payment_no"], inner),
    ]
    for doc in docs:
        t0 = time.time()
        r = harness.notify_wechat(st, doc)
        assert time.time() - t0 < 5
        assert "root:" not in r.text
        assert_fail_reply(r)
    assert_unchanged(harness, c)
    rows = harness.wx_notifications_for(c["payment_no"])
    assert len(rows) == len(docs), rows
    assert all(r["outcome"] in ("bad_input", "bad_signature") for r in rows), rows
    for r in rows:
        assert b"root:" not in bytes(r["raw_body"])
        assert "root:" not in (r["detail"] or "")
    for p in st.logs().values():
        assert "root:x:" not in p.read_text(errors="replace"), p


# ------------------------------------------------------------ channel=auto

@pytest.mark.parametrize("ua,openid,channel,method", [
    (WECHAT_UA, OPENID, "wechat", "jsapi"),
    (WECHAT_UA, None, "wechat", "native"),
    (MOBILE_UA, None, "alipay", "wap"),
    (DESKTOP_UA, None, "alipay", "page"),
])
def test_auto_channel_follows_the_user_agent(harness, stack_pair, ua, openid, channel, method):
    fields = {"product": "ebook-sql", "user": unique_user("auto"), "channel": "auto"}
    if openid:
        fields["openid"] = openid
    r = requests.post(stack_pair.base_url + "/checkout", data=fields, timeout=TIMEOUT,
                      headers={"Authorization": "Bearer " + API_KEY,
                               "User-Agent": ua})
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["channel"], c["method"]) == (channel, method), c
    # absent channel is auto too
    del fields["channel"]
    fields["user"] = unique_user("auto")
    r = requests.post(stack_pair.base_url + "/checkout", data=fields, timeout=TIMEOUT,
                      headers={"Authorization": "Bearer " + API_KEY, "User-Agent": ua})
    assert r.status_code == 201, r.text
    assert (r.json()["channel"], r.json()["method"]) == (channel, method)


@pytest.mark.parametrize("ua,method", [(MOBILE_UA, "mweb"), (DESKTOP_UA, "native"),
                                       (WECHAT_UA, "native")])
def test_wechat_without_method_follows_the_user_agent(harness, stack_pair, ua, method):
    r = requests.post(stack_pair.base_url + "/checkout", timeout=TIMEOUT,
                      data={"product": "ebook-sql", "user": unique_user("ua"), "channel": "wechat"},
                      headers={"Authorization": "Bearer " + API_KEY, "User-Agent": ua})
    assert r.status_code == 201, r.text
    assert r.json()["method"] == method


# ---------------------------------------------------------------- QR page

def test_qr_page_shows_the_code_then_expired_or_paid(harness, stack_pair):
    st = stack_pair
    c = wx_checkout(harness, st, product="ebook-sql")
    url = "%s/pay/%s" % (st.base_url, c["payment_no"])
    page = requests.get(url, timeout=TIMEOUT)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    p = attrs(page.text)
    assert p.svg, page.text[:500]
    assert p.by_id["qr"]["data-code"] == c["code_url"]
    assert p.by_id["pay"]["data-status-url"] == "%s/orders/%s" % (st.base_url, c["order_no"])
    # the way back to the shop names the order (the shop confirms it)
    assert p.by_id["pay"]["data-return-url"] == st.base_url + "/shop?order_no=" + c["order_no"]
    assert "19.90" in page.text
    assert "hidden" in p.by_id["expired"] and "hidden" in p.by_id["paid"]

    # paid: the page becomes the status page
    harness.wx_pay(c["payment_no"])
    harness.wait_order_status(st, c["order_no"], "PAID")
    page = requests.get(url, timeout=TIMEOUT)
    assert page.status_code == 200
    assert "PAID" in page.text and c["order_no"] in page.text
    assert "data-code" not in page.text

    # expired: another payment whose expires_at has passed
    c2 = wx_checkout(harness, st, product="ebook-sql")
    harness.query("UPDATE payments SET expires_at = UTC_TIMESTAMP() - INTERVAL 1 MINUTE "
                  "WHERE payment_no=%s", c2["payment_no"])
    page = requests.get("%s/pay/%s" % (st.base_url, c2["payment_no"]), timeout=TIMEOUT)
    assert page.status_code == 200
    p = attrs(page.text)
    assert "expired" in p.by_id and "hidden" not in p.by_id["expired"], page.text
    assert not p.svg and "data-code" not in page.text


def test_qr_page_of_an_unknown_payment_is_404(stack_pair):
    r = requests.get(stack_pair.base_url + "/pay/NOSUCHPAYMENT0000000000", timeout=TIMEOUT)
    assert r.status_code == 404
