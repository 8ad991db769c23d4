"""The provider sandbox (Alipay side), checked without paygate's C code.

The official npm alipay-sdk signs requests and verifies the sandbox's reply
and notification signatures with its own code; `openssl dgst` checks the
sandbox's RSA2 primitive. Further tests pin the sandbox's own behaviour
(retries, faults, the state machine) that other integration tests rely on.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_sandbox_interop.py
"""

import base64
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
            "delay_ms": 0, "http_5xx": False, "timeout": False})


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
    assert call("alipay.trade.close", {"out_trade_no": "close_1"})["code"] == "10000"
    assert call("alipay.trade.query", {"out_trade_no": "close_1"})["trade_status"] == "TRADE_CLOSED"
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
