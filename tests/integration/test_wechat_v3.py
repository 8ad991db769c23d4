"""WeChat Pay API v3 through every web-server stack (lighttpd, lighttpd-unix,
apache-proxy-fcgi, apache-fcgid: one v3 stack of each kind, the module's
tests run once per kind) with the sandbox in public-key mode, and a purchase
and a refund in platform-certificate mode on every kind too (SPEC §12.1):
with [wechat] api_version = v3 new payments are v3 end to end and look the
same to the shop (code_url / jsapi / mweb_url); notifications
reach the same /notify/wechat and /notify/wechat/refund, are told apart by
format (JSON v3, XML v2), verified with the keys of their version and
answered 204 (v3) only after commit, 4xx/5xx {"code":"FAIL",...} else;
query, close, expiry and refunds of a payment use the API version it was
made with (payments.api_version), so a v2 payment in flight at the switch
stays v2.

The attack notifications are built and signed here (AES-256-GCM with the
api_v3_key, SHA256withRSA with the sandbox's WeChat Pay private key), from
the protocol description, not by src/.

What does not depend on the web server (the switch from v2 to v3, a lost
COMMIT reply) runs on the first stack only (FIRST), as do the attacks, which
test_attack.py sends through every stack.
"""

import base64
import json
import os
import secrets
import shutil
import threading
import time
import urllib.parse

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import ALL_STACKS, API_KEY, PRICES, TIMEOUT, WX_APPID, WX_MCH_ID, unique_user

AUTH = {"Authorization": "Bearer " + API_KEY}
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
# the stack kind of the tests that do not depend on the web server
FIRST = ALL_STACKS[:1]


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


class V3:
    """The stack with v3 keys; api_version switchable (restart)."""

    def __init__(self, harness, name="wxv3", db_port=None, fcgi_children=None, kind=None):
        self.harness = harness
        cfg = harness.sandbox_get("/_sandbox/wechat_v3/config").json()
        assert cfg["mode"] == "pubkey", cfg
        self.cfg = cfg
        self.api_v3_key = cfg["api_v3_key"]
        self.pubkey_id = cfg["pubkey_id"]
        pub = cfg["files"]["wechatpay_public_key"]
        with open(os.path.join(os.path.dirname(pub), "wechatpay_pub_private.pem"), "rb") as f:
            self.wx_private = serialization.load_pem_private_key(f.read(), password=None)
        self.api_version = "v3"
        kind = kind or ALL_STACKS[0]
        kw = {"fcgi_children": fcgi_children} if fcgi_children else {}
        self.stack = harness.new_stack(kind, name=name, **kw)
        # the metrics state in the stack folder (which Apache's children reach)
        base = harness._config_writer(  # noqa: SLF001 - the harness's own writer
            "pkcs8", extra="[metrics]\nallow = 127.0.0.1/32, ::1\nstate_file = @STACK_DIR@/metrics.state\n")

        def write(st):
            saved = harness.db_port
            harness.db_port = db_port or saved   # through a proxy in front of MariaDB
            try:
                base(st)
            finally:
                harness.db_port = saved
            text = st.config.read_text()
            pubcopy = st.dir / "wechatpay_pub_key.pem"
            shutil.copyfile(pub, pubcopy)
            text = text.replace("[wechat]\n", "[wechat]\n" + self.v3_lines(pubcopy), 1)
            st.config.write_text(text)
        self.stack.config_writer = write
        self.cli = harness.run / ("cli-%s.ini" % name)
        self.write_cli()

    def v3_lines(self, pubkey_file):
        return ("api_version = %s\napi_v3_key = %s\nwechatpay_public_key = %s\n"
                "wechatpay_public_key_id = %s\n" % (self.api_version, self.api_v3_key, pubkey_file,
                                                   self.pubkey_id))

    def write_cli(self):
        h = self.harness
        h.write_config(self.cli, self.stack.base_url, h.run / "paygatectl-wxv3.log", h.keys["pkcs8"])
        text = self.cli.read_text()
        text = text.replace("[wechat]\n", "[wechat]\n" + self.v3_lines(self.cfg["files"]["wechatpay_public_key"]), 1)
        self.cli.write_text(text)

    def switch(self, version):
        self.api_version = version
        self.stack.stop()
        self.stack.start()
        self.write_cli()

    def ctl(self, *args):
        return self.harness.ctl(*args, config=self.cli)

    # -- notifications built here ------------------------------------------
    def sign(self, message):
        return base64.b64encode(self.wx_private.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()

    def envelope(self, resource, event_type="TRANSACTION.SUCCESS", original_type="transaction",
                 key=None, tamper=False):
        nonce = secrets.token_hex(6)
        ct = AESGCM((key or self.api_v3_key).encode()).encrypt(
            nonce.encode(), json.dumps(resource, separators=(",", ":")).encode(), original_type.encode())
        if tamper:
            ct = ct[:-1] + bytes([ct[-1] ^ 1])
        env = {"id": secrets.token_hex(16), "create_time": "2026-11-24T20:15:00+08:00",
               "resource_type": "encrypt-resource", "event_type": event_type, "summary": "x",
               "resource": {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                            "ciphertext": base64.b64encode(ct).decode(), "associated_data": original_type,
                            "nonce": nonce}}
        return json.dumps(env, separators=(",", ":")).encode()

    def headers(self, body, timestamp=None, serial=None, signature=None):
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16)
        sig = signature or self.sign(ts.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n")
        return {"Content-Type": "application/json", "Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": sig, "Wechatpay-Serial": serial or self.pubkey_id}

    def post(self, body, path="/notify/wechat", **kw):
        return requests.post(self.stack.base_url + path, data=body, headers=self.headers(body, **kw),
                             timeout=TIMEOUT)


def transaction(payment_no, total, state="SUCCESS", **over):
    t = {"appid": WX_APPID, "mchid": WX_MCH_ID, "out_trade_no": payment_no, "trade_state": state,
         "transaction_id": "4200000000" + secrets.token_hex(6), "trade_type": "NATIVE",
         "success_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600)),
         "payer": {"openid": OPENID}, "amount": {"total": total, "payer_total": total, "currency": "CNY"}}
    t.update(over)
    return t


@pytest.fixture(scope="module", params=ALL_STACKS)
def v3(request, harness):
    """A v3 stack of that kind (public-key mode); the tests that take it run
    once per kind, those parametrized with FIRST on the first kind only."""
    v = V3(harness, name="wxv3-" + request.param, kind=request.param)
    v.stack.start()
    try:
        yield v
    finally:
        v.stack.stop()


@pytest.fixture
def v3on(v3):
    if v3.api_version != "v3":
        v3.switch("v3")
    return v3


def checkout(harness, st, method="native", product="course-c", **kw):
    r = harness.checkout(st, product=product, channel="wechat", method=method, **kw)
    assert r.status_code == 201, "checkout: %s %s" % (r.status_code, r.text)
    c = r.json()
    assert c["channel"] == "wechat" and c["method"] == method
    return c


def wait_acked(harness, payment_no, timeout=15):
    def acked():
        t = harness.wx_trade(payment_no)
        return t if any(n["acked"] for n in t["notifications"]) else None
    return wait_for(acked, timeout, "notification of %s acknowledged" % payment_no)


def snapshot(harness, c):
    return (harness.payment(c["payment_no"])["status"], harness.order(c["order_no"])["status"],
            len(harness.query("SELECT id FROM entitlements WHERE order_id=%s", harness.order(c["order_no"])["id"])),
            len(harness.query("SELECT id FROM ledger_entries WHERE payment_id=%s",
                              harness.payment(c["payment_no"])["id"])))


def sandbox_log(harness):
    return (harness.run / "sandbox.log").read_text(errors="replace")


def assert_fail_json(r, status=None):
    assert 400 <= r.status_code < 600, (r.status_code, r.text)
    if status:
        assert r.status_code == status, (r.status_code, r.text)
    j = r.json()
    assert j["code"] == "FAIL" and j["message"], j


# ------------------------------------------------------------ purchases

def test_native_purchase_is_v3_end_to_end(harness, v3on):
    st = v3on.stack
    c = checkout(harness, st)
    assert c["code_url"].startswith("weixin://"), c
    pay = harness.payment(c["payment_no"])
    assert pay["api_version"] == "v3"
    trade = harness.wx_trade(c["payment_no"])
    assert trade["trade_type"] == "NATIVE" and trade["total_fee"] == PRICES["course-c"]
    assert trade["api"] == "v3", trade
    harness.wx_pay(c["payment_no"])
    harness.wait_order_status(st, c["order_no"], "PAID")
    t = wait_acked(harness, c["payment_no"])
    acked = [n for n in t["notifications"] if n["acked"]]
    assert acked[0]["attempts"][-1]["status"] in (200, 204), acked
    assert acked[0]["attempts"][-1]["body"] in ("", None), acked
    pay = harness.payment(c["payment_no"])
    assert pay["status"] == "PAID" and pay["provider_trade_no"] == t["transaction_id"]
    rows = harness.wx_notifications_for(c["payment_no"])
    assert [r["outcome"] for r in rows].count("accepted") == 1, rows
    assert bytes(rows[0]["raw_body"]).startswith(b"{")
    # the v3 calls are counted under their operation, never as "other"
    m = requests.get(st.base_url + "/metrics", timeout=TIMEOUT).text
    assert 'channel="wechat",operation="create",outcome="ok"' in m, m[:3000]
    assert 'channel="wechat",operation="other"' not in m


def test_jsapi_object_signed_rsa(harness, v3on):
    c = checkout(harness, v3on.stack, method="jsapi", openid=OPENID)
    obj = c["jsapi"]
    assert set(obj) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}, obj
    assert obj["signType"] == "RSA" and obj["appId"] == WX_APPID
    trade = harness.wx_trade(c["payment_no"])
    assert obj["package"] == "prepay_id=" + trade["prepay_id"]
    msg = "".join(obj[k] + "\n" for k in ("appId", "timeStamp", "nonceStr", "package")).encode()
    cert = open(harness.wx_client_cert, "rb").read()
    from cryptography import x509
    x509.load_pem_x509_certificate(cert).public_key().verify(
        base64.b64decode(obj["paySign"]), msg, padding.PKCS1v15(), hashes.SHA256())
    # the sandbox's JSAPI cashier checks the same object and pays
    page = requests.get(harness.sandbox_url + "/wechat/jsapi?" + urllib.parse.urlencode(obj), timeout=TIMEOUT)
    assert page.status_code == 200, page.text[:300]
    harness.wx_pay(c["payment_no"])
    harness.wait_order_status(v3on.stack, c["order_no"], "PAID")


def test_mweb_gives_h5_url(harness, v3on):
    c = checkout(harness, v3on.stack, method="mweb")
    assert c["mweb_url"].startswith("http"), c
    trade = harness.wx_trade(c["payment_no"])
    assert trade["trade_type"] == "MWEB" and trade["api"] == "v3", trade
    assert harness.payment(c["payment_no"])["api_version"] == "v3"
    harness.wx_pay(c["payment_no"])
    harness.wait_order_status(v3on.stack, c["order_no"], "PAID")


def test_duplicate_notifications_concurrently_one_effect(harness, v3on):
    c = checkout(harness, v3on.stack, product="ebook-sql")
    body = v3on.envelope(transaction(c["payment_no"], c["amount_fen"]))
    hdrs = v3on.headers(body)
    results = []

    def send():
        results.append(requests.post(v3on.stack.base_url + "/notify/wechat", data=body, headers=hdrs,
                                     timeout=TIMEOUT))
    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 204 and r.content == b"" for r in results), [(r.status_code, r.text) for r in results]
    outcomes = [r["outcome"] for r in harness.wx_notifications_for(c["payment_no"])]
    assert outcomes.count("accepted") == 1 and outcomes.count("duplicate") == 5, outcomes
    o = harness.order(c["order_no"])
    assert o["status"] == "PAID"
    assert len(harness.query("SELECT id FROM entitlements WHERE order_id=%s", o["id"])) == 1


# ------------------------------------------------------------- refunds

def refund_row(harness, refund_no):
    return harness.query("SELECT * FROM refunds WHERE refund_no=%s", refund_no)[0]


def test_refund_then_v3_refund_notification_once(harness, v3on):
    """The refund goes out through v3 (the sandbox records it against the v3
    trade); its notifications are held back, so that the v3 REFUND.SUCCESS
    notification sent here is what completes it: a tampered copy changes
    nothing, the first valid one is accepted (204), the second a duplicate."""
    from test_lifecycle import faults
    st = v3on.stack
    c = checkout(harness, st, product="ebook-sql")
    harness.wx_pay(c["payment_no"])
    harness.wait_order_status(st, c["order_no"], "PAID")
    with faults(harness, drop_notify=True):
        r = requests.post("%s/orders/%s/refund" % (st.base_url, c["order_no"]), data={"amount_fen": "990"},
                          headers=AUTH, timeout=60)
        assert r.status_code == 201, r.text
        ref = r.json()
        wait_for(lambda: harness.wx_refund_status(ref["refund_no"]) == "SUCCESS", 10, "the sandbox's refund")
        assert refund_row(harness, ref["refund_no"])["status"] == "PENDING"
        bad = harness.sandbox_post("/_sandbox/wechat_v3/refund_notify",
                                   {"out_refund_no": ref["refund_no"], "tamper": True}).json()
        assert not bad["acked"] and bad["http_status"] == 401, bad
        assert refund_row(harness, ref["refund_no"])["status"] == "PENDING"
        sent = [harness.sandbox_post("/_sandbox/wechat_v3/refund_notify",
                                     {"out_refund_no": ref["refund_no"]}).json() for _ in range(2)]
    assert all(n["acked"] and n["http_status"] == 204 and n["body"] == "" for n in sent), sent
    assert ref["refund_no"] not in sent[0]["json"]   # encrypted
    assert harness.sandbox_get("/_sandbox/wechat/refunds/" + ref["refund_no"]).json()["api"] == "v3"
    row = refund_row(harness, ref["refund_no"])
    assert row["status"] == "SUCCEEDED"
    assert row["provider_refund_no"] == harness.sandbox_get(
        "/_sandbox/wechat/refunds/" + ref["refund_no"]).json()["refund_id"]
    o = harness.order(c["order_no"])
    assert o["refunded_fen"] == 990 and o["status"] == "PARTIALLY_REFUNDED"
    outcomes = [x["outcome"] for x in harness.query(
        "SELECT outcome FROM notifications WHERE channel='wechat' AND kind='refund' AND payment_no=%s ORDER BY id",
        c["payment_no"])]
    assert outcomes == ["accepted", "duplicate"], outcomes


def test_refund_completed_by_the_v3_refund_query(harness, v3on):
    """No notification at all: cron's next pass asks with the v3 refund query."""
    from test_lifecycle import faults
    st = v3on.stack
    c = checkout(harness, st, product="ebook-sql")
    harness.wx_pay(c["payment_no"])
    harness.wait_order_status(st, c["order_no"], "PAID")
    with faults(harness, drop_notify=True):
        r = requests.post("%s/orders/%s/refund" % (st.base_url, c["order_no"]), headers=AUTH, timeout=60)
        assert r.status_code == 201, r.text
        ref = r.json()
        wait_for(lambda: harness.wx_refund_status(ref["refund_no"]) == "SUCCESS", 10, "the sandbox's refund")
        assert refund_row(harness, ref["refund_no"])["status"] == "PENDING"
        harness.query("UPDATE refunds SET last_attempt_at = UTC_TIMESTAMP() - INTERVAL 1 HOUR WHERE refund_no=%s",
                      ref["refund_no"])
        v3on.ctl("cron")
    assert refund_row(harness, ref["refund_no"])["status"] == "SUCCEEDED"
    assert harness.order(c["order_no"])["status"] == "REFUNDED"
    assert harness.sandbox_get("/_sandbox/wechat/refunds/" + ref["refund_no"]).json()["api"] == "v3"


def test_refund_notification_amount_mismatch_refused(harness, v3on):
    st = v3on.stack
    c = checkout(harness, st, product="ebook-sql")
    harness.wx_pay(c["payment_no"])
    harness.wait_order_status(st, c["order_no"], "PAID")
    refund_no = "R" + secrets.token_hex(8)
    res = {"mchid": WX_MCH_ID, "out_trade_no": c["payment_no"], "transaction_id": "42" + secrets.token_hex(8),
           "out_refund_no": refund_no, "refund_id": "50" + secrets.token_hex(8), "refund_status": "SUCCESS",
           "amount": {"total": c["amount_fen"] + 1, "refund": 1, "payer_total": c["amount_fen"] + 1,
                      "payer_refund": 1}}
    r = v3on.post(v3on.envelope(res, "REFUND.SUCCESS", "refund"), path="/notify/wechat/refund")
    assert_fail_json(r)
    assert harness.order(c["order_no"])["refunded_fen"] == 0


# ------------------------------------------------- close, expiry, sync

def test_close_respects_five_minutes_then_closes_v3(harness, v3on):
    st = v3on.stack
    c = checkout(harness, st)
    r = requests.post("%s/orders/%s/close" % (st.base_url, c["order_no"]), headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 409 and r.json()["error"]["code"] == "too_early_to_close", r.text
    assert int(r.headers["Retry-After"]) > 0
    assert harness.wx_trade(c["payment_no"])["trade_state"] == "NOTPAY"
    harness.age_payment(c["payment_no"], 300, "wechat")
    r = requests.post("%s/orders/%s/close" % (st.base_url, c["order_no"]), headers=AUTH, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["status"] == "CLOSED", r.text
    assert harness.wx_trade(c["payment_no"])["trade_state"] == "CLOSED"
    assert "POST /v3/pay/transactions/out-trade-no/%s/close" % c["payment_no"] in sandbox_log(harness)


def test_expiry_closes_at_the_provider_v3(harness, v3on):
    c = checkout(harness, v3on.stack, product="ebook-sql")
    harness.age_payment(c["payment_no"], 300, "wechat")
    harness.query("UPDATE payments SET expires_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE WHERE payment_no=%s",
                  c["payment_no"])
    v3on.ctl("cron")
    assert harness.wx_trade(c["payment_no"])["trade_state"] == "CLOSED"
    assert "POST /v3/pay/transactions/out-trade-no/%s/close" % c["payment_no"] in sandbox_log(harness)
    assert harness.payment(c["payment_no"])["status"] == "CLOSED"
    assert harness.order(c["order_no"])["status"] == "CLOSED"


def test_sync_finds_a_v3_payment_whose_notification_was_lost(harness, v3on):
    from test_lifecycle import faults
    c = checkout(harness, v3on.stack, product="ebook-sql")
    with faults(harness, drop_notify=True):
        harness.wx_pay(c["payment_no"])
        assert harness.payment(c["payment_no"])["status"] == "CREATED"
        harness.query("UPDATE payments SET created_at = created_at - INTERVAL 1 HOUR WHERE payment_no=%s",
                      c["payment_no"])
        v3on.ctl("sync")
    pay = harness.payment(c["payment_no"])
    assert pay["status"] == "PAID" and pay["provider_trade_no"] == harness.wx_trade(c["payment_no"])["transaction_id"]
    # the provider's success_time (RFC 3339, Beijing), not the time of recording
    import datetime
    time_end = datetime.datetime.strptime(harness.wx_trade(c["payment_no"])["time_end"], "%Y%m%d%H%M%S")
    assert pay["paid_at"] == time_end - datetime.timedelta(hours=8), (pay["paid_at"], time_end)
    assert "GET /v3/pay/transactions/out-trade-no/%s?mchid=" % c["payment_no"] in sandbox_log(harness)


def test_late_payment_on_a_closed_order_is_refunded(harness, v3on):
    c = checkout(harness, v3on.stack, product="ebook-sql")
    harness.query("UPDATE orders SET status='CLOSED', closed_at=UTC_TIMESTAMP() WHERE order_no=%s", c["order_no"])
    r = v3on.post(v3on.envelope(transaction(c["payment_no"], c["amount_fen"])))
    assert r.status_code == 204, r.text
    assert harness.payment(c["payment_no"])["anomaly"] == "late_payment"
    assert harness.query("SELECT id FROM refunds WHERE payment_id=%s", harness.payment(c["payment_no"])["id"])


# ------------------------------------------------------- the switch

@pytest.mark.parametrize("v3", FIRST, indirect=True)
def test_switch_v2_to_v3_with_a_v2_payment_in_flight(harness, v3):
    v3.switch("v2")
    st = v3.stack
    old = checkout(harness, st, product="ebook-sql")
    old2 = checkout(harness, st)
    assert harness.payment(old["payment_no"])["api_version"] is None
    v3.switch("v3")
    new = checkout(harness, st)
    assert harness.payment(new["payment_no"])["api_version"] == "v3"
    # the v2 trade is notified in v2 (XML) and verified with the v2 key
    harness.wx_pay(old["payment_no"])
    harness.wait_order_status(st, old["order_no"], "PAID")
    t = wait_acked(harness, old["payment_no"])
    acked = [n for n in t["notifications"] if n["acked"]]
    assert "<return_code><![CDATA[SUCCESS]]>" in acked[0]["attempts"][-1]["body"] or \
        "SUCCESS" in acked[0]["attempts"][-1]["body"], acked
    raw = [bytes(r["raw_body"]) for r in harness.wx_notifications_for(old["payment_no"]) if r["outcome"] == "accepted"]
    assert raw and raw[0].lstrip().startswith(b"<xml>"), raw
    # refund of the v2 payment after the switch: v2 (the sandbox refunds it; v2 notify)
    r = requests.post("%s/orders/%s/refund" % (st.base_url, old["order_no"]), data={"amount_fen": "100"},
                      headers=AUTH, timeout=60)
    assert r.status_code == 201, r.text
    wait_for(lambda: harness.query("SELECT status FROM refunds WHERE refund_no=%s",
                                   r.json()["refund_no"])[0]["status"] == "SUCCEEDED", 20, "v2 refund")
    assert harness.sandbox_get("/_sandbox/wechat/refunds/" + r.json()["refund_no"]).json()["api"] == "v2"
    # close of the other v2 payment after the switch
    harness.age_payment(old2["payment_no"], 300, "wechat")
    rc = requests.post("%s/orders/%s/close" % (st.base_url, old2["order_no"]), headers=AUTH, timeout=TIMEOUT)
    assert rc.status_code == 200 and rc.json()["status"] == "CLOSED", rc.text
    assert harness.wx_trade(old2["payment_no"])["trade_state"] == "CLOSED"
    # neither closed nor queried through v3 (whose paths name the trade)
    assert "out-trade-no/" + old2["payment_no"] not in sandbox_log(harness)
    # and the v3 one pays through v3
    harness.wx_pay(new["payment_no"])
    harness.wait_order_status(st, new["order_no"], "PAID")


# ------------------------------------------------------------- attacks

ATTACKS = {
    "forged_signature": dict(signature=base64.b64encode(b"\x01" * 256).decode()),
    "unknown_serial": dict(serial="PUB_KEY_ID_0000000000000000000000000000000000"),
    "stale_timestamp": dict(timestamp=int(time.time()) - 3600),
    "signtest": dict(signature="WECHATPAY/SIGNTEST/" + base64.b64encode(b"\x00" * 200).decode()),
}


@pytest.mark.parametrize("v3", FIRST, indirect=True)
@pytest.mark.parametrize("attack", sorted(ATTACKS) + ["tampered_ciphertext", "other_mchid", "other_appid",
                                                      "amount_mismatch", "wrong_key", "no_headers"])
def test_attack_refused_database_unchanged(harness, v3on, attack):
    """On the first stack: test_attack.py's test_forged_and_foreign_v3_notifications
    sends these (and more) through every stack."""
    c = checkout(harness, v3on.stack, product="ebook-sql")
    before = snapshot(harness, c)
    over = {}
    if attack == "other_mchid":
        over["mchid"] = "1900000999"
    if attack == "other_appid":
        over["appid"] = "wx0000000000000000"
    total = c["amount_fen"] + (1 if attack == "amount_mismatch" else 0)
    if attack == "amount_mismatch":
        over["amount"] = {"total": total, "payer_total": total, "currency": "CNY"}
    body = v3on.envelope(transaction(c["payment_no"], total, **over), tamper=attack == "tampered_ciphertext",
                         key=("x" * 32 if attack == "wrong_key" else None))
    if attack == "no_headers":
        r = requests.post(v3on.stack.base_url + "/notify/wechat", data=body,
                          headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    else:
        r = v3on.post(body, **ATTACKS.get(attack, {}))
    signature = attack in ATTACKS or attack in ("no_headers", "tampered_ciphertext", "wrong_key")
    assert_fail_json(r, 401 if signature else 400)
    assert snapshot(harness, c) == before
    assert harness.payment(c["payment_no"])["provider_trade_no"] is None


# ------------------------------------------ platform-certificate mode

def test_platform_certificate_mode(harness, v3on):
    """No WeChat Pay public key: the store in platform_cert_dir is opened at
    start-up and filled from /v3/certificates on first use (a call, or a
    notification arriving first after a restart with the directory emptied);
    notifications signed by the platform certificate are verified (a
    payment, then a refund), one naming a serial WeChat Pay never issued is
    refused (401) and changes nothing. On a stack of the same kind as v3on."""
    kind = v3on.stack.kind
    st = harness.new_stack(kind, name="wxv3-platform-" + kind)
    base = harness._config_writer("pkcs8")  # noqa: SLF001
    # as the test sees it (st.dir moves while an Apache stack runs as root,
    # st.home stays; the config names the folder the stack's processes reach)
    certdir = st.home / "platform_certs"

    def write(s, empty=True):
        base(s)
        here = s.dir / "platform_certs"
        here.mkdir(parents=True, exist_ok=True)
        if empty:
            for f in here.glob("*.pem"):
                f.unlink()
        text = s.config.read_text().replace(
            "[wechat]\n", "[wechat]\napi_version = v3\napi_v3_key = %s\nplatform_cert_dir = %s\n"
            % (v3on.api_v3_key, here), 1)
        s.config.write_text(text)
    st.config_writer = write
    assert harness.sandbox_post("/_sandbox/wechat_v3/config", {"mode": "platform"}).status_code == 200
    try:
        st.start()
        serial = harness.sandbox_get("/_sandbox/wechat_v3/config").json()["platform_serial"]
        c = checkout(harness, st)
        assert harness.payment(c["payment_no"])["api_version"] == "v3"
        assert (certdir / (serial + ".pem")).exists(), list(certdir.iterdir())
        # restart with the directory emptied: the notification comes first
        # and names a serial the process does not hold: fetched, then verified
        for f in certdir.glob("*.pem"):
            f.unlink()
        st.stop()
        st.config_writer = lambda s: write(s, empty=False)
        st.start()
        harness.wx_pay(c["payment_no"])
        harness.wait_order_status(st, c["order_no"], "PAID")
        assert (certdir / (serial + ".pem")).exists()
        # a refund through v3, completed by its platform-signed notification
        r = requests.post("%s/orders/%s/refund" % (st.base_url, c["order_no"]), data={"amount_fen": "500"},
                          headers=AUTH, timeout=60)
        assert r.status_code == 201, r.text
        ref = r.json()
        wait_for(lambda: refund_row(harness, ref["refund_no"])["status"] == "SUCCEEDED", 20,
                 "the v3 refund (platform-certificate mode)")
        assert harness.sandbox_get("/_sandbox/wechat/refunds/" + ref["refund_no"]).json()["api"] == "v3"
        outcomes = [x["outcome"] for x in harness.query(
            "SELECT outcome FROM notifications WHERE channel='wechat' AND kind='refund' AND payment_no=%s",
            c["payment_no"])]
        assert "accepted" in outcomes, outcomes
        assert harness.order(c["order_no"])["refunded_fen"] == 500
        # a serial WeChat Pay never issued stays refused
        c2 = checkout(harness, st, product="ebook-sql")
        n = harness.sandbox_post("/_sandbox/wechat_v3/notify",
                                 {"out_trade_no": c2["payment_no"], "serial": "0123456789ABCDEF",
                                  "overrides": {"trade_state": "SUCCESS", "transaction_id": "4200000001",
                                                "success_time": "2026-11-24T20:15:00+08:00"}}).json()
        assert not n["acked"] and n["http_status"] == 401, n
        assert harness.payment(c2["payment_no"])["status"] == "CREATED"
    finally:
        harness.sandbox_post("/_sandbox/wechat_v3/config", {"mode": "pubkey"})
        st.stop()


# ------------------------------------------- acknowledged only after commit

def test_commit_reply_lost_v3_notification_answered_5xx_then_duplicate(harness):
    """A proxy in front of MariaDB forwards the notification transaction's
    COMMIT, waits for the server's answer (it has committed) and drops it:
    the notification is answered 5xx {"code":"FAIL"} (never 204 while the
    commit is unconfirmed); WeChat's redelivery is a duplicate: 204, one
    effect."""
    from commit_proxy import CommitProxy
    proxy = CommitProxy(harness.db_port)
    v = V3(harness, name="wxv3-commit-lost", db_port=proxy.port, fcgi_children=1, kind=FIRST[0])
    try:
        v.stack.start()
        c = checkout(harness, v.stack, product="ebook-sql")
        body = v.envelope(transaction(c["payment_no"], c["amount_fen"]))
        hdrs = v.headers(body)
        proxy.lose_commit_reply("UPDATE payments p JOIN orders o")
        r = requests.post(v.stack.base_url + "/notify/wechat", data=body, headers=hdrs, timeout=TIMEOUT)
        assert proxy.disarm() == []
        assert r.status_code >= 500, (r.status_code, r.text)
        assert r.json()["code"] == "FAIL", r.text
        assert harness.payment(c["payment_no"])["status"] == "PAID"   # it had committed
        r = requests.post(v.stack.base_url + "/notify/wechat", data=body, headers=hdrs, timeout=TIMEOUT)
        assert r.status_code == 204 and r.content == b"", (r.status_code, r.text)
        outcomes = [n["outcome"] for n in harness.wx_notifications_for(c["payment_no"])]
        assert outcomes == ["accepted", "duplicate"], outcomes
        assert len(harness.query("SELECT * FROM webhook_events WHERE order_no=%s AND type='order.paid'",
                                 c["order_no"])) == 1
    finally:
        proxy.disarm()
        v.stack.stop()
        proxy.stop()
