"""A person buying in the demo-style shop with a real browser: Debian's
headless Chromium driven by playwright-core (tests/browser/shop.js; no
browser is ever downloaded). Skipped when /usr/bin/chromium or node is
missing."""

import json
import os
import shutil
import subprocess
import urllib.parse

import pytest

from conftest import REPO, RUN

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


def run_browser(harness, st, mode, name, product="course-c"):
    profile = RUN / "browser" / name
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    user = "browser-%s" % name
    cmd = ["node", str(BROWSER_DIR / "shop.js"), mode, "--shop", "%s/shop?user=%s" % (st.base_url, user),
           "--sandbox", harness.sandbox_url, "--user-data-dir", str(profile), "--product", product]
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


def test_browser_buys_with_alipay_page(harness, lighttpd_stack, node_modules):
    st = lighttpd_stack
    seen, user = run_browser(harness, st, "alipay", "alipay", product="ebook-sql")
    assert seen["cashier_url"].startswith(harness.gateway + "?"), seen
    assert seen["total_amount"] == "19.90"
    assert seen["return_url"].startswith(st.base_url + "/return/alipay?"), seen
    assert seen["status"] == "PAID", seen
    order = harness.order(seen["order_no"])
    assert order["status"] == "PAID" and order["user_ref"] == user
