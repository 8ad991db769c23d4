"""The provider sandbox, WeChat Pay API v3 side, checked without paygate's C code.

Interop: sandbox/interop/wechat_v3_interop.js drives the sandbox with the v3
client of the npm library wechatpay-axios-plugin (it signs every request and
verifies every reply by Wechatpay-Serial) and opens the notifications with
its Rsa/Formatter/AesGcm and with wechatpay-node-v3's decipher_gcm, in
public-key mode and in platform-certificate mode. The behaviour tests below
sign requests and check signatures with a few independent lines of
`cryptography` and pin what paygate's integration tests will rely on:
refusals, retries until 200/204, faults, hand-made broken notifications, and
that v2 trades are still notified as v2.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_sandbox_wechat_v3.py
"""

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANDBOX_DIR = os.path.join(ROOT, "sandbox")
INTEROP_DIR = os.path.join(SANDBOX_DIR, "interop")
SANDBOX = os.path.join(SANDBOX_DIR, "sandbox.py")
PYTHON = "/usr/bin/python3"
MCHID = "1900000109"
APPID = "wx2421b1c4370ec43b"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sandbox:
    def __init__(self, state_dir, app_public, time_scale=0.01):
        self.state_dir = state_dir
        self.http_port = free_port()
        self.base = "http://127.0.0.1:%d" % self.http_port
        self.log_path = os.path.join(os.path.dirname(state_dir), "sandbox.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PYTHON, SANDBOX, "--state-dir", state_dir, "--http-port", str(self.http_port),
             "--https-port", str(free_port()), "--app-id", "2021000123456789",
             "--app-public-key", app_public, "--time-scale", str(time_scale)],
            stdout=self.log, stderr=subprocess.STDOUT)
        ready = os.path.join(state_dir, "ready")
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(ready) and open(ready).read().strip() == str(self.proc.pid):
                break
            assert self.proc.poll() is None, self.log_text()
            time.sleep(0.05)
        self.config = self.ctl("/_sandbox/wechat_v3/config")
        with open(os.path.join(state_dir, "wechat_apiclient_key.pem"), "rb") as handle:
            self.merchant_key = serialization.load_pem_private_key(handle.read(), None)
        with open(self.config["files"]["wechatpay_public_key"], "rb") as handle:
            self.pubkey = serialization.load_pem_public_key(handle.read())
        with open(self.config["files"]["platform_cert"], "rb") as handle:
            self.platform = x509.load_pem_x509_certificate(handle.read()).public_key()

    def log_text(self):
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        self.log.close()
        return self.proc.returncode

    def ctl(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    # a v3 request signed here: SHA256withRSA over the documented message
    def call(self, method, target, body=None, key=None, serial=None, timestamp=None,
             auth=None):
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16)
        message = ("%s\n%s\n%s\n%s\n" % (method, target, ts, nonce)).encode() + data + b"\n"
        sig = base64.b64encode((key or self.merchant_key).sign(
            message, padding.PKCS1v15(), hashes.SHA256())).decode()
        header = auth or ('WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="%s",signature="%s",'
                          'timestamp="%s",serial_no="%s"' % (
                              MCHID, nonce, sig, ts, serial or self.config["merchant_serial"]))
        req = urllib.request.Request(self.base + target, data=data if method == "POST" else None,
                                     method=method, headers={
                                         "Authorization": header, "Accept": "application/json",
                                         "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


def verifies(box, headers, body):
    """Checks a reply's or notification's signature with the key its serial names."""
    serial = headers.get("Wechatpay-Serial") or headers.get("wechatpay-serial")
    get = lambda name: headers.get(name) or headers.get(name.lower())  # noqa: E731
    key = {box.config["pubkey_id"]: box.pubkey, box.config["platform_serial"]: box.platform}.get(serial)
    if key is None:
        return False
    message = ("%s\n%s\n" % (get("Wechatpay-Timestamp"), get("Wechatpay-Nonce"))).encode() + body + b"\n"
    try:
        key.verify(base64.b64decode(get("Wechatpay-Signature")), message, padding.PKCS1v15(),
                   hashes.SHA256())
    except Exception:  # noqa: BLE001
        return False
    return True


def decrypt(box, env):
    r = env["resource"]
    raw = base64.b64decode(r["ciphertext"])
    return json.loads(AESGCM(box.config["api_v3_key"].encode()).decrypt(
        r["nonce"].encode(), raw, r["associated_data"].encode()))


class Receiver:
    """A v3 notify endpoint: answers with queued statuses (default 204)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = []
        self.statuses = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with rec.lock:
                    rec.received.append({"headers": dict(self.headers), "body": raw})
                    status = rec.statuses.pop(0) if rec.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/notify/wechat" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        return list(self.received)


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("sandbox_v3"))
    public = os.path.join(ROOT, "tests", "fixtures", "keys", "app_public.pem")
    sandbox = Sandbox(os.path.join(folder, "state"), public)
    yield sandbox
    assert sandbox.stop() == 0, sandbox.log_text()


@pytest.fixture(autouse=True)
def _clean(box):
    yield
    box.ctl("/_sandbox/faults", {"drop_notify": False, "duplicate": 1, "wrong_amount": False,
                                 "bad_signature": False, "http_5xx": False, "no_notify": False,
                                 "wechat_refund_change": False})
    box.ctl("/_sandbox/wechat_v3/config", {"mode": "pubkey"})


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def native(box, no, url, total=500):
    status, headers, body = box.call("POST", "/v3/pay/transactions/native", {
        "appid": APPID, "mchid": MCHID, "description": "课程", "out_trade_no": no,
        "notify_url": url, "amount": {"total": total, "currency": "CNY"}})
    assert status == 200, body
    assert verifies(box, headers, body)
    return json.loads(body)


# ---------------------------------------------------------------------------
# interop with the npm libraries


@pytest.fixture(scope="module")
def npm_run(box):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the v3 interop checks cannot run")
    if not os.path.isdir(os.path.join(INTEROP_DIR, "node_modules", "wechatpay-node-v3")):
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=INTEROP_DIR,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(["node", os.path.join(INTEROP_DIR, "wechat_v3_interop.js"), "run",
                           "--base", box.base, "--key",
                           os.path.join(box.state_dir, "wechat_apiclient_key.pem")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + "\n--- sandbox log\n" + box.log_text()
    return json.loads(done.stdout)


def test_npm_client_signs_requests_and_verifies_every_reply(npm_run):
    assert npm_run["native"]["ok"] and npm_run["native"]["data"]["code_url"].startswith("weixin://")
    assert npm_run["jsapi"]["ok"] and npm_run["jsapi"]["data"]["prepay_id"].startswith("wx")
    assert npm_run["h5"]["ok"] and "/wechat/mweb?prepay_id=" in npm_run["h5"]["data"]["h5_url"]
    assert npm_run["query_before"]["data"]["trade_state"] == "NOTPAY"
    assert npm_run["query_missing"]["status"] == 404
    assert npm_run["query_missing"]["data"]["code"] == "ORDER_NOT_EXIST"
    assert npm_run["close_too_early"]["status"] == 500
    assert npm_run["close_too_early"]["data"]["code"] == "SYSTEM_ERROR"
    assert npm_run["close"] == {"ok": True, "status": 204, "data": ""}
    assert npm_run["other_key"]["status"] == 401
    assert npm_run["other_key"]["data"]["code"] == "SIGN_ERROR"
    after = npm_run["query_after"]["data"]
    assert after["trade_state"] == "SUCCESS" and after["amount"]["total"] == 888
    assert after["transaction_id"] and after["payer"]["openid"]
    assert npm_run["refund"]["data"]["status"] == "PROCESSING"
    assert npm_run["refund"]["data"]["amount"]["refund"] == 100
    assert npm_run["refund_query"]["data"]["status"] == "SUCCESS"


def test_npm_opens_notifications_in_both_modes(npm_run):
    cfg = npm_run["config"]
    paid = npm_run["notify_paid"]
    assert paid["verified"] and paid["serial"] == cfg["pubkey_id"]
    assert paid["event_type"] == "TRANSACTION.SUCCESS" and paid["resource_type"] == "encrypt-resource"
    assert paid["algorithm"] == "AEAD_AES_256_GCM" and paid["original_type"] == "transaction"
    assert paid["resource"]["mchid"] == cfg["mchid"] and paid["resource"]["amount"]["total"] == 888
    assert paid["same_with_node_v3"]
    assert npm_run["tampered_changed"] and not npm_run["notify_tampered_verifies"]
    refund = npm_run["notify_refund"]
    assert refund["verified"] and refund["event_type"] == "REFUND.SUCCESS"
    assert refund["resource"]["refund_status"] == "SUCCESS"
    assert refund["resource"]["amount"] == {"total": 888, "refund": 100, "payer_total": 888,
                                            "payer_refund": 100}
    plat = npm_run["notify_platform"]
    assert plat["verified"] and plat["serial"] == cfg["platform_serial"] and plat["same_with_node_v3"]


def test_npm_certificates_and_platform_mode(npm_run):
    cfg = npm_run["config"]
    assert npm_run["certificate_pem_matches"]
    assert npm_run["certificate_serial_node_v3"].upper() == cfg["platform_serial"]
    assert npm_run["platform_query"]["ok"]
    # a client that only knows the public key cannot verify platform-signed replies
    assert not npm_run["platform_query_pubkey_client"]["ok"]
    assert "Cannot found the serial" in npm_run["platform_query_pubkey_client"]["message"]


# ---------------------------------------------------------------------------
# behaviour


def test_request_refusals(box):
    target = "/v3/pay/transactions/out-trade-no/nosuchorder?mchid=" + MCHID
    assert box.call("GET", target)[0] == 404
    status, headers, body = box.call("GET", target, auth="Bearer x")
    assert status == 401 and json.loads(body)["code"] == "SIGN_ERROR"
    assert verifies(box, headers, body)   # error replies are signed too
    assert box.call("GET", target, timestamp=int(time.time()) - 301)[0] == 401
    assert box.call("GET", target, serial="0123456789ABCDEF")[0] == 401
    status, _h, body = box.call("POST", "/v3/pay/transactions/native", {
        "appid": APPID, "mchid": MCHID, "description": "d", "out_trade_no": "v3refuse01",
        "notify_url": "http://127.0.0.1:9/n", "amount": {"total": 1.5}})
    assert status == 400 and json.loads(body)["code"] == "PARAM_ERROR"
    status, _h, body = box.call("POST", "/v3/pay/transactions/jsapi", {
        "appid": APPID, "mchid": MCHID, "description": "d", "out_trade_no": "v3refuse02",
        "notify_url": "http://127.0.0.1:9/n", "amount": {"total": 1}})
    assert status == 400   # no payer.openid
    status, _h, body = box.call("POST", "/v3/pay/transactions/native", {
        "appid": "wx0000000000000000", "mchid": MCHID, "description": "d",
        "out_trade_no": "v3refuse03", "notify_url": "http://127.0.0.1:9/n", "amount": {"total": 1}})
    assert status == 400 and json.loads(body)["code"] == "APPID_MCHID_NOT_MATCH"


def test_close_paid_refund_and_states(box, receiver):
    native(box, "v3state0001", receiver.url)
    box.ctl("/_sandbox/wechat/pay", {"out_trade_no": "v3state0001"})
    status, _h, body = box.call("POST", "/v3/pay/transactions/out-trade-no/v3state0001/close",
                                {"mchid": MCHID})
    assert status == 400 and json.loads(body)["code"] == "ORDERPAID"
    status, _h, body = box.call("POST", "/v3/refund/domestic/refunds", {
        "out_trade_no": "v3state0001", "out_refund_no": "v3state0001r", "amount": {
            "refund": 501, "total": 500, "currency": "CNY"}})
    assert status == 400 and json.loads(body)["code"] == "INVALID_REQUEST"
    assert box.call("GET", "/v3/refund/domestic/refunds/none")[0] == 404


def test_notification_retried_until_2xx_and_decrypts(box, receiver):
    receiver.statuses = [500, 200]
    native(box, "v3retry0001", receiver.url, total=1234)
    box.ctl("/_sandbox/wechat/pay", {"out_trade_no": "v3retry0001"})
    got = receiver.wait(2)
    assert len(got) == 2
    time.sleep(0.3)
    assert len(receiver.received) == 2   # 200 acknowledged: no third attempt
    for note in got:
        assert verifies(box, note["headers"], note["body"])
        assert note["headers"]["Content-Type"] == "application/json"
        resource = decrypt(box, json.loads(note["body"]))
        assert resource["out_trade_no"] == "v3retry0001" and resource["amount"]["total"] == 1234
        assert resource["trade_state"] == "SUCCESS"


def test_faults_bad_signature_and_wrong_amount(box, receiver):
    native(box, "v3fault0001", receiver.url, total=300)
    box.ctl("/_sandbox/faults", {"bad_signature": True, "wrong_amount": True})
    box.ctl("/_sandbox/wechat/pay", {"out_trade_no": "v3fault0001"})
    note = receiver.wait(1)[0]
    assert not verifies(box, note["headers"], note["body"])
    assert decrypt(box, json.loads(note["body"]))["amount"]["total"] == 301
    box.ctl("/_sandbox/faults", {"http_5xx": True})
    assert box.call("GET", "/v3/pay/transactions/out-trade-no/v3fault0001?mchid=" + MCHID)[0] == 502


def test_hand_made_notifications(box, receiver):
    native(box, "v3hand00001", receiver.url)
    stale = box.ctl("/_sandbox/wechat_v3/notify", {"out_trade_no": "v3hand00001",
                                                   "timestamp": int(time.time()) - 600})
    probe = box.ctl("/_sandbox/wechat_v3/notify", {"out_trade_no": "v3hand00001",
                                                   "signature": "WECHATPAY/SIGNTEST/abc"})
    wrong_key = box.ctl("/_sandbox/wechat_v3/notify", {"out_trade_no": "v3hand00001",
                                                       "wrong_key": True})
    tamper = box.ctl("/_sandbox/wechat_v3/notify", {"out_trade_no": "v3hand00001", "tamper": True})
    other = box.ctl("/_sandbox/wechat_v3/notify", {"out_trade_no": "v3hand00001",
                                                   "overrides": {"mchid": "1900000999"}})
    platform = box.ctl("/_sandbox/wechat_v3/notify", {"out_trade_no": "v3hand00001",
                                                      "mode": "platform"})
    got = receiver.wait(6)
    by_id = {json.loads(n["body"])["id"]: n for n in got}
    n = by_id[json.loads(stale["json"])["id"]]
    assert int(n["headers"]["Wechatpay-Timestamp"]) < time.time() - 500
    assert verifies(box, n["headers"], n["body"])   # validly signed, only old
    n = by_id[json.loads(probe["json"])["id"]]
    assert n["headers"]["Wechatpay-Signature"] == "WECHATPAY/SIGNTEST/abc"
    for made in (wrong_key, tamper):
        n = by_id[json.loads(made["json"])["id"]]
        assert verifies(box, n["headers"], n["body"])
        with pytest.raises(Exception):
            decrypt(box, json.loads(n["body"]))
    n = by_id[json.loads(other["json"])["id"]]
    assert decrypt(box, json.loads(n["body"]))["mchid"] == "1900000999"
    n = by_id[json.loads(platform["json"])["id"]]
    assert n["headers"]["Wechatpay-Serial"] == box.config["platform_serial"]
    assert verifies(box, n["headers"], n["body"])


def test_refund_change_fault_notifies_abnormal(box, receiver):
    native(box, "v3abnormal1", receiver.url, total=900)
    box.ctl("/_sandbox/wechat/pay", {"out_trade_no": "v3abnormal1"})
    receiver.wait(1)
    box.ctl("/_sandbox/faults", {"wechat_refund_change": True})
    status, _h, body = box.call("POST", "/v3/refund/domestic/refunds", {
        "out_trade_no": "v3abnormal1", "out_refund_no": "v3abnormal1r", "notify_url": receiver.url,
        "amount": {"refund": 900, "total": 900, "currency": "CNY"}})
    assert status == 200, body
    got = receiver.wait(2)
    env = json.loads(got[1]["body"])
    assert env["event_type"] == "REFUND.ABNORMAL"
    assert decrypt(box, env)["refund_status"] == "ABNORMAL"
    status, headers, body = box.call("GET", "/v3/refund/domestic/refunds/v3abnormal1r")
    assert json.loads(body)["status"] == "ABNORMAL" and verifies(box, headers, body)


def test_v2_trades_are_still_notified_as_v2(box, receiver):
    """The v3 hooks in the shared notification loop leave v2 trades alone."""
    fields = {"appid": APPID, "mch_id": MCHID, "nonce_str": "n" * 16, "body": "b",
              "out_trade_no": "v2still0001", "total_fee": "7", "spbill_create_ip": "127.0.0.1",
              "notify_url": receiver.url, "trade_type": "NATIVE"}
    fields["sign"] = box.ctl("/_sandbox/wechat/sign", {"params": fields})["sign"]
    xml = "<xml>" + "".join("<%s>%s</%s>" % (k, v, k) for k, v in fields.items()) + "</xml>"
    req = urllib.request.Request(box.base + "/pay/unifiedorder", data=xml.encode(),
                                 headers={"Content-Type": "text/xml"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert b"SUCCESS" in resp.read()
    receiver.statuses = [200]
    box.ctl("/_sandbox/wechat/pay", {"out_trade_no": "v2still0001"})
    note = receiver.wait(1)[0]
    assert note["body"].startswith(b"<xml>") and "Wechatpay-Signature" not in note["headers"]


def test_late_payment_of_a_closed_v3_trade_is_notified_as_v3(box, receiver):
    native(box, "v3late00001", receiver.url, total=77)
    box.ctl("/_sandbox/wechat/age", {"out_trade_no": "v3late00001", "seconds": 400})
    status, headers, body = box.call("POST", "/v3/pay/transactions/out-trade-no/v3late00001/close",
                                     {"mchid": MCHID})
    assert status == 204 and body == b"" and verifies(box, headers, body)
    box.ctl("/_sandbox/pay_closed", {"out_trade_no": "v3late00001", "channel": "wechat"})
    note = receiver.wait(1)[0]
    assert verifies(box, note["headers"], note["body"])
    resource = decrypt(box, json.loads(note["body"]))
    assert resource["trade_state"] == "SUCCESS" and resource["amount"]["total"] == 77


def test_jsapi_page_takes_the_v3_client_object(box):
    status, _h, body = box.call("POST", "/v3/pay/transactions/jsapi", {
        "appid": APPID, "mchid": MCHID, "description": "d", "out_trade_no": "v3jsapi0001",
        "notify_url": "http://127.0.0.1:9/n", "amount": {"total": 5},
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}})
    assert status == 200
    prepay_id = json.loads(body)["prepay_id"]
    params = {"appId": APPID, "timeStamp": str(int(time.time())), "nonceStr": "n0nce",
              "package": "prepay_id=" + prepay_id, "signType": "RSA"}
    message = "".join(params[k] + "\n" for k in ("appId", "timeStamp", "nonceStr", "package"))
    params["paySign"] = base64.b64encode(box.merchant_key.sign(
        message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    url = box.base + "/wechat/jsapi?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert b"v3jsapi0001" in resp.read()
    params["nonceStr"] = "other"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(box.base + "/wechat/jsapi?" + urllib.parse.urlencode(params), timeout=10)
    assert err.value.code == 400 and b"PAYSIGN_ERROR" in err.value.read()


def test_paygate_v3_adapter_against_the_sandbox(box):
    """paygate's own C adapter (src/wechat_v3.c, through httpc) against the
    sandbox: its signed requests are accepted, the sandbox's signed replies
    verify, native/jsapi/h5, query, pay, refund (+ a refused one), refund
    query, close and /v3/certificates (tests/unit/test_wechat_v3.c,
    test_calls_against_the_sandbox)."""
    build = os.environ.get("PAYGATE_BUILD") or os.path.join(ROOT, "build")
    binary = os.path.join(build, "tests", "test_wechat_v3")
    if not os.path.exists(binary):
        pytest.skip("%s is not built (make unit)" % binary)
    env = dict(os.environ, PAYGATE_WXV3_SANDBOX=box.base, PAYGATE_WXV3_STATE=box.state_dir,
               CMOCKA_TEST_ABORT="0")
    done = subprocess.run([binary], cwd=os.path.join(ROOT, "tests", "unit"), env=env,
                          capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out + "\n--- sandbox log\n" + box.log_text()
    assert "[       OK ] test_calls_against_the_sandbox" in out, out


def test_trade_bill_signed_url_gzip_and_sha1(box, receiver):
    """GET /v3/bill/tradebill: a signed reply {hash_type SHA1, hash_value,
    download_url}; the download takes a signed GET, is gzip when asked, and
    the SHA1 is the text's (the v2 bill's format); no trades -> 400
    NO_STATEMENT_EXIST; the hash_mismatch fault breaks only the hash."""
    import gzip
    import hashlib
    native(box, "v3bill00001", receiver.url, total=1234)
    box.ctl("/_sandbox/wechat/pay", {"out_trade_no": "v3bill00001"})
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))

    def ask(date=day, tar="&tar_type=GZIP"):
        return box.call("GET", "/v3/bill/tradebill?bill_date=%s&bill_type=ALL%s" % (date, tar))

    status, headers, body = ask()
    assert status == 200 and verifies(box, headers, body), body
    ref = json.loads(body)
    assert ref["hash_type"] == "SHA1" and len(ref["hash_value"]) == 40, ref
    assert ref["download_url"].startswith(box.base + "/v3/billdownload/file?token="), ref
    target = ref["download_url"][len(box.base):]
    # the download needs the merchant's signature
    req = urllib.request.Request(ref["download_url"])
    try:
        urllib.request.urlopen(req, timeout=30)
        raise AssertionError("an unsigned download was served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    status, _h, packed = box.call("GET", target)
    assert status == 200 and packed[:2] == b"\x1f\x8b"
    text = gzip.decompress(packed)
    assert hashlib.sha1(text).hexdigest() == ref["hash_value"]
    lines = text.decode("utf-8").splitlines()
    assert lines[0].startswith("交易时间,") and any("`v3bill00001" in ln for ln in lines), lines[:3]
    assert "`12.34" in text.decode("utf-8")
    # plain text when tar_type is absent, same hash
    status, _h, body = ask(tar="")
    plain = json.loads(body)
    assert plain["hash_value"] == ref["hash_value"]
    assert box.call("GET", plain["download_url"][len(box.base):])[2] == text
    # a day without trades
    status, _h, body = ask(date="2001-01-01")
    assert status == 400 and json.loads(body)["code"] == "NO_STATEMENT_EXIST", body
    assert ask(date="20010101")[0] == 400
    # the fault: the hash no longer matches what is served
    box.ctl("/_sandbox/wechat_v3/config", {"bill_fault": "hash_mismatch"})
    try:
        bad = json.loads(ask()[2])
        served = gzip.decompress(box.call("GET", bad["download_url"][len(box.base):])[2])
        assert served == text and hashlib.sha1(served).hexdigest() != bad["hash_value"]
    finally:
        box.ctl("/_sandbox/wechat_v3/config", {"bill_fault": None})
