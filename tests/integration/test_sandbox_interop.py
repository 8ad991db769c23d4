"""The provider sandbox (Alipay side), checked without paygate's C code.

The official npm alipay-sdk signs requests and verifies the sandbox's reply
and notification signatures with its own code; `openssl dgst` checks the
sandbox's RSA2 primitive. Further tests pin the sandbox's own behaviour
(retries, faults, the state machine) that other integration tests rely on.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_sandbox_interop.py
"""

import base64
import csv
import datetime
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import zipfile
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANDBOX_DIR = os.path.join(ROOT, "sandbox")
INTEROP_DIR = os.path.join(SANDBOX_DIR, "interop")
SANDBOX = os.path.join(SANDBOX_DIR, "sandbox.py")
PYTHON = "/usr/bin/python3"
APP_ID = "2021000123456789"
sys.path.insert(0, SANDBOX_DIR)

import alipay_sign  # noqa: E402  (the module under test)


# ---------------------------------------------------------------------------
# helpers and fixtures


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, check=True,
                          capture_output=True).stdout


def make_app_keys(folder):
    os.makedirs(folder, exist_ok=True)
    private = os.path.join(folder, "app_private_key.pem")
    public = os.path.join(folder, "app_public_key.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", private)
    openssl("pkey", "-in", private, "-pubout", "-out", public)
    return private, public


class Sandbox:
    def __init__(self, state_dir, app_private, app_public, time_scale=0.01):
        self.state_dir = state_dir
        self.app_private = app_private
        self.app_public = app_public
        self.http_port = free_port()
        self.https_port = free_port()
        self.base = "http://127.0.0.1:%d" % self.http_port
        self.gateway = self.base + "/gateway.do"
        self.log_path = os.path.join(os.path.dirname(state_dir), "sandbox-%d.log" % self.http_port)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PYTHON, SANDBOX, "--state-dir", state_dir, "--http-port", str(self.http_port),
             "--https-port", str(self.https_port), "--app-id", APP_ID,
             "--app-public-key", app_public, "--time-scale", str(time_scale)],
            stdout=self.log, stderr=subprocess.STDOUT)
        ready = os.path.join(state_dir, "ready")
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(ready):
                with open(ready) as handle:
                    if handle.read().strip() == str(self.proc.pid):
                        return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("sandbox did not become ready:\n" + self.log_text())

    @property
    def alipay_public(self):
        return os.path.join(self.state_dir, "alipay_public_key.pem")

    @property
    def alipay_private(self):
        return os.path.join(self.state_dir, "alipay_private_key.pem")

    def log_text(self):
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    # control API
    def ctl(self, path, body=None, expect=200):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
        status, raw = http_call(req)
        assert status == expect, (path, status, raw)
        return json.loads(raw)

    def trade(self, out_trade_no):
        return self.ctl("/_sandbox/trades/" + urllib.parse.quote(out_trade_no))

    # a merchant-side request, signed here (for behaviour tests only; the
    # interop tests sign with the SDK)
    def signed_params(self, method, biz, key_path=None, **extra):
        params = {"app_id": APP_ID, "method": method, "format": "JSON", "charset": "utf-8",
                  "sign_type": "RSA2", "timestamp": "2026-01-01 00:00:00", "version": "1.0",
                  "biz_content": json.dumps(biz, ensure_ascii=False)}
        params.update(extra)
        with open(key_path or self.app_private, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        text = alipay_sign.string_to_sign(params)
        params["sign"] = base64.b64encode(
            key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
        return params

    def server_call(self, method, biz, **extra):
        body = urllib.parse.urlencode(self.signed_params(method, biz, **extra)).encode()
        req = urllib.request.Request(self.gateway, data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
        status, raw = http_call(req)
        return status, raw.decode("utf-8")

    def page_get(self, method, biz, **extra):
        query = urllib.parse.urlencode(self.signed_params(method, biz, **extra))
        return http_call(urllib.request.Request(self.gateway + "?" + query))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))


def http_call(req, timeout=30, opener=OPENER):
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_call_headers(req):
    try:
        with OPENER.open(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def reply_object(body, key):
    """The raw text of body's `key` object and the parsed envelope."""
    envelope = json.loads(body)
    start = body.index('"%s":' % key) + len(key) + 3
    end = body.rindex(',"sign":"')
    return body[start:end], envelope


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("appkeys"))
    return make_app_keys(folder)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, keys):
    state = os.path.join(str(tmp_path_factory.mktemp("sandbox")), "state")
    box = Sandbox(state, *keys)
    yield box
    rc = box.stop()
    assert rc == 0, box.log_text()


@pytest.fixture(autouse=True)
def _clear_faults(request):
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").ctl("/_sandbox/faults", {
            "drop_notify": False, "duplicate": 1, "wrong_amount": False, "bad_signature": False,
            "delay_ms": 0, "http_5xx": False, "timeout": False, "no_notify": False,
            "refund_timeout": False})


@pytest.fixture(scope="module")
def node_sdk():
    """The interop script with its node_modules installed (npm ci)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the alipay-sdk interop checks cannot run")
    if not os.path.isdir(os.path.join(INTEROP_DIR, "node_modules", "alipay-sdk")):
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=INTEROP_DIR,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return os.path.join(INTEROP_DIR, "alipay_interop.js")


def run_node(script, sandbox, command, *args, stdin=None, key=None):
    cmd = ["node", script, command, "--gateway", sandbox.gateway, "--app-id", APP_ID,
           "--app-private-key", key or sandbox.app_private,
           "--alipay-public-key", sandbox.alipay_public, *args]
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr + "\n--- sandbox log\n" + sandbox.log_text()
    return done.stdout


def sdk_check(node_sdk, sandbox, fields):
    return json.loads(run_node(node_sdk, sandbox, "check-notify", stdin=json.dumps(fields)))


class Receiver:
    """A merchant notify endpoint: answers with queued bodies, records forms."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = []
        self.replies = []
        self.default = b"success"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append({
                        "content_type": self.headers.get("Content-Type"),
                        "fields": dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True)),
                    })
                    reply = receiver.replies.pop(0) if receiver.replies else receiver.default
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/notify/alipay" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


def wait_for(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


# ---------------------------------------------------------------------------
# interop with the official SDK


@pytest.fixture(scope="module")
def sdk_run(node_sdk, sandbox):
    return json.loads(run_node(node_sdk, sandbox, "run", "--out-trade-no", "interop_run_1"))


def test_sdk_precreate_then_query_succeed_and_sdk_accepts_reply_signatures(sdk_run, sandbox):
    # sdk.exec(..., {validateSign: true}) throws when a reply signature is wrong,
    # so reaching these fields means the SDK verified every reply.
    assert sdk_run["precreate"]["code"] == "10000"
    assert sdk_run["precreate"]["outTradeNo"] == "interop_run_1"
    assert sdk_run["precreate"]["qrCode"] == "%s/qr/interop_run_1" % sandbox.base
    assert sdk_run["query_before"]["code"] == "10000"
    assert sdk_run["query_before"]["tradeStatus"] == "WAIT_BUYER_PAY"
    assert sdk_run["query_before"]["totalAmount"] == "88.00"
    assert sdk_run["query_after"]["tradeStatus"] == "TRADE_SUCCESS"
    assert len(sdk_run["query_after"]["tradeNo"]) >= 28
    assert sdk_run["query_after"]["tradeNo"].startswith("20")
    assert sdk_run["query_after"]["sendPayDate"]
    assert sdk_run["query_missing"]["code"] == "40004"
    assert sdk_run["query_missing"]["subCode"] == "ACQ.TRADE_NOT_EXIST"


def test_sdk_accepts_sandbox_notification_and_rejects_tampered_amount(sdk_run, sandbox):
    note = sdk_run["notification"]
    assert sdk_run["notify_check_v2"] is True
    assert sdk_run["tampered_check_v2"] is False
    assert sdk_run["tampered_check"] is False
    assert sdk_run["notification_content_type"].startswith("application/x-www-form-urlencoded")
    assert note["trade_status"] == "TRADE_SUCCESS"
    assert note["total_amount"] == "88.00"
    assert note["app_id"] == APP_ID
    assert note["notify_type"] == "trade_status_sync"
    assert note["buyer_id"].startswith("2088")
    assert json.loads(note["fund_bill_list"]) == [{"amount": "88.00", "fundChannel": "ALIPAYACCOUNT"}]
    # the node receiver answered "success": the sandbox records the ack
    trade = sandbox.trade("interop_run_1")
    assert trade["status"] == "TRADE_SUCCESS"
    assert trade["notifications"][0]["acked"] is True
    assert trade["notifications"][0]["attempts"][0]["body"] == "success"


def test_sandbox_accepts_sdk_built_page_pay_url_and_returns_signed_redirect(
        node_sdk, sandbox, receiver):
    url = run_node(node_sdk, sandbox, "page-url", "--out-trade-no", "interop_page_1",
                   "--amount", "12.34", "--subject", "课程 Course & more",
                   "--return-url", "http://127.0.0.1:9/shop/return?order=7",
                   "--notify-url", receiver.url).strip()
    assert url.startswith(sandbox.gateway + "?")
    status, body = http_call(urllib.request.Request(url))
    text = body.decode()
    assert status == 200, text
    assert 'id="pay-button"' in text and ">Pay<" in text
    assert "12.34" in text and "课程 Course &amp; more" in text

    form = urllib.parse.urlencode({"out_trade_no": "interop_page_1"}).encode()
    status, headers, _ = http_call_headers(urllib.request.Request(
        sandbox.base + "/cashier/pay", data=form, method="POST"))
    assert status == 302
    location = headers["Location"]
    assert location.startswith("http://127.0.0.1:9/shop/return?order=7&")
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert back["method"] == "alipay.trade.page.pay.return"
    assert back["out_trade_no"] == "interop_page_1" and back["total_amount"] == "12.34"
    assert back["sign_type"] == "RSA2" and back["app_id"] == APP_ID
    returned = {k: v for k, v in back.items() if k != "order"}
    assert sdk_check(node_sdk, sandbox, returned)["valid"] is True
    # the first notification attempt has landed before the redirect
    assert receiver.received and receiver.received[0]["fields"]["out_trade_no"] == "interop_page_1"
    assert sdk_check(node_sdk, sandbox, receiver.received[0]["fields"])["valid"] is True


def test_sdk_wap_pay_url_opens_the_mobile_cashier(node_sdk, sandbox):
    url = run_node(node_sdk, sandbox, "page-url", "--method", "alipay.trade.wap.pay",
                   "--product-code", "QUICK_WAP_WAY", "--out-trade-no", "interop_wap_1",
                   "--amount", "0.01", "--subject", "wap").strip()
    status, body = http_call(urllib.request.Request(url))
    assert status == 200 and b'id="pay-button"' in body and b"mobile" in body


def test_request_signed_with_another_key_gets_error_response_40002(node_sdk, sandbox, tmp_path):
    other_private, _ = make_app_keys(str(tmp_path / "other"))
    status, body = sandbox.server_call("alipay.trade.query", {"out_trade_no": "x"},
                                       key_path=other_private)
    reply = json.loads(body)
    assert status == 200
    assert reply["error_response"]["code"] == "40002"
    assert reply["error_response"]["sub_code"] == "isv.invalid-signature"
    assert "sign" not in reply
    status, body = sandbox.server_call("alipay.trade.query", {"out_trade_no": "x"},
                                       app_id="2021000999999999")
    assert json.loads(body)["error_response"]["sub_code"] == "isv.invalid-signature"
    # the SDK signing with the wrong key does not get a result either
    out = json.loads(run_node(node_sdk, sandbox, "exec", "--method", "alipay.trade.query",
                              "--biz", '{"out_trade_no":"x"}', key=other_private))
    assert out["ok"] is False or out["result"].get("subCode") == "isv.invalid-signature"


def test_signing_matches_openssl_dgst_on_a_fixed_string(sandbox, tmp_path):
    params = {"app_id": "2014072300007148", "method": "alipay.trade.query", "charset": "utf-8",
              "sign_type": "RSA2", "timestamp": "2014-07-24 03:07:50", "version": "1.0",
              "biz_content": '{"out_trade_no":"20150320010101001","subject":"商品"}',
              "empty": "", "sign": "ignored"}
    expected = ('app_id=2014072300007148&biz_content={"out_trade_no":"20150320010101001",'
                '"subject":"商品"}&charset=utf-8&method=alipay.trade.query&sign_type=RSA2'
                '&timestamp=2014-07-24 03:07:50&version=1.0')
    assert alipay_sign.string_to_sign(params) == expected
    assert alipay_sign.string_to_sign(params, drop_sign_type=True) == expected.replace(
        "&sign_type=RSA2", "")
    assert alipay_sign.string_to_sign({"b": "1", "B": "2", "a_b": "3", "ab": "4"}) == \
        "B=2&a_b=3&ab=4&b=1"

    data = tmp_path / "tosign.txt"
    data.write_bytes(expected.encode("utf-8"))
    sig = openssl("dgst", "-sha256", "-sign", sandbox.alipay_private, str(data))
    openssl_b64 = base64.b64encode(sig).decode()
    with open(sandbox.alipay_private, "rb") as handle:
        private_pem = handle.read()
    with open(sandbox.alipay_public, "rb") as handle:
        public_pem = handle.read()
    ours = alipay_sign.rsa2_sign(private_pem, expected)
    assert ours == openssl_b64  # PKCS#1 v1.5 is deterministic
    assert alipay_sign.rsa2_verify(public_pem, expected, openssl_b64)
    assert not alipay_sign.rsa2_verify(public_pem, expected + "x", openssl_b64)
    sig_file = tmp_path / "sig.bin"
    sig_file.write_bytes(base64.b64decode(ours))
    verified = subprocess.run(["openssl", "dgst", "-sha256", "-verify", sandbox.alipay_public,
                               "-signature", str(sig_file), str(data)], capture_output=True)
    assert verified.returncode == 0
    # the control API signs the same way
    got = sandbox.ctl("/_sandbox/sign", {"params": params, "drop_sign_type": False})
    assert got == {"string_to_sign": expected, "sign": openssl_b64}
    # bare base64 DER keys (Alipay key tool format) are accepted too
    der = openssl("pkey", "-in", sandbox.alipay_private, "-outform", "DER")
    assert alipay_sign.rsa2_sign(base64.b64encode(der).decode(), expected) == openssl_b64


# ---------------------------------------------------------------------------
# sandbox behaviour other tests rely on


def test_reply_sign_covers_the_exact_reply_text(sandbox):
    status, body = sandbox.server_call("alipay.trade.precreate", {
        "out_trade_no": "raw_text_1", "total_amount": "1.50", "subject": "中文/\"quoted\""})
    assert status == 200
    inner, envelope = reply_object(body, "alipay_trade_precreate_response")
    with open(sandbox.alipay_public, "rb") as handle:
        assert alipay_sign.rsa2_verify(handle.read(), inner, envelope["sign"])
    assert json.loads(inner)["code"] == "10000"


def test_notification_is_retried_until_the_body_is_exactly_success(sandbox, receiver):
    receiver.replies = [b"success\n", b"SUCCESS", b"fail"]
    sandbox.server_call("alipay.trade.precreate", {
        "out_trade_no": "retry_1", "total_amount": "3.00", "subject": "retry"},
        notify_url=receiver.url)
    sandbox.ctl("/_sandbox/pay", {"out_trade_no": "retry_1"})
    trade = wait_for(lambda: (lambda t: t if t["notifications"][0]["acked"] else None)(
        sandbox.trade("retry_1")))
    note = trade["notifications"][0]
    assert [a["body"] for a in note["attempts"]] == ["success\n", "SUCCESS", "fail", "success"]
    assert note["acked"] is True
    ids = {r["fields"]["notify_id"] for r in receiver.received}
    assert ids == {note["notify_id"]}


def test_notification_gives_up_after_eight_attempts(sandbox, receiver):
    receiver.default = b"fail"
    sandbox.server_call("alipay.trade.precreate", {
        "out_trade_no": "giveup_1", "total_amount": "3.00", "subject": "give up"},
        notify_url=receiver.url)
    sandbox.ctl("/_sandbox/pay", {"out_trade_no": "giveup_1"})
    trade = wait_for(lambda: (lambda t: t if t["notifications"][0]["gave_up"] else None)(
        sandbox.trade("giveup_1")))
    assert len(trade["notifications"][0]["attempts"]) == 8
    assert trade["notifications"][0]["acked"] is False


def test_close_query_and_amount_conflicts(sandbox):
    def call(method, biz):
        _, body = sandbox.server_call(method, biz)
        return json.loads(body)[method.replace(".", "_") + "_response"]

    biz = {"out_trade_no": "close_1", "total_amount": "9.90", "subject": "c"}
    assert call("alipay.trade.precreate", biz)["code"] == "10000"
    conflict = call("alipay.trade.precreate", dict(biz, total_amount="9.91"))
    assert conflict["code"] == "40004" and conflict["sub_code"] == "ACQ.CONTEXT_INCONSISTENT"
    # As at Alipay, a precreate trade exists only once its qr_code was scanned.
    for method in ("alipay.trade.close", "alipay.trade.query"):
        unscanned = call(method, {"out_trade_no": "close_1"})
        assert unscanned["code"] == "40004" and unscanned["sub_code"] == "ACQ.TRADE_NOT_EXIST", method
    status, _ = http_call(urllib.request.Request(sandbox.base + "/qr/close_1"))
    assert status == 200
    assert call("alipay.trade.query", {"out_trade_no": "close_1"})["trade_status"] == "WAIT_BUYER_PAY"
    assert call("alipay.trade.close", {"out_trade_no": "close_1"})["code"] == "10000"
    assert call("alipay.trade.query", {"out_trade_no": "close_1"})["trade_status"] == "TRADE_CLOSED"
    # only WAIT_BUYER_PAY can be closed: a closed trade is refused like a paid one
    again = call("alipay.trade.close", {"out_trade_no": "close_1"})
    assert again["code"] == "40004" and again["sub_code"] == "ACQ.TRADE_STATUS_ERROR", again
    assert call("alipay.trade.close", {"out_trade_no": "nope"})["sub_code"] == "ACQ.TRADE_NOT_EXIST"

    assert call("alipay.trade.precreate", dict(biz, out_trade_no="close_2"))["code"] == "10000"
    sandbox.ctl("/_sandbox/pay", {"out_trade_no": "close_2"})
    paid = call("alipay.trade.close", {"out_trade_no": "close_2"})
    assert paid["code"] == "40004" and paid["sub_code"] == "ACQ.TRADE_STATUS_ERROR"
    sandbox.ctl("/_sandbox/pay", {"out_trade_no": "close_2"}, expect=409)

    for bad in ("9.9", "09.90", "0.00", "100000000.01", "1e2", " 1.00"):
        reply = call("alipay.trade.precreate", dict(biz, out_trade_no="bad_amount", total_amount=bad))
        assert reply["code"] == "40004", bad
    _, body = sandbox.server_call("alipay.trade.refund.nope", {})
    assert json.loads(body)["error_response"]["sub_code"] == "isv.invalid-method"


def test_page_pay_refuses_wrong_product_code_past_expiry_and_bad_signature(sandbox, tmp_path):
    good = {"out_trade_no": "page_err_1", "total_amount": "5.00", "subject": "s",
            "product_code": "FAST_INSTANT_TRADE_PAY"}
    status, body = sandbox.page_get("alipay.trade.page.pay", dict(good, product_code="QUICK_WAP_WAY"))
    assert status == 400 and b'id="error-code"' in body
    status, body = sandbox.page_get("alipay.trade.page.pay",
                                    dict(good, time_expire="2020-01-01 00:00:00"))
    assert status == 400
    other_private, _ = make_app_keys(str(tmp_path / "k"))
    status, body = sandbox.page_get("alipay.trade.page.pay", good, key_path=other_private)
    assert status == 400 and b"isv.invalid-signature" in body
    status, body = sandbox.page_get("alipay.trade.page.pay",
                                    dict(good, time_expire="2099-01-01 00:00:00"),
                                    return_url="http://127.0.0.1:9/r")
    assert status == 200 and b'id="pay-button"' in body
    assert sandbox.trade("page_err_1")["return_url"] == "http://127.0.0.1:9/r"
    status, body = http_call(urllib.request.Request(sandbox.base + "/qr/page_err_1"))
    assert status == 200 and b'id="pay-button"' in body


def test_control_notify_signs_after_overrides(node_sdk, sandbox, receiver):
    sandbox.server_call("alipay.trade.precreate", {
        "out_trade_no": "ctl_notify_1", "total_amount": "7.00", "subject": "n"},
        notify_url=receiver.url)
    signed_wrong = sandbox.ctl("/_sandbox/notify", {
        "out_trade_no": "ctl_notify_1", "trade_status": "TRADE_SUCCESS",
        "overrides": {"total_amount": "6.00", "seller_id": None}})
    assert signed_wrong["http_status"] == 200 and signed_wrong["body"] == "success"
    assert signed_wrong["form"]["total_amount"] == "6.00" and "seller_id" not in signed_wrong["form"]
    assert sdk_check(node_sdk, sandbox, signed_wrong["form"])["valid"] is True
    bad = sandbox.ctl("/_sandbox/notify", {"out_trade_no": "ctl_notify_1", "sign": "bad"})
    assert sdk_check(node_sdk, sandbox, bad["form"])["valid"] is False
    unsigned = sandbox.ctl("/_sandbox/notify", {"out_trade_no": "ctl_notify_1", "sign": False})
    assert "sign" not in unsigned["form"]
    # manual notifications never change the trade itself
    assert sandbox.trade("ctl_notify_1")["status"] == "WAIT_BUYER_PAY"
    assert len(receiver.received) == 3


def test_faults_5xx_wrong_amount_duplicate_and_drop(node_sdk, sandbox, receiver):
    sandbox.ctl("/_sandbox/faults", {"http_5xx": True})
    status, _ = sandbox.server_call("alipay.trade.query", {"out_trade_no": "x"})
    assert status == 502
    sandbox.ctl("/_sandbox/faults", {"http_5xx": False, "timeout": True})
    params = sandbox.signed_params("alipay.trade.query", {"out_trade_no": "x"})
    req = urllib.request.Request(sandbox.gateway, method="POST",
                                 data=urllib.parse.urlencode(params).encode())
    started = time.time()
    with pytest.raises((socket.timeout, urllib.error.URLError)):
        http_call(req, timeout=1)
    assert time.time() - started < 5
    sandbox.ctl("/_sandbox/faults", {"timeout": False, "wrong_amount": True, "duplicate": 3})
    sandbox.server_call("alipay.trade.precreate", {
        "out_trade_no": "fault_1", "total_amount": "10.00", "subject": "f"},
        notify_url=receiver.url)
    sandbox.ctl("/_sandbox/pay", {"out_trade_no": "fault_1"})
    assert len(receiver.received) == 3
    fields = receiver.received[0]["fields"]
    assert fields["total_amount"] == "10.01"
    assert sdk_check(node_sdk, sandbox, fields)["valid"] is True

    sandbox.ctl("/_sandbox/faults", {"wrong_amount": False, "duplicate": 1, "drop_notify": True})
    sandbox.server_call("alipay.trade.precreate", {
        "out_trade_no": "fault_2", "total_amount": "10.00", "subject": "f"},
        notify_url=receiver.url)
    trade = sandbox.ctl("/_sandbox/pay", {"out_trade_no": "fault_2"})
    assert trade["notifications"][0]["attempts"][0].get("dropped") is True
    sandbox.ctl("/_sandbox/faults", {"drop_notify": False})
    # a later retry gets through once the fault is cleared
    assert wait_for(lambda: sandbox.trade("fault_2")["notifications"][0]["acked"])


def test_https_port_serves_with_the_sandbox_ca_for_ip_and_localhost(sandbox):
    ctx = ssl.create_default_context(cafile=os.path.join(sandbox.state_dir, "ca.pem"))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                         urllib.request.ProxyHandler({}))
    for host in ("127.0.0.1", "localhost"):
        status, body = http_call(urllib.request.Request(
            "https://%s:%d/_sandbox/health" % (host, sandbox.https_port)), opener=opener)
        assert status == 200 and json.loads(body)["ok"] is True


def test_sigterm_stops_cleanly_and_keys_persist(tmp_path, keys):
    state = str(tmp_path / "state")
    first = Sandbox(state, *keys)
    with open(first.alipay_public, "rb") as handle:
        public_before = handle.read()
    assert first.stop() == 0
    assert not os.path.exists(os.path.join(state, "ready"))
    second = Sandbox(state, *keys)
    try:
        with open(second.alipay_public, "rb") as handle:
            assert handle.read() == public_before
        with open(second.alipay_private, "rb") as handle:
            assert b"BEGIN PRIVATE KEY" in handle.read()
    finally:
        assert second.stop() == 0


# ---------------------------------------------------------------------------
# refunds, refund query, late payments, faults for active query (issue 4)


def sdk_exec(node_sdk, sandbox, method, biz):
    """One call through the official SDK (signs; verifies the reply sign)."""
    out = json.loads(run_node(node_sdk, sandbox, "exec", "--method", method,
                              "--biz", json.dumps(biz)))
    assert out["ok"] is True, out
    return out["result"]


def call(sandbox, method, biz, **extra):
    """A server call signed by this test; checks the reply sign; returns the inner object."""
    status, body = sandbox.server_call(method, biz, **extra)
    assert status == 200, body
    key = method.replace(".", "_") + "_response"
    inner, envelope = reply_object(body, key)
    with open(sandbox.alipay_public, "rb") as handle:
        assert alipay_sign.rsa2_verify(handle.read(), inner, envelope["sign"]), body
    return json.loads(inner)


def paid_trade(sandbox, out_trade_no, amount, notify_url=None):
    extra = {"notify_url": notify_url} if notify_url else {}
    reply = call(sandbox, "alipay.trade.precreate", {
        "out_trade_no": out_trade_no, "total_amount": amount, "subject": "退款 refund"}, **extra)
    assert reply["code"] == "10000", reply
    return sandbox.ctl("/_sandbox/pay", {"out_trade_no": out_trade_no})


def notes_of(receiver, out_trade_no):
    return [r["fields"] for r in receiver.received if r["fields"].get("out_trade_no") == out_trade_no]


GMT_REFUND_RE = r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"


def test_sdk_refund_partial_full_idempotency_and_refund_query(node_sdk, sandbox, receiver):
    import re
    paid_trade(sandbox, "refund_sdk_1", "10.00", receiver.url)
    first = sdk_exec(node_sdk, sandbox, "alipay.trade.refund", {
        "out_trade_no": "refund_sdk_1", "refund_amount": "3.00", "out_request_no": "rq1",
        "refund_reason": "课程退款"})
    assert first["code"] == "10000" and first["fundChange"] == "Y"
    assert first["refundFee"] == "3.00" and first["outTradeNo"] == "refund_sdk_1"
    assert first["tradeNo"] == sandbox.trade("refund_sdk_1")["trade_no"]
    assert first["buyerLogonId"] and re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d",
                                                  first["gmtRefundPay"])
    again = sdk_exec(node_sdk, sandbox, "alipay.trade.refund", {
        "out_trade_no": "refund_sdk_1", "refund_amount": "3.00", "out_request_no": "rq1"})
    assert again["code"] == "10000" and again["fundChange"] == "N"
    assert again["refundFee"] == "3.00" and again["gmtRefundPay"] == first["gmtRefundPay"]
    other = sdk_exec(node_sdk, sandbox, "alipay.trade.refund", {
        "out_trade_no": "refund_sdk_1", "refund_amount": "3.01", "out_request_no": "rq1"})
    assert other["code"] == "40004" and other["subCode"] == "ACQ.INVALID_PARAMETER"
    over = sdk_exec(node_sdk, sandbox, "alipay.trade.refund", {
        "out_trade_no": "refund_sdk_1", "refund_amount": "7.01", "out_request_no": "rq2"})
    assert over["code"] == "40004" and over["subCode"] == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"

    found = sdk_exec(node_sdk, sandbox, "alipay.trade.fastpay.refund.query", {
        "out_trade_no": "refund_sdk_1", "out_request_no": "rq1"})
    assert found["code"] == "10000" and found["refundStatus"] == "REFUND_SUCCESS"
    assert found["refundAmount"] == "3.00" and found["totalAmount"] == "10.00"
    assert found["outRequestNo"] == "rq1" and found["tradeNo"] == first["tradeNo"]
    # no such refund: 10000 without refund data (Alipay's documented behaviour)
    missing = sdk_exec(node_sdk, sandbox, "alipay.trade.fastpay.refund.query", {
        "out_trade_no": "refund_sdk_1", "out_request_no": "rq_never"})
    assert missing["code"] == "10000"
    assert "refundAmount" not in missing and "refundStatus" not in missing

    # the rest: a full refund closes the trade
    full = sdk_exec(node_sdk, sandbox, "alipay.trade.refund", {
        "out_trade_no": "refund_sdk_1", "refund_amount": "7.00", "out_request_no": "rq2"})
    assert full["fundChange"] == "Y" and full["refundFee"] == "10.00"
    assert sdk_exec(node_sdk, sandbox, "alipay.trade.query", {
        "out_trade_no": "refund_sdk_1"})["tradeStatus"] == "TRADE_CLOSED"
    closed = sdk_exec(node_sdk, sandbox, "alipay.trade.refund", {
        "out_trade_no": "refund_sdk_1", "refund_amount": "0.01", "out_request_no": "rq3"})
    assert closed["code"] == "40004" and closed["subCode"] == "ACQ.TRADE_STATUS_ERROR"
    repeat = sdk_exec(node_sdk, sandbox, "alipay.trade.refund", {
        "out_trade_no": "refund_sdk_1", "refund_amount": "7.00", "out_request_no": "rq2"})
    assert repeat["fundChange"] == "N" and repeat["refundFee"] == "10.00"
    with_time = sdk_exec(node_sdk, sandbox, "alipay.trade.fastpay.refund.query", {
        "out_trade_no": "refund_sdk_1", "out_request_no": "rq2",
        "query_options": ["gmt_refund_pay"]})
    assert with_time["refundAmount"] == "7.00" and with_time["gmtRefundPay"] == full["gmtRefundPay"]

    # refund notifications: partial -> TRADE_SUCCESS, full -> TRADE_CLOSED, with refund fields
    notes = wait_for(lambda: (lambda n: n if len(n) >= 3 else None)(
        notes_of(receiver, "refund_sdk_1")))
    assert len(notes) == 3, notes
    payment, partial, whole = notes
    assert payment["trade_status"] == "TRADE_SUCCESS" and "refund_fee" not in payment
    assert partial["trade_status"] == "TRADE_SUCCESS"
    assert partial["refund_fee"] == "3.00" and partial["out_biz_no"] == "rq1"
    assert re.fullmatch(GMT_REFUND_RE, partial["gmt_refund"])
    assert partial["total_amount"] == "10.00" and partial["gmt_payment"] == payment["gmt_payment"]
    assert whole["trade_status"] == "TRADE_CLOSED"
    assert whole["refund_fee"] == "10.00" and whole["out_biz_no"] == "rq2"
    assert re.fullmatch(GMT_REFUND_RE, whole["gmt_refund"]) and whole["gmt_close"]
    assert len({n["notify_id"] for n in notes}) == 3
    for note in (partial, whole):
        assert note["notify_type"] == "trade_status_sync"
        assert sdk_check(node_sdk, sandbox, note)["valid"] is True
    trade = sandbox.trade("refund_sdk_1")
    assert trade["refund_amount"] == "10.00"
    assert [r["out_request_no"] for r in trade["refunds"]] == ["rq1", "rq2"]
    assert [n["kind"] for n in trade["notifications"]] == ["auto", "refund", "refund"]
    assert [n["out_biz_no"] for n in trade["notifications"]] == [None, "rq1", "rq2"]


def test_refund_notification_is_retried_until_success(sandbox, receiver):
    paid_trade(sandbox, "refund_retry_1", "2.00", receiver.url)
    receiver.replies = [b"fail", b"FAIL"]
    reply = call(sandbox, "alipay.trade.refund", {
        "out_trade_no": "refund_retry_1", "refund_amount": "2.00", "out_request_no": "all"})
    assert reply["fund_change"] == "Y" and reply["refund_fee"] == "2.00"
    trade = wait_for(lambda: (lambda t: t if t["notifications"][-1]["acked"] else None)(
        sandbox.trade("refund_retry_1")))
    note = trade["notifications"][-1]
    assert note["kind"] == "refund" and note["trade_status"] == "TRADE_CLOSED"
    assert [a["body"] for a in note["attempts"]] == ["fail", "FAIL", "success"]


def test_refund_refusals_unpaid_closed_unknown_and_bad_parameters(sandbox):
    call(sandbox, "alipay.trade.precreate", {"out_trade_no": "refund_unpaid_1",
                                             "total_amount": "5.00", "subject": "u"})
    sandbox.ctl("/_sandbox/alipay/scan", {"out_trade_no": "refund_unpaid_1"})
    biz = {"out_trade_no": "refund_unpaid_1", "refund_amount": "1.00", "out_request_no": "r1"}
    unpaid = call(sandbox, "alipay.trade.refund", biz)
    assert unpaid["code"] == "40004" and unpaid["sub_code"] == "ACQ.TRADE_STATUS_ERROR"
    call(sandbox, "alipay.trade.close", {"out_trade_no": "refund_unpaid_1"})
    closed = call(sandbox, "alipay.trade.refund", biz)
    assert closed["sub_code"] == "ACQ.TRADE_STATUS_ERROR"
    unknown = call(sandbox, "alipay.trade.refund", dict(biz, out_trade_no="refund_nope"))
    assert unknown["code"] == "40004" and unknown["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    paid_trade(sandbox, "refund_params_1", "5.00")
    base = {"out_trade_no": "refund_params_1", "refund_amount": "1.00", "out_request_no": "r1"}
    for bad in ({"out_request_no": None}, {"refund_amount": "1.5"}, {"refund_amount": "0.00"},
                {"refund_amount": 1}, {"out_request_no": "has space"}):
        fields = {k: v for k, v in dict(base, **bad).items() if v is not None}
        reply = call(sandbox, "alipay.trade.refund", fields)
        assert reply["code"] == "40004" and reply["sub_code"] == "ACQ.INVALID_PARAMETER", bad
    by_trade_no = call(sandbox, "alipay.trade.refund", {
        "trade_no": sandbox.trade("refund_params_1")["trade_no"], "refund_amount": "1.00",
        "out_request_no": "r1"})
    assert by_trade_no["code"] == "10000" and by_trade_no["out_trade_no"] == "refund_params_1"
    query = call(sandbox, "alipay.trade.fastpay.refund.query",
                 {"out_trade_no": "refund_nope", "out_request_no": "r1"})
    assert query["code"] == "40004" and query["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    query = call(sandbox, "alipay.trade.fastpay.refund.query", {"out_trade_no": "refund_params_1"})
    assert query["sub_code"] == "ACQ.INVALID_PARAMETER"


def test_no_notify_fault_pays_silently_and_query_shows_it(sandbox, receiver):
    sandbox.ctl("/_sandbox/faults", {"no_notify": True})
    assert sandbox.ctl("/_sandbox/faults")["no_notify"] is True
    trade = paid_trade(sandbox, "no_notify_1", "4.00", receiver.url)
    assert trade["status"] == "TRADE_SUCCESS" and trade["notifications"] == []
    assert call(sandbox, "alipay.trade.query",
                {"out_trade_no": "no_notify_1"})["trade_status"] == "TRADE_SUCCESS"
    time.sleep(0.3)
    assert notes_of(receiver, "no_notify_1") == []
    sandbox.ctl("/_sandbox/faults", {"no_notify": False})
    # refunds still notify: the switch is about the payment notification
    call(sandbox, "alipay.trade.refund", {"out_trade_no": "no_notify_1", "refund_amount": "1.00",
                                          "out_request_no": "r1"})
    assert wait_for(lambda: notes_of(receiver, "no_notify_1"))[0]["out_biz_no"] == "r1"


def test_refund_timeout_executes_the_refund_and_query_settles_it(sandbox, receiver):
    paid_trade(sandbox, "refund_timeout_1", "6.00", receiver.url)
    sandbox.ctl("/_sandbox/faults", {"refund_timeout": True})
    params = sandbox.signed_params("alipay.trade.refund", {
        "out_trade_no": "refund_timeout_1", "refund_amount": "6.00", "out_request_no": "rt1"})
    req = urllib.request.Request(sandbox.gateway, method="POST",
                                 data=urllib.parse.urlencode(params).encode())
    started = time.time()
    with pytest.raises((socket.timeout, urllib.error.URLError)):
        http_call(req, timeout=1)
    assert time.time() - started < 5
    # other calls are served at once; the refund has happened
    query = call(sandbox, "alipay.trade.fastpay.refund.query",
                 {"out_trade_no": "refund_timeout_1", "out_request_no": "rt1"})
    assert query["refund_status"] == "REFUND_SUCCESS" and query["refund_amount"] == "6.00"
    assert call(sandbox, "alipay.trade.query",
                {"out_trade_no": "refund_timeout_1"})["trade_status"] == "TRADE_CLOSED"
    sandbox.ctl("/_sandbox/faults", {"refund_timeout": False})
    # the caller retries with the same out_request_no: never refunded twice
    retry = call(sandbox, "alipay.trade.refund", {
        "out_trade_no": "refund_timeout_1", "refund_amount": "6.00", "out_request_no": "rt1"})
    assert retry["fund_change"] == "N" and retry["refund_fee"] == "6.00"
    assert len(sandbox.trade("refund_timeout_1")["refunds"]) == 1
    note = wait_for(lambda: [n for n in notes_of(receiver, "refund_timeout_1")
                             if n.get("out_biz_no") == "rt1"])
    assert note[0]["trade_status"] == "TRADE_CLOSED"


def test_pay_closed_late_payment_alipay(sandbox, receiver, node_sdk):
    call(sandbox, "alipay.trade.precreate", {"out_trade_no": "late_1", "total_amount": "8.00",
                                             "subject": "late"}, notify_url=receiver.url)
    sandbox.ctl("/_sandbox/alipay/scan", {"out_trade_no": "late_1"})
    assert call(sandbox, "alipay.trade.close", {"out_trade_no": "late_1"})["code"] == "10000"
    sandbox.ctl("/_sandbox/pay", {"out_trade_no": "late_1"}, expect=409)
    trade = sandbox.ctl("/_sandbox/pay_closed", {"out_trade_no": "late_1"})
    assert trade["status"] == "TRADE_SUCCESS" and trade["channel"] == "alipay"
    assert trade["gmt_payment"] and trade["gmt_close"]
    assert call(sandbox, "alipay.trade.query",
                {"out_trade_no": "late_1"})["trade_status"] == "TRADE_SUCCESS"
    note = notes_of(receiver, "late_1")[0]
    assert note["trade_status"] == "TRADE_SUCCESS" and note["total_amount"] == "8.00"
    assert sdk_check(node_sdk, sandbox, note)["valid"] is True
    sandbox.ctl("/_sandbox/pay_closed", {"out_trade_no": "late_1"}, expect=409)
    sandbox.ctl("/_sandbox/pay_closed", {"out_trade_no": "late_nope"}, expect=404)
    sandbox.ctl("/_sandbox/pay_closed", {"out_trade_no": "late_1", "channel": "x"}, expect=400)
    # the per-provider route, and a trade that was never closed
    call(sandbox, "alipay.trade.precreate", {"out_trade_no": "late_2", "total_amount": "1.00",
                                             "subject": "late"})
    assert sandbox.ctl("/_sandbox/alipay/pay_closed",
                       {"out_trade_no": "late_2"})["status"] == "TRADE_SUCCESS"
    # a trade closed by a full refund cannot be paid again
    paid_trade(sandbox, "late_3", "1.00")
    call(sandbox, "alipay.trade.refund", {"out_trade_no": "late_3", "refund_amount": "1.00",
                                          "out_request_no": "r"})
    sandbox.ctl("/_sandbox/pay_closed", {"out_trade_no": "late_3"}, expect=409)


def test_pay_closed_needs_channel_when_both_providers_know_the_number(sandbox):
    call(sandbox, "alipay.trade.precreate", {"out_trade_no": "both_1", "total_amount": "1.00",
                                             "subject": "both"})
    fields = {"appid": "wx2421b1c4370ec43b", "mch_id": "1900000109", "nonce_str": "n1",
              "body": "both", "out_trade_no": "both_1", "total_fee": "100",
              "spbill_create_ip": "127.0.0.1", "notify_url": "http://127.0.0.1:9/n",
              "trade_type": "NATIVE", "product_id": "p"}
    text = "&".join("%s=%s" % (k, fields[k]) for k in sorted(fields)) + \
        "&key=sandboxsandboxsandboxsandbox1234"
    fields["sign"] = hashlib.md5(text.encode()).hexdigest().upper()
    xml = "<xml>" + "".join("<%s>%s</%s>" % (k, v, k) for k, v in fields.items()) + "</xml>"
    status, body = http_call(urllib.request.Request(sandbox.base + "/pay/unifiedorder",
                                                    data=xml.encode(), method="POST"))
    assert status == 200 and b"<result_code><![CDATA[SUCCESS]]>" in body, body
    sandbox.ctl("/_sandbox/pay_closed", {"out_trade_no": "both_1"}, expect=400)
    got = sandbox.ctl("/_sandbox/pay_closed", {"out_trade_no": "both_1", "channel": "wechat"})
    assert got["channel"] == "wechat" and got["trade_state"] == "SUCCESS"
    assert sandbox.trade("both_1")["status"] == "WAIT_BUYER_PAY"


def test_two_payment_numbers_of_one_order_are_both_payable(sandbox, receiver):
    for number in ("twice_1a", "twice_1b"):
        trade = paid_trade(sandbox, number, "9.90", receiver.url)
        assert trade["status"] == "TRADE_SUCCESS"
    assert {n["out_trade_no"] for n in (notes_of(receiver, "twice_1a") + notes_of(receiver, "twice_1b"))} \
        == {"twice_1a", "twice_1b"}
    assert sandbox.trade("twice_1a")["trade_no"] != sandbox.trade("twice_1b")["trade_no"]


# ---------------------------------------------------------------------------
# bills (issue 5 groundwork): a fresh sandbox so that only these trades count


def beijing_today():
    return datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8))).strftime(
        "%Y-%m-%d")


@pytest.fixture(scope="module")
def bill_box(tmp_path_factory, keys):
    state = os.path.join(str(tmp_path_factory.mktemp("billbox")), "state")
    box = Sandbox(state, *keys)
    paid_trade(box, "bill_a", "10.00")
    paid_trade(box, "bill_b", "2.50")
    call(box, "alipay.trade.refund", {"out_trade_no": "bill_b", "refund_amount": "0.50",
                                      "out_request_no": "bill_b_r1"})
    call(box, "alipay.trade.precreate", {"out_trade_no": "bill_c", "total_amount": "3.00",
                                         "subject": "unpaid, with a comma"})
    paid_trade(box, "bill_d", "20.00")
    call(box, "alipay.trade.refund", {"out_trade_no": "bill_d", "refund_amount": "20.00",
                                      "out_request_no": "bill_d_all"})
    yield box
    assert box.stop() == 0, box.log_text()


def fetch_bill(box, day, node_sdk=None):
    """Query the URL (through the SDK when given), download, unzip, decode GBK."""
    biz = {"bill_type": "trade", "bill_date": day}
    if node_sdk:
        reply = sdk_exec(node_sdk, box, "alipay.data.dataservice.bill.downloadurl.query", biz)
        url = reply["billDownloadUrl"]
    else:
        reply = call(box, "alipay.data.dataservice.bill.downloadurl.query", biz)
        assert reply["code"] == "10000", reply
        url = reply["bill_download_url"]
    assert url.startswith(box.base + "/bills/alipay/") and url.endswith(".zip")
    status, data = http_call(urllib.request.Request(url))
    assert status == 200
    archive = zipfile.ZipFile(io.BytesIO(data))
    infos = archive.infolist()
    assert len(infos) == 2
    for info in infos:
        assert not info.flag_bits & 0x800      # GBK names, no UTF-8 flag
    names = [info.filename.encode("cp437").decode("gbk") for info in infos]
    texts = [archive.read(info).decode("gbk") for info in infos]
    return url, names, texts


def parse_detail(text):
    lines = text.split("\r\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    start = next(i for i, l in enumerate(lines) if "业务明细列表" in l and "结束" not in l)
    end = next(i for i, l in enumerate(lines) if "业务明细列表结束" in l)
    header = next(csv.reader([lines[start + 1]]))
    rows = [dict(zip(header, [f.strip() for f in row]))
            for row in csv.reader(lines[start + 2:end])]
    return lines, header, rows, lines[end + 1:]


def fen(text):
    negative = text.startswith("-")
    whole, frac = text.lstrip("-").split(".")
    value = int(whole) * 100 + int(frac)
    return -value if negative else value


def test_alipay_bill_zip_rows_totals_and_sign_convention(bill_box, node_sdk):
    day = beijing_today()
    _url, names, (detail, summary) = fetch_bill(bill_box, day, node_sdk)
    stamp = day.replace("-", "")
    assert names == ["20881021778468800156_%s_业务明细.csv" % stamp,
                     "20881021778468800156_%s_业务明细(汇总).csv" % stamp]
    lines, header, rows, footer = parse_detail(detail)
    assert lines[0] == "#支付宝业务明细查询" and lines[1] == "#账号：[20881021778468800156]"
    assert lines[2].startswith("#起始日期：[%s年%s月%s日 00:00:00]" % (day[:4], day[5:7], day[8:]))
    assert header[:3] == ["支付宝交易号", "商户订单号", "业务类型"] and len(header) == 25
    assert header[11:13] == ["订单金额（元）", "商家实收（元）"] and header[21:23] == [
        "退款批次号/请求号", "服务费（元）"]
    got = [(r["商户订单号"], r["业务类型"], r["订单金额（元）"], r["商家实收（元）"],
            r["服务费（元）"], r["退款批次号/请求号"]) for r in rows]
    assert sorted(got) == sorted([
        ("bill_a", "交易", "10.00", "10.00", "-0.06", ""),
        ("bill_b", "交易", "2.50", "2.50", "-0.02", ""),      # 1.5 fen rounds half up
        ("bill_b", "退款", "2.50", "-0.50", "0.00", "bill_b_r1"),
        ("bill_d", "交易", "20.00", "20.00", "-0.12", ""),
        ("bill_d", "退款", "20.00", "-20.00", "0.12", "bill_d_all"),
    ])
    trade_a = bill_box.trade("bill_a")
    row_a = next(r for r in rows if r["商户订单号"] == "bill_a")
    assert row_a["支付宝交易号"] == trade_a["trade_no"] and row_a["完成时间"] == trade_a["gmt_payment"]
    assert row_a["创建时间"] == trade_a["gmt_create"] and row_a["商品名称"] == "退款 refund"
    assert "\t," in detail  # ids are padded with a tab, as Alipay does: readers trim
    assert "业务明细列表结束" in lines[-4] and len(footer) == 3
    assert footer[0] == "#交易合计：3笔，商家实收共32.50元，商家优惠共0.00元"
    assert footer[1] == "#退款合计：2笔，商家实收退款共-20.50元，商家优惠退款共0.00元"
    assert footer[2].startswith("#导出时间：[")
    # summary: one 合计 row; totals equal the detail rows' sums
    slines = summary.split("\r\n")
    start = next(i for i, l in enumerate(slines) if "业务汇总列表" in l)
    sheader = next(csv.reader([slines[start + 1]]))
    total = dict(zip(sheader, next(csv.reader([slines[start + 2]]))))
    assert total["门店编号"] == "合计"
    assert total["交易订单总笔数"] == "3" and total["退款订单总笔数"] == "2"
    assert total["订单金额（元）"] == "32.50" and total["商家实收（元）"] == "12.00"
    assert fen(total["商家实收（元）"]) == sum(fen(r["商家实收（元）"]) for r in rows)
    assert total["服务费（元）"] == "-0.08" == "-0.%02d" % -sum(fen(r["服务费（元）"]) for r in rows)
    assert total["实收净额（元）"] == "11.92"
    assert "业务汇总列表结束" in slines[start + 3]


def test_alipay_bill_url_expires_and_no_bill_days(bill_box):
    url, _, _ = fetch_bill(bill_box, beijing_today())
    status, _ = http_call(urllib.request.Request(url.replace(".zip", "0.zip")))
    assert status == 404
    none = call(bill_box, "alipay.data.dataservice.bill.downloadurl.query",
                {"bill_type": "trade", "bill_date": "2001-01-01"})
    assert none["code"] == "40004" and none["sub_code"] == "isp.bill_not_exist"
    for bad in ({"bill_type": "signcustomer", "bill_date": beijing_today()},
                {"bill_type": "trade", "bill_date": "20010101"},
                {"bill_type": "trade", "bill_date": "2001-02-30"}):
        reply = call(bill_box, "alipay.data.dataservice.bill.downloadurl.query", bad)
        assert reply["code"] == "40004" and reply["sub_code"] == "ACQ.INVALID_PARAMETER", bad
    month = call(bill_box, "alipay.data.dataservice.bill.downloadurl.query",
                 {"bill_type": "trade", "bill_date": beijing_today()[:7]})
    assert month["code"] == "10000"


def test_alipay_bill_discrepancy_injection(bill_box):
    day = beijing_today()
    specs = bill_box.ctl("/_sandbox/bill_faults", {
        "channel": "alipay", "date": day.replace("-", ""), "amount_mismatch": "bill_a",
        "fee_mismatch": ["bill_b"], "status_mismatch": "bill_c", "drop_row": "bill_d",
        "extra_row": True})
    assert specs == bill_box.ctl("/_sandbox/bill_faults")
    assert specs[0]["date"] == day and specs[0]["extra_row"] == [
        "SANDBOX_EXTRA_%s_1" % day.replace("-", "")]
    try:
        _, _, (detail, summary) = fetch_bill(bill_box, day)
        _, _, rows, footer = parse_detail(detail)
        by = {}
        for row in rows:
            by.setdefault(row["商户订单号"], []).append(row)
        assert [r["商家实收（元）"] for r in by["bill_a"]] == ["10.01"]     # amount mismatch
        assert [r["订单金额（元）"] for r in by["bill_a"]] == ["10.01"]
        assert sorted(r["服务费（元）"] for r in by["bill_b"]) == ["-0.03", "0.01"]  # fee + 1 fen
        assert [(r["业务类型"], r["商家实收（元）"]) for r in by["bill_c"]] == [("交易", "3.00")]
        assert by["bill_c"][0]["商品名称"] == "unpaid, with a comma"      # csv-quoted
        assert "bill_d" not in by                                        # missing at provider
        extra = by["SANDBOX_EXTRA_%s_1" % day.replace("-", "")]
        assert [(r["业务类型"], r["商家实收（元）"]) for r in extra] == [("交易", "1.00")]
        assert footer[0] == "#交易合计：4笔，商家实收共16.51元，商家优惠共0.00元"
        assert footer[1] == "#退款合计：1笔，商家实收退款共-0.50元，商家优惠退款共0.00元"
        # status mismatch on a paid trade: its payment is listed as a refund
        bill_box.ctl("/_sandbox/bill_faults", {"channel": "alipay", "date": day,
                                               "status_mismatch": "bill_a"})
        _, _, (detail, _s) = fetch_bill(bill_box, day)
        _, _, rows, _ = parse_detail(detail)
        row_a = [r for r in rows if r["商户订单号"] == "bill_a"]
        assert [(r["业务类型"], r["商家实收（元）"]) for r in row_a] == [("退款", "-10.00")]
        with pytest.raises(AssertionError):
            bill_box.ctl("/_sandbox/bill_faults", {"channel": "alipay", "date": day,
                                                   "nonsense": 1})
    finally:
        assert bill_box.ctl("/_sandbox/bill_faults", {"channel": "alipay", "date": day,
                                                      "clear": True}) == []
    _, _, (detail, _) = fetch_bill(bill_box, day)
    assert len(parse_detail(detail)[2]) == 5


def test_sdk_in_certificate_mode_accepts_the_sandbox_certificates(node_sdk, sandbox):
    """The official SDK configured in certificate mode (appCertPath,
    alipayPublicCertPath, alipayRootCertPath) computes the same SNs as the
    sandbox, the sandbox accepts them, and the SDK verifies the replies with
    the key inside the sandbox's Alipay certificate; a transfer and its query
    (certificate mode only) go through, the transfer is idempotent by
    out_biz_no."""
    certs = json.loads(urllib.request.urlopen(sandbox.base + "/_sandbox/alipay/certs").read())
    cert_args = ["--app-cert", certs["app_cert"], "--alipay-cert", certs["alipay_cert"],
                 "--alipay-root-cert", certs["alipay_root_cert"]]
    biz = json.dumps({"out_biz_no": "INTEROP-1", "trans_amount": "12.34",
                      "product_code": "TRANS_ACCOUNT_NO_PWD", "biz_scene": "DIRECT_TRANSFER",
                      "order_title": "interop", "payee_info": {"identity": "a@example.com",
                                                               "identity_type": "ALIPAY_LOGON_ID",
                                                               "name": "Zhang San"}})

    def sdk(method, body):
        cmd = ["node", node_sdk, "exec", "--gateway", sandbox.gateway, "--app-id", APP_ID,
               "--app-private-key", sandbox.app_private, *cert_args, "--method", method, "--biz", body]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    first = sdk("alipay.fund.trans.uni.transfer", biz)
    assert first["ok"], first
    assert first["sns"] == {k: certs[k] for k in ("app_cert_sn", "alipay_cert_sn", "alipay_root_cert_sn")}
    assert first["result"]["status"] == "SUCCESS" and first["result"]["outBizNo"] == "INTEROP-1"
    again = sdk("alipay.fund.trans.uni.transfer", biz)
    assert again["ok"] and again["result"]["orderId"] == first["result"]["orderId"]
    query = sdk("alipay.fund.trans.common.query",
                json.dumps({"out_biz_no": "INTEROP-1", "product_code": "TRANS_ACCOUNT_NO_PWD",
                            "biz_scene": "DIRECT_TRANSFER"}))
    assert query["ok"] and query["result"]["status"] == "SUCCESS", query
    # public-key mode: transfers are refused
    plain = json.loads(run_node(node_sdk, sandbox, "exec", "--method", "alipay.fund.trans.uni.transfer",
                                "--biz", biz))
    assert plain["ok"] is False or plain["result"].get("subCode") == "isv.cert-mode-required", plain
