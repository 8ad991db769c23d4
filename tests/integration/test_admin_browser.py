"""The operator's console with a real browser (Debian's headless Chromium
driven by playwright-core, tests/browser/admin.js), in Chinese and in
English: sign in, find an order, refund part of it with the confirmation
step, see the refund and the ledger move, sign out. No script runs and the
Content-Security-Policy is never violated. Skipped when /usr/bin/chromium or
node is missing."""

import json
import os
import shutil
import subprocess
import urllib.parse

import pytest

from conftest import REPO, RUN
from test_admin import PASSWORD, add_account, new_user, paid_order
from test_browser import node_modules  # noqa: F401  (fixture)

BROWSER_DIR = REPO / "tests" / "browser"
pytestmark = pytest.mark.skipif(
    not os.access("/usr/bin/chromium", os.X_OK) or not shutil.which("node"),
    reason="needs Debian's chromium (scripts/deps.sh) and node")

WORDS = {
    "zh-CN": {"login": "登录控制台 - paygate 控制台", "signed_in": "当前用户：%s", "order": "订单 %s",
              "confirm": "确认向买家退款 ¥12.34？", "done": "退款已提交，状态：SUCCEEDED",
              "bye": "已退出登录。", "refundable": "可退金额：¥99.00"},
    "en": {"login": "Sign in to the console - paygate console", "signed_in": "Signed in as %s",
           "order": "Order %s", "confirm": "Refund ¥12.34 to the buyer?",
           "done": "Refund submitted, status: SUCCEEDED", "bye": "You are signed out.",
           "refundable": "Refundable: ¥99.00"},
}


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_browser_signs_in_refunds_with_confirmation_and_signs_out(harness, lighttpd_stack, node_modules,  # noqa: F811
                                                                   lang):
    st = lighttpd_stack
    user = new_user("browser-op")
    add_account(harness, user, "operator")
    order = paid_order(harness, st, "course-c")
    profile = RUN / "browser" / ("admin-" + lang)
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    cmd = ["node", str(BROWSER_DIR / "admin.js"), "--console", st.base_url + "/admin", "--user", user,
           "--password", PASSWORD, "--order", order["order_no"], "--amount", "1234",
           "--user-data-dir", str(profile), "--lang", lang]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180,
                       env=dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1"))
    (RUN / "browser" / ("admin-%s.log" % lang)).write_text(r.stdout + "\n" + r.stderr)
    assert r.returncode == 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout[-3000:], r.stderr[-3000:])
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    w = WORDS[lang]
    assert urllib.parse.urlsplit(seen["login_url"]).path == "/pay/admin/login", seen
    assert seen["login_title"] == w["login"] and seen["html_lang"] == lang, seen
    assert seen["signed_in_as"].startswith(w["signed_in"] % user), seen
    assert seen["chart_bars"] == 30, seen
    assert seen["order_title"] == w["order"] % order["order_no"], seen
    assert seen["refundable"] == w["refundable"], seen
    assert seen["confirm_question"] == w["confirm"], seen
    assert seen["action_result"] == w["done"], seen
    assert seen["refund_rows"] == 1 and seen["refunded_fen"] == "1234", seen
    assert seen["ledger_rows_after"] > seen["ledger_rows_before"] > 0, seen
    assert seen["logout_message"] == w["bye"], seen
    assert urllib.parse.urlsplit(seen["after_logout_url"]).path == "/pay/admin/login", seen
    assert seen["problems"] == [], seen
    row = harness.query("SELECT r.* FROM refunds r JOIN orders o ON o.id=r.order_id WHERE o.order_no=%s",
                        order["order_no"])
    assert len(row) == 1 and row[0]["amount_fen"] == 1234 and row[0]["reason"] == "browser test"
