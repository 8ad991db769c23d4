"""A person buying in the demo-style shop with a real browser: Debian's
headless Chromium driven by playwright-core (tests/browser/shop.js; no
browser is ever downloaded). Skipped when /usr/bin/chromium or node is
missing."""

import datetime
import json
import os
import shutil
import subprocess
import time
import urllib.parse

import pytest

import requests

from conftest import API_KEY, REPO, RUN, TIMEOUT

BROWSER_DIR = REPO / "tests" / "browser"
pytestmark = pytest.mark.skipif(
    not os.access("/usr/bin/chromium", os.X_OK) or not shutil.which("node"),
    reason="needs Debian's chromium (scripts/deps.sh) and node")


@pytest.fixture(scope="module")
def node_modules():
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=str(BROWSER_DIR), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-3000:]
    return BROWSER_DIR / "node_modules"


def run_browser(harness, st, mode, name, product="course-c", lang="zh-CN"):
    profile = RUN / "browser" / name
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    user = "browser-%s" % name
    cmd = ["node", str(BROWSER_DIR / "shop.js"), mode, "--shop", "%s/shop?user=%s" % (st.base_url, user),
           "--sandbox", harness.sandbox_url, "--user-data-dir", str(profile), "--product", product,
           "--lang", lang]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180,
                       env=dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1"))
    (RUN / "browser" / ("%s.log" % name)).write_text(r.stdout + "\n" + r.stderr)
    assert r.returncode == 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout[-3000:], r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1]), user


def test_browser_buys_a_course_with_wechat_qr(harness, lighttpd_stack, node_modules):
    st = lighttpd_stack
    seen, user = run_browser(harness, st, "wechat", "wechat")
    assert seen["shop_has_wechat_column"]
    assert seen["link_text"] == "QR code"
    assert seen["code_url"].startswith("weixin://wxpay/bizpayurl?pr="), seen
    assert seen["status_before"] == "CREATED"
    assert seen["phone_amount"] == "9900"
    # the QR page went on by itself to the shop's return_url
    assert urllib.parse.urlsplit(seen["final_url"]).path == "/pay/shop", seen
    order = harness.order(seen["order_no"])
    assert order["status"] == "PAID" and order["user_ref"] == user
    pay = harness.query("SELECT * FROM payments WHERE order_id=%s", order["id"])[0]
    assert pay["channel"] == "wechat" and pay["method"] == "native" and pay["status"] == "PAID"
    assert harness.wx_trade(pay["payment_no"])["code_url"] == seen["code_url"]
    # the buyer's pages spoke Chinese (the default, and the browser's
    # language): amount in yuan, the deadline in Beijing time
    assert seen["qr_lang"] == "zh-CN" and seen["qr_title"] == "微信支付", seen
    assert seen["qr_amount"] == "¥99.00", seen
    assert seen["qr_status_text"] == "待支付", seen
    beijing = pay["expires_at"] + datetime.timedelta(hours=8)   # naive UTC in the DB
    assert seen["qr_payable_until"] == "请在 %s（北京时间） 前完成支付。" % beijing.strftime(
        "%Y-%m-%d %H:%M"), seen
    # back in the shop: confirmed and owned
    assert_shop_shows_owned(seen, user, "course-c", order["order_no"])


def assert_shop_shows_owned(seen, user, sku, order_no):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(seen["final_url"]).query)
    assert q == {"order_no": [order_no]}, seen
    assert seen["shop_confirmed"].startswith("Purchase confirmed:"), seen
    assert order_no in seen["shop_confirmed"], seen
    assert seen["shop_buyer"] == user, seen
    assert seen["shop_owned"] and seen["shop_owned_count"] == 1, seen


def owned_skus(st, user):
    """The demo shop's owned marks for USER, and GET /entitlements'."""
    page = requests.get("%s/shop?user=%s" % (st.base_url, user), timeout=TIMEOUT).text
    marks = set()
    for row in page.split("<tr data-sku=\"")[1:]:
        sku, _, rest = row.partition("\"")
        if 'class="owned"' in rest.split("</tr>")[0]:
            marks.add(sku)
    ent = requests.get("%s/entitlements" % st.base_url, params={"user": user},
                       headers={"Authorization": "Bearer " + API_KEY}, timeout=TIMEOUT).json()
    return marks, {e["product"] for e in ent["entitlements"]}


def test_browser_buys_with_alipay_page(harness, lighttpd_stack, node_modules):
    """In English (the browser asks for it): the return page, then the shop
    shows the course owned; a full refund takes the mark away."""
    st = lighttpd_stack
    seen, user = run_browser(harness, st, "alipay", "alipay", product="ebook-sql", lang="en")
    assert seen["cashier_url"].startswith(harness.gateway + "?"), seen
    assert seen["total_amount"] == "19.90"
    assert seen["return_url"].startswith(st.base_url + "/return/alipay?"), seen
    assert seen["status"] == "PAID", seen
    order = harness.order(seen["order_no"])
    assert order["status"] == "PAID" and order["user_ref"] == user
    assert seen["return_lang"] == "en" and seen["final_title"] == "Payment received", seen
    assert seen["return_amount"] == "¥19.90" and seen["return_status_text"] == "paid", seen
    assert_shop_shows_owned(seen, user, "ebook-sql", order["order_no"])
    assert owned_skus(st, user) == ({"ebook-sql"}, {"ebook-sql"})

    r = requests.post("%s/orders/%s/refund" % (st.base_url, order["order_no"]),
                      data={"request_id": "browser-refund-1"},
                      headers={"Authorization": "Bearer " + API_KEY}, timeout=TIMEOUT)
    assert r.status_code in (200, 201), r.text
    deadline = time.time() + TIMEOUT
    while harness.order(order["order_no"])["status"] != "REFUNDED" and time.time() < deadline:
        time.sleep(0.3)
    assert harness.order(order["order_no"])["status"] == "REFUNDED"
    assert owned_skus(st, user) == (set(), set())


def test_browser_buys_with_card_through_stripe_checkout(harness, node_modules):
    """The demo shop's "Card" link: Stripe Checkout (the sandbox's hosted
    page), Pay, back through our return page to the shop, owned."""
    ini = ("[stripe]\nenabled = true\nsecret_key = sk_test_paygatesandbox\n"
           "webhook_secret = whsec_paygatesandboxsecret\napi_base = %s\ncurrency = cny\n" % harness.sandbox_url)
    st = harness.new_stack("lighttpd", name="browser-card", extra_ini=ini)
    st.start()
    try:
        r = harness.sandbox_post("/_sandbox/stripe/endpoint", {"url": st.base_url + "/notify/stripe"})
        assert r.status_code == 200, r.text
        seen, user = run_browser(harness, st, "card", "card")
        assert seen["shop_has_card_column"] and seen["link_text"] == "Card", seen
        assert seen["checkout_url"].startswith(harness.sandbox_url + "/stripe/pay/cs_test_"), seen
        assert seen["checkout_amount"] == "99.00 CNY", seen
        order = harness.order(seen["order_no"])
        assert order["status"] == "PAID" and order["user_ref"] == user
        pay = harness.query("SELECT * FROM payments WHERE order_id=%s", order["id"])[0]
        assert pay["channel"] == "stripe" and pay["method"] == "checkout" and pay["status"] == "PAID"
        assert_shop_shows_owned(seen, user, "course-c", order["order_no"])
    finally:
        st.stop()
