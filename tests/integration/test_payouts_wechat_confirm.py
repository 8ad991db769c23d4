"""WeChat payouts end to end (SPEC §12.3): the payee's real name (user_name,
RSA-OAEP under the WeChat Pay public key, Wechatpay-Serial), the payee's
confirmation page GET /payouts/{payout_no}/confirm?token=..., and the
transfer's notification MCHTRANSFER.BILL.FINISHED at POST
/notify/wechat/transfer (recorded exactly once, acknowledged after commit;
forgeries refused with nothing changed). The sandbox (public-key mode)
decrypts user_name with its own key and checks it against the name it knows
for the openid; on SUCCESS/FAIL it sends the notification to the
transfer's notify_url. Setup as in test_payouts_wechat.py: own creator,
own day in 2004."""

import base64
import datetime
import hashlib
import html
import hmac
import json
import os
import random
import shutil
import subprocess
import threading
import time

import pytest

from conftest import CHECKOUT_SECRET, REPO, RUN, interop_node_modules
from test_lifecycle import faults
from test_payouts_wechat import PAYOUTS
from test_wechat_v3 import V3

BIG_PRICE = 400000                       # 4000 yuan: the creator's share is over 2000 yuan
SMALL_PRICE = 9900


def share(price):
    fee = (price * 60 + 5000) // 10000
    return (price - fee) * 7000 // 10000


def with_mp(v, secret=True):
    """[wechat] mp_api_base (the sandbox) and app_secret (True = the
    sandbox's Official Account's, None = left out) in the stack's config."""
    inner = v.stack.config_writer
    if secret is True:
        secret = v.harness.sandbox_get("/_sandbox/wechat_mp/state").json()["app_secret"]

    def write(st):
        inner(st)
        lines = "mp_api_base = %s\n" % v.harness.wx_gateway
        if secret is not None:
            lines += "app_secret = %s\n" % secret
        st.config.write_text(st.config.read_text().replace("[wechat]\n", "[wechat]\n" + lines, 1))
    v.stack.config_writer = write
    return v


@pytest.fixture(scope="module")
def wx(harness):
    v = with_mp(V3(harness, name="wxconfirm"))
    v.stack.start()
    v.cli.write_text(v.cli.read_text() + PAYOUTS)
    try:
        yield v
    finally:
        v.stack.stop()


_DAYS = iter(range(random.randint(0, 150), 366))


def _day():
    return (datetime.date(2004, 1, 1) + datetime.timedelta(days=next(_DAYS))).isoformat()


def _creator(harness, wx, price, real_name=None):
    cid = "wc" + harness.query("SELECT LOWER(HEX(RANDOM_BYTES(5))) AS h")[0]["h"]
    args = ["creator", "add", "--id", cid, "--name", "Payee " + cid, "--wechat-openid", "o-ok" + cid]
    if real_name:
        args += ["--real-name", real_name]
    wx.ctl(*args)
    wx.ctl("product", "add", "--sku", "wc-" + cid, "--title", "Confirm course", "--price-fen", str(price),
           "--creator", cid)
    return cid


def _settled(harness, wx, cid, price):
    c = harness.new_payment(wx.stack, product="wc-" + cid, channel="alipay", method="qr")
    r = harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    assert r.status_code == 200, r.text
    harness.wait_order_status(wx.stack, c["order_no"], "PAID")
    day = _day()
    harness.query("UPDATE ledger_entries SET available_on = %s WHERE creator_id = %s", day, cid)
    harness.ctl_json("settle", "--date", day, config=wx.cli)
    batch = harness.query("SELECT * FROM settlement_batches WHERE creator_id = %s", cid)
    assert len(batch) == 1 and batch[0]["amount_fen"] == share(price), batch
    return day, batch[0]["batch_no"]


def _payout(harness, wx, day):
    return harness.ctl_json("payout", "--date", day, config=wx.cli)


def _row(harness, batch_no):
    return harness.query("SELECT * FROM payouts WHERE payout_no = %s", batch_no)[0]


def _bill(harness, batch_no, gen=0):
    """The sandbox's bill of the payout's gen-th attempt (out_bill_no gets
    R<gen> after gen retries)."""
    t = harness.sandbox_get("/_sandbox/wechat_v3/transfers").json()
    bill_no = batch_no.replace("-", "") + ("R%d" % gen if gen else "")
    bills = [x for x in t["transfers"] if x["out_bill_no"] == bill_no]
    return bills[0] if bills else None


def _ledger_moves(harness, batch_no):
    return harness.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE txn_id = %s", "payout:" + batch_no)[0]["n"]


def _token(payout_no):
    return hmac.new(CHECKOUT_SECRET.encode(), ("payout-confirm:" + payout_no).encode(), hashlib.sha256).hexdigest()


def _wait(pred, what, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def _waiting(harness, wx, price=SMALL_PRICE, real_name=None):
    """A payout waiting for its payee (WAIT_USER_CONFIRM, package_info kept)."""
    cid = _creator(harness, wx, price, real_name)
    day, batch_no = _settled(harness, wx, cid, price)
    with faults(harness, wx_transfer_confirm=True):
        out = _payout(harness, wx, day)
    assert out["pending"] == 1, out
    row = _row(harness, batch_no)
    assert row["status"] == "WAITING_CONFIRMATION" and row["package_info"], row
    return cid, day, batch_no


# ---- the payee's real name -------------------------------------------------


def test_from_2000_yuan_without_real_name_refused_locally_then_retry_pays(harness, wx):
    cid = _creator(harness, wx, BIG_PRICE)
    day, batch_no = _settled(harness, wx, cid, BIG_PRICE)
    assert share(BIG_PRICE) >= 200000
    out = _payout(harness, wx, day)
    assert out["failed"] == 1 and out["paid"] == 0, out
    row = _row(harness, batch_no)
    assert row["status"] == "FAILED", row
    assert "--real-name" in row["reason"] and "payout retry " + batch_no in row["reason"], row
    assert _bill(harness, batch_no) is None          # nothing was sent to WeChat
    assert _ledger_moves(harness, batch_no) == 0
    harness.sandbox_post("/_sandbox/wechat_v3/transfer_payee", {"openid": "o-ok" + cid, "name": "张三丰"})
    wx.ctl("creator", "update", "--id", cid, "--real-name", "张三丰")
    wx.ctl("payout", "retry", batch_no)
    out = _payout(harness, wx, day)
    assert out["paid"] == 1, out
    assert _bill(harness, batch_no) is None
    bill = _bill(harness, batch_no, 1)     # a retry is a new bill
    # the sandbox decrypted user_name with its WeChat Pay private key
    assert bill["user_name"] == "张三丰" and bill["state"] == "SUCCESS", bill
    assert _row(harness, batch_no)["status"] == "PAID"
    assert _ledger_moves(harness, batch_no) == 2
    # the name never reaches paygate's logs
    for log in (RUN / "paygatectl-wxv3.log", harness.run / "paygatectl-wxv3.log"):
        if log.exists():
            assert "张三丰" not in log.read_text(errors="replace")


def test_real_name_that_is_not_the_payees_fails_with_the_reason(harness, wx):
    cid = _creator(harness, wx, SMALL_PRICE, real_name="李四")
    harness.sandbox_post("/_sandbox/wechat_v3/transfer_payee", {"openid": "o-ok" + cid, "name": "王五"})
    day, batch_no = _settled(harness, wx, cid, SMALL_PRICE)
    out = _payout(harness, wx, day)
    assert out["failed"] == 1, out
    row = _row(harness, batch_no)
    assert row["status"] == "FAILED" and "NAME_NOT_CORRECT" in row["reason"], row
    assert _bill(harness, batch_no)["user_name"] == "李四"


def test_retry_after_a_failed_bill_pays_under_a_new_bill(harness, wx):
    """WeChat answers a repeated out_bill_no with the bill it has, so a retry
    under the failed bill's number can never pay (it used to come back FAILED
    again). A retry sends a new bill, <batch>R1; a late notification of the
    failed bill is acknowledged and changes nothing."""
    cid = _creator(harness, wx, SMALL_PRICE, real_name="李四")
    harness.sandbox_post("/_sandbox/wechat_v3/transfer_payee", {"openid": "o-ok" + cid, "name": "王五"})
    day, batch_no = _settled(harness, wx, cid, SMALL_PRICE)
    assert _payout(harness, wx, day)["failed"] == 1
    assert _bill(harness, batch_no)["state"] == "FAIL"
    wx.ctl("creator", "update", "--id", cid, "--real-name", "王五")
    wx.ctl("payout", "retry", batch_no)
    row = _row(harness, batch_no)
    assert row["status"] == "PENDING" and row["bill_gen"] == 1 and row["sent"] == 0, row
    out = _payout(harness, wx, day)
    assert out["paid"] == 1, out
    first, second = _bill(harness, batch_no), _bill(harness, batch_no, 1)
    assert first["state"] == "FAIL" and second["state"] == "SUCCESS" and second["user_name"] == "王五", second
    row = _row(harness, batch_no)
    assert row["status"] == "PAID" and row["provider_order_id"] == second["transfer_bill_no"], row
    assert _ledger_moves(harness, batch_no) == 2
    # the failed bill's notification, late: acknowledged, ignored
    out = harness.sandbox_post("/_sandbox/wechat_v3/transfer_notify",
                               {"out_bill_no": batch_no.replace("-", "")}).json()
    assert out["acked"] and out["http_status"] == 204, out
    assert _row(harness, batch_no)["status"] == "PAID" and _ledger_moves(harness, batch_no) == 2
    notes = harness.query("SELECT outcome, detail FROM notifications WHERE payment_no = %s ORDER BY id", batch_no)
    assert notes[-1]["outcome"] == "ignored" and "earlier bill" in notes[-1]["detail"], notes
    # a third payout run sends nothing
    assert _payout(harness, wx, day)["paid"] == 0
    calls = harness.sandbox_get("/_sandbox/wechat_v3/transfers").json()["calls"]
    assert calls.get(batch_no.replace("-", "")) == 1 and calls.get(batch_no.replace("-", "") + "R1") == 1, calls


def test_user_name_ciphertext_decrypts_with_independent_implementations(harness, wx):
    """Our OAEP ciphertext, as WeChat received it, opened by wechatpay-axios-plugin's
    Rsa.decrypt (node crypto, RSA_PKCS1_OAEP_PADDING, oaepHash sha1) and by
    openssl pkeyutl with OAEP (SHA-1)."""
    cid = _creator(harness, wx, SMALL_PRICE, real_name="赵六")
    day, batch_no = _settled(harness, wx, cid, SMALL_PRICE)
    assert _payout(harness, wx, day)["paid"] == 1
    cipher = _bill(harness, batch_no)["user_name_cipher"]
    assert cipher and len(base64.b64decode(cipher)) == 256
    pub = wx.cfg["files"]["wechatpay_public_key"]
    private = os.path.join(os.path.dirname(pub), "wechatpay_pub_private.pem")
    raw = RUN / ("oaep-%s.bin" % cid)
    raw.write_bytes(base64.b64decode(cipher))
    r = subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", private, "-in", str(raw),
                        "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1",
                        "-pkeyopt", "rsa_mgf1_md:sha1"], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout.decode() == "赵六", r
    interop = interop_node_modules("wechatpay-axios-plugin")
    script = ("const {Rsa}=require('wechatpay-axios-plugin');const fs=require('fs');"
              "const key=Rsa.from(fs.readFileSync(process.argv[1],'utf8'),Rsa.KEY_TYPE_PRIVATE);"
              "process.stdout.write(Rsa.decrypt(process.argv[2],key));")
    r = subprocess.run(["node", "-e", script, private, cipher], cwd=str(interop), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "赵六", r


# ---- the confirmation page ---------------------------------------------------


def test_confirm_page_link_token_and_states(harness, wx):
    import requests
    cid, day, batch_no = _waiting(harness, wx)
    listed = harness.ctl_json("payout", "list", "--status", "WAITING_CONFIRMATION", config=wx.cli)
    mine = [p for p in listed if p["payout_no"] == batch_no][0]
    url = "%s/payouts/%s/confirm?token=%s" % (wx.stack.base_url, batch_no, _token(batch_no))
    assert mine["confirm_url"] == url, mine
    text = harness.ctl("payout", "list", "--status", "WAITING_CONFIRMATION", config=wx.cli).stdout
    assert url in text
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store", r
    assert 'lang="zh-CN"' in r.text and "确认收款" in r.text
    row = _row(harness, batch_no)
    assert 'data-package="%s"' % row["package_info"] in r.text
    cfg = wx.cfg
    assert 'data-mch-id="%s"' % cfg["mchid"] in r.text and 'data-app-id="%s"' % cfg["appid"] in r.text
    assert "requestMerchantTransfer" in r.text and "o-ok" not in r.text   # the openid is not shown
    # the console's payout table links it (WAITING_CONFIRMATION only), the package is not shown
    from test_admin import signed_in
    console, _user = signed_in(harness, wx.stack, "viewer")
    page = console.get("/settlement?status=WAITING_CONFIRMATION")
    assert page.status_code == 200, page.text[:500]
    row_html = page.text.split('data-payout="%s"' % batch_no, 1)[1].split("</tr>", 1)[0]
    assert 'class="confirm-link"' in row_html and html.escape(url) in row_html, row_html
    assert row["package_info"] not in page.text
    pending = console.get("/settlement?status=PENDING").text
    assert 'data-payout="%s"' % batch_no not in pending
    # a wrong, missing, or another payout's token: the same 404 as an unknown payout
    for bad in (url[:-1] + ("0" if url[-1] != "0" else "1"), url.split("?")[0],
                "%s/payouts/%s/confirm?token=%s" % (wx.stack.base_url, batch_no, _token("S20040101-XXXXXXXX")),
                "%s/payouts/S20040101-XXXXXXXX/confirm?token=%s" % (wx.stack.base_url, _token("S20040101-XXXXXXXX"))):
        r = requests.get(bad, timeout=10)
        assert r.status_code == 404 and "package" not in r.text, (bad, r.status_code)
    # the payee confirms; the notification makes it PAID; the page says so
    r = harness.sandbox_post("/_sandbox/wechat_v3/transfer_confirm",
                             {"mchId": cfg["mchid"], "appId": cfg["appid"], "package": row["package_info"]})
    assert r.status_code == 200 and r.json()["err_msg"] == "requestMerchantTransfer:ok", r.text
    _wait(lambda: _row(harness, batch_no)["status"] == "PAID", "PAID")
    r = requests.get(url, timeout=10, headers={"Accept-Language": "en"})
    assert r.status_code == 200 and 'id="paid"' in r.text and "has been paid" in r.text, r.text
    assert "data-package" not in r.text


# ---- the notification -----------------------------------------------------------


def _note_rows(harness, batch_no):
    return harness.query("SELECT outcome, kind FROM notifications WHERE payment_no = %s ORDER BY id", batch_no)


def test_payee_confirms_notification_records_paid_without_any_query(harness, wx):
    cid, day, batch_no = _waiting(harness, wx)
    calls = harness.sandbox_get("/_sandbox/wechat_v3/transfers").json()["calls"][batch_no.replace("-", "")]
    r = harness.sandbox_post("/_sandbox/wechat_v3/transfer_confirm", {"out_bill_no": batch_no.replace("-", "")})
    assert r.status_code == 200, r.text
    _wait(lambda: _row(harness, batch_no)["status"] == "PAID", "PAID by the notification")
    row = _row(harness, batch_no)
    bill = _bill(harness, batch_no)
    assert row["provider_order_id"] == bill["transfer_bill_no"] and row["package_info"] is None, row
    assert _ledger_moves(harness, batch_no) == 2
    assert _note_rows(harness, batch_no) == [{"outcome": "accepted", "kind": "payout"}]
    events = harness.query("SELECT type FROM webhook_events WHERE payload LIKE %s", "%" + batch_no + "%")
    assert [e["type"] for e in events] == ["payout.paid"], events
    # no query, no second transfer: the sandbox saw the one transfer only
    assert harness.sandbox_get("/_sandbox/wechat_v3/transfers").json()["calls"][batch_no.replace("-", "")] == calls
    _wait(lambda: _bill(harness, batch_no)["notified"] == 1, "the sandbox's notification acknowledged")
    # a repeat: duplicate, acknowledged, nothing moves
    r = harness.sandbox_post("/_sandbox/wechat_v3/transfer_notify", {"out_bill_no": batch_no.replace("-", "")})
    assert r.json()["http_status"] == 204 and r.json()["acked"], r.text
    assert _ledger_moves(harness, batch_no) == 2
    assert [n["outcome"] for n in _note_rows(harness, batch_no)] == ["accepted", "duplicate"]


def test_a_flawless_hand_made_notification_is_accepted(harness, wx):
    """The control of the forgery tests below: the same hand-made SUCCESS
    with no flaw records PAID."""
    cid, day, batch_no = _waiting(harness, wx)
    r = harness.sandbox_post("/_sandbox/wechat_v3/transfer_notify",
                             {"out_bill_no": batch_no.replace("-", ""), "overrides": {"state": "SUCCESS"}})
    assert r.json()["http_status"] == 204, r.text
    assert _row(harness, batch_no)["status"] == "PAID" and _ledger_moves(harness, batch_no) == 2


def test_failed_transfer_notification_records_failed(harness, wx):
    cid, day, batch_no = _waiting(harness, wx)
    r = harness.sandbox_post("/_sandbox/wechat_v3/transfer_notify",
                             {"out_bill_no": batch_no.replace("-", ""),
                              "overrides": {"state": "FAIL", "fail_reason": "PAYEE_ACCOUNT_ABNORMAL"}})
    assert r.json()["http_status"] == 204, r.text
    row = _row(harness, batch_no)
    assert row["status"] == "FAILED" and "PAYEE_ACCOUNT_ABNORMAL" in row["reason"], row
    assert _ledger_moves(harness, batch_no) == 0
    events = harness.query("SELECT type FROM webhook_events WHERE payload LIKE %s", "%" + batch_no + "%")
    assert [e["type"] for e in events] == ["payout.failed"], events


def test_concurrent_duplicate_notifications_move_the_ledger_once(harness, wx):
    """Two copies arrive while another session holds the payout's row lock:
    both wait on it, then run one after the other; one records PAID, the
    other finds it PAID (duplicate). Deterministic: the lock decides the
    order, not timing."""
    cid, day, batch_no = _waiting(harness, wx)
    bill_no = batch_no.replace("-", "")
    # the bill is SUCCESS at WeChat, but no automatic notification: send two by hand
    with faults(harness, no_notify=True):
        r = harness.sandbox_post("/_sandbox/wechat_v3/transfer_confirm", {"out_bill_no": bill_no})
        assert r.status_code == 200, r.text
    holder = harness.db()
    holder.autocommit(False)
    results = []
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT id FROM payouts WHERE payout_no = %s FOR UPDATE", (batch_no,))

        def send():
            results.append(harness.sandbox_post("/_sandbox/wechat_v3/transfer_notify",
                                                {"out_bill_no": bill_no}).json())
        threads = [threading.Thread(target=send) for _ in range(2)]
        for t in threads:
            t.start()
        # both statements locking the row are running: they cannot finish while
        # this session holds the lock, so they are waiting on it
        _wait(lambda: harness.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST"
                                    " WHERE INFO LIKE %s AND INFO LIKE %s AND ID <> CONNECTION_ID()",
                                    "%FROM payouts%", "%FOR UPDATE%")[0]["n"] >= 2,
              "both notifications waiting on the row lock")
        assert _row(harness, batch_no)["status"] == "WAITING_CONFIRMATION"
    finally:
        holder.rollback()
        holder.close()
    for t in threads:
        t.join(30)
    assert sorted(x["http_status"] for x in results) == [204, 204], results
    assert _row(harness, batch_no)["status"] == "PAID"
    assert _ledger_moves(harness, batch_no) == 2
    assert sorted(n["outcome"] for n in _note_rows(harness, batch_no)) == ["accepted", "duplicate"]
    events = harness.query("SELECT type FROM webhook_events WHERE payload LIKE %s", "%" + batch_no + "%")
    assert [e["type"] for e in events] == ["payout.paid"], events


@pytest.mark.parametrize("attack", ["bad_signature", "tamper", "other_mchid", "wrong_amount", "unknown_bill",
                                    "not_final"])
def test_forged_transfer_notifications_are_refused_nothing_changes(harness, wx, attack):
    cid, day, batch_no = _waiting(harness, wx)
    bill_no = batch_no.replace("-", "")
    before = _row(harness, batch_no)
    # each one would be accepted but for its one flaw: a SUCCESS for this payout
    body = {"out_bill_no": bill_no, "overrides": {"state": "SUCCESS"}}
    if attack == "bad_signature":
        body["signature"] = "bad"
    elif attack == "tamper":
        body["tamper"] = True
    elif attack == "other_mchid":
        body["overrides"]["mch_id"] = "1900000999"
    elif attack == "wrong_amount":
        body["overrides"]["transfer_amount"] = before["amount_fen"] + 1
    elif attack == "unknown_bill":
        body["overrides"]["out_bill_no"] = "S20040101ZZZZZZZZ"
    elif attack == "not_final":
        body["overrides"]["state"] = "WAIT_USER_CONFIRM"
    out = harness.sandbox_post("/_sandbox/wechat_v3/transfer_notify", body).json()
    assert not out["acked"] and out["http_status"] in (400, 401), out
    after = _row(harness, batch_no)
    assert after["status"] == "WAITING_CONFIRMATION" and after["updated_at"] == before["updated_at"], after
    assert _ledger_moves(harness, batch_no) == 0
    rows = harness.query("SELECT outcome FROM notifications WHERE channel = 'wechat' AND raw_body = %s",
                         out["json"].encode())
    want = {"bad_signature": "bad_signature", "tamper": "bad_signature", "other_mchid": "mismatch",
            "wrong_amount": "amount_mismatch", "unknown_bill": "unknown_payment", "not_final": "bad_input"}[attack]
    assert [r["outcome"] for r in rows] == [want], rows


# ---- the browser ------------------------------------------------------------------


BROWSER_DIR = REPO / "tests" / "browser"


@pytest.mark.skipif(not os.access("/usr/bin/chromium", os.X_OK) or not shutil.which("node"),
                    reason="needs Debian's chromium (scripts/deps.sh) and node")
def test_browser_payee_confirms_in_wechat_and_the_payout_is_paid(harness, wx):
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=str(BROWSER_DIR), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-3000:]
    cid, day, batch_no = _waiting(harness, wx)
    url = [p for p in harness.ctl_json("payout", "list", "--status", "WAITING_CONFIRMATION", config=wx.cli)
           if p["payout_no"] == batch_no][0]["confirm_url"]
    profile = RUN / "browser" / ("payout-" + cid)
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    r = subprocess.run(["node", str(BROWSER_DIR / "payout_confirm.js"), "--url", url, "--sandbox",
                        harness.sandbox_url, "--user-data-dir", str(profile)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180,
                       env=dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1"))
    (RUN / "browser" / ("payout-%s.log" % cid)).write_text(r.stdout + "\n" + r.stderr)
    assert r.returncode == 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout[-3000:], r.stderr[-3000:])
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    row = _row(harness, batch_no)
    assert seen["status"] == 200 and seen["lang"] == "zh-CN" and seen["title"] == "确认收款", seen
    assert seen["open_in_wechat_hidden"], seen
    # the JS-SDK was loaded (from the one origin the policy allows), wx.config
    # was checked by the phone against location.href: only then did the
    # bridge let requestMerchantTransfer through
    assert seen["jssdk_requests"] == 1 and seen["blocked"] == [], seen
    assert "script-src https://res.wx.qq.com 'sha256-" in seen["csp"], seen
    assert seen["config_calls"] == 1 and seen["config_result"] == {"errMsg": "config:ok"}, seen
    assert seen["invoked"]["name"] == "requestMerchantTransfer", seen
    assert seen["invoked"]["params"] == {"mchId": wx.cfg["mchid"], "appId": wx.cfg["appid"],
                                         "package": _bill(harness, batch_no)["package_info"]}, seen
    assert seen["paid_text"] and seen["final_title"] == "收款已到账", seen
    assert row["status"] == "PAID" and _ledger_moves(harness, batch_no) == 2, row
