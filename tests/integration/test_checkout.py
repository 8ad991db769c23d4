"""Checkout API: auth, signed browser links, idempotency, request limits,
errors, health, status and the demo storefront."""

import time
import urllib.parse
import uuid

import requests

from conftest import (API_KEY, TIMEOUT, error_code, parse_html, signed_link, unique_user)

AUTH = {"Authorization": "Bearer " + API_KEY}


def test_healthz_answers_ok(stack):
    r = requests.get(stack.base_url + "/healthz", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_checkout_without_bearer_is_401(harness, stack):
    r = harness.checkout(stack, auth=False)
    assert r.status_code == 401, r.text
    assert error_code(r) == "unauthorized"
    r = requests.post(stack.base_url + "/checkout", data={"product": "course-c", "user": "u1"},
                      headers={"Authorization": "Bearer wrong-" + API_KEY}, timeout=TIMEOUT)
    assert r.status_code == 401, r.text
    assert error_code(r) == "unauthorized"


def test_bearer_reaches_paygate_through_the_web_server(harness, stack):
    # 201 proves that Authorization crossed the web server (CGIPassAuth etc.)
    r = harness.checkout(stack)
    assert r.status_code == 201, r.text


def test_body_over_64k_is_413(stack):
    body = "product=course-c&user=u1&pad=" + "x" * (70 * 1024)
    r = requests.post(stack.base_url + "/checkout", data=body, timeout=TIMEOUT,
                      headers=dict(AUTH, **{"Content-Type": "application/x-www-form-urlencoded"}))
    assert r.status_code == 413, r.text[:300]
    assert error_code(r) == "body_too_large"


def test_bad_percent_encoding_is_400(stack_lp):
    r = requests.post(stack_lp.base_url + "/checkout", data="product=course-c&user=%zz",
                      timeout=TIMEOUT,
                      headers=dict(AUTH, **{"Content-Type": "application/x-www-form-urlencoded"}))
    assert r.status_code == 400, r.text
    assert error_code(r) == "invalid_request"
    r = requests.post(stack_lp.base_url + "/checkout", data="product=course-c&user=ab%4",
                      timeout=TIMEOUT,
                      headers=dict(AUTH, **{"Content-Type": "application/x-www-form-urlencoded"}))
    assert r.status_code == 400, r.text
    assert error_code(r) == "invalid_request"


def test_checkout_field_errors_are_400_with_their_codes(harness, stack_lp):
    cases = [
        (dict(product=None), "missing_field"),
        (dict(user=None), "missing_field"),
        (dict(product="no-such-sku"), "unknown_product"),
        (dict(user="bad user!"), "invalid_field"),
        (dict(user="x" * 65), "invalid_field"),
        (dict(method="telepathy"), "unsupported_method"),
        (dict(channel="wechat", method="jsapi"), "unsupported_method"),   # no openid
        (dict(channel="alipay", method="native"), "unsupported_method"),
    ]
    for over, code in cases:
        kw = dict(product="course-c", user=unique_user())
        kw.update(over)
        r = harness.checkout(stack_lp, **kw)
        assert r.status_code == 400, (over, r.status_code, r.text)
        assert error_code(r) == code, (over, r.text)
        assert r.json()["error"].get("message"), r.text


def test_idempotent_checkout_same_request_id(harness, stack_pair):
    rid = "req-" + uuid.uuid4().hex
    user = unique_user()
    r1 = harness.checkout(stack_pair, user=user, request_id=rid)
    assert r1.status_code == 201, r1.text
    r2 = harness.checkout(stack_pair, user=user, request_id=rid)
    assert r2.status_code == 200, r2.text
    a, b = r1.json(), r2.json()
    assert a["order_no"] == b["order_no"]
    assert a["payment_no"] == b["payment_no"]
    assert b["status"] == "CREATED" and b["amount_fen"] == a["amount_fen"]
    # same key, other fields
    r3 = harness.checkout(stack_pair, user=user, product="ebook-sql", request_id=rid)
    assert r3.status_code == 409, r3.text
    assert error_code(r3) == "idempotency_conflict"
    r4 = harness.checkout(stack_pair, user=unique_user(), request_id=rid)
    assert r4.status_code == 409, r4.text
    assert len(harness.query("SELECT id FROM orders WHERE request_id=%s", rid)) == 1


def test_signed_link_redirects_to_the_gateway(harness, stack):
    user = unique_user("link")
    r = requests.get(signed_link(stack.base_url, "course-c", user), allow_redirects=False,
                     timeout=TIMEOUT)
    assert r.status_code == 302, r.text[:300]
    loc = r.headers["Location"]
    assert loc.startswith(harness.gateway + "?"), loc
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
    assert q["method"] == "alipay.trade.page.pay"
    assert len(harness.query("SELECT id FROM orders WHERE user_ref=%s", user)) == 1


def test_signed_link_by_post_form(harness, stack_lp):
    user = unique_user("link")
    url = signed_link(stack_lp.base_url, "ebook-sql", user)
    path, _, query = url.partition("?")
    r = requests.post(path, data=dict(urllib.parse.parse_qsl(query)), allow_redirects=False,
                      timeout=TIMEOUT)
    assert r.status_code == 302, r.text[:300]
    assert r.headers["Location"].startswith(harness.gateway + "?")


def test_expired_signed_link_is_403_link_expired(stack_lp):
    url = signed_link(stack_lp.base_url, "course-c", unique_user(), expires=int(time.time()) - 60)
    r = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403, r.text[:300]
    assert "link_expired" in r.text


def test_tampered_signed_link_is_403_bad_signature(stack_lp):
    user = unique_user()
    url = signed_link(stack_lp.base_url, "ebook-sql", user)
    for bad in (url.replace("product=ebook-sql", "product=course-c"),
                url.replace("user=" + user, "user=" + user + "x"),
                url.replace("expires=", "expires=1"),
                url[:-1] + ("0" if url[-1] != "0" else "1"),
                signed_link(stack_lp.base_url, "ebook-sql", user, secret="not-the-secret")):
        r = requests.get(bad, allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 403, (bad, r.status_code, r.text[:300])
        assert "bad_signature" in r.text, bad


def test_unknown_order_and_unknown_path_are_404(stack_lp):
    r = requests.get(stack_lp.base_url + "/orders/NOSUCHORDER0000000000000000", timeout=TIMEOUT)
    assert r.status_code == 404
    assert error_code(r) == "not_found"
    r = requests.get(stack_lp.base_url + "/no/such/route", timeout=TIMEOUT)
    assert r.status_code == 404
    assert error_code(r) == "not_found"


def test_wrong_method_is_405(stack_lp):
    r = requests.delete(stack_lp.base_url + "/checkout", headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 405, r.text
    assert error_code(r) == "method_not_allowed"
    r = requests.get(stack_lp.base_url + "/notify/alipay", timeout=TIMEOUT)
    assert r.status_code == 405, r.text


def test_order_status_of_a_new_order(harness, stack_lp):
    c = harness.new_payment(stack_lp, product="ebook-sql")
    st = harness.order_status(stack_lp, c["order_no"])
    assert st["order_no"] == c["order_no"]
    assert st["status"] == "CREATED"
    assert st["amount_fen"] == 1990 and st["refunded_fen"] == 0
    assert st["channel"] == "alipay"
    assert st.get("paid_at") in (None, "")


def test_shop_lists_products_with_working_buy_links(harness, stack_pair):
    r = requests.get(stack_pair.base_url + "/shop", timeout=TIMEOUT)
    assert r.status_code == 200
    assert "text/html" in r.headers.get("Content-Type", "")
    assert "C for grown-ups" in r.text
    assert "SQL, the hard parts" in r.text
    links = [urllib.parse.urljoin(r.url, h) for h in parse_html(r.text).links]
    buy = [u for u in links if urllib.parse.urlsplit(u).path == "/pay/checkout"]
    assert len(buy) >= 2, links
    skus, methods = set(), set()
    for u in buy:
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(u).query))
        assert {"product", "user", "expires", "sig"} <= set(q), u
        skus.add(q["product"])
        methods.add(q.get("method", "page"))
        g = requests.get(u, allow_redirects=False, timeout=TIMEOUT)
        if q.get("method") in ("qr", "native"):
            # the QR page (precreate at the sandbox), directly or by redirect
            if g.status_code in (302, 303):
                assert g.headers["Location"].startswith(stack_pair.base_url + "/pay/"), \
                    g.headers["Location"]
                g = requests.get(urllib.parse.urljoin(u, g.headers["Location"]), timeout=TIMEOUT)
            assert g.status_code == 200, (u, g.text[:300])
            assert "text/html" in g.headers.get("Content-Type", "")
        elif q.get("method") == "mweb":
            assert g.status_code == 302, (u, g.text[:300])
            assert g.headers["Location"].startswith(harness.sandbox_url + "/wechat/mweb?"), \
                g.headers["Location"]
        else:
            assert g.status_code == 302, (u, g.text[:300])
            assert g.headers["Location"].startswith(harness.gateway + "?")
    assert {"course-c", "ebook-sql"} <= skus
    assert {"page", "wap", "qr", "native", "mweb"} <= methods, methods
    assert "Pay with WeChat" in r.text


def test_disabled_channel_is_400_channel_disabled(harness):
    """A config without WeChat: asking for it is a 400 that says so, and the
    shop offers no WeChat links."""
    st = harness.new_stack("lighttpd", name="no-wechat", fcgi_children=1, wechat_enabled=False)
    st.start()
    try:
        for over in (dict(channel="wechat", method="native"), dict(channel="wechat", method=None)):
            r = harness.checkout(st, **over)
            assert r.status_code == 400, (over, r.text)
            assert error_code(r) == "channel_disabled", (over, r.text)
        shop = requests.get(st.base_url + "/shop", timeout=TIMEOUT).text
        assert "channel=wechat" not in shop
        assert "channel=alipay" in shop
    finally:
        st.stop()
