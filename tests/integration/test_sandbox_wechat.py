"""The provider sandbox, WeChat Pay API v2 side, checked without paygate's C code.

The sandbox's sign is checked against the documented example and against
`openssl dgst`; every reply and notification sign is verified here with an
independent few-line implementation; refund req_info is decrypted with
`openssl enc`. Further tests pin the behaviour paygate's integration tests
rely on (state machine, retries, faults, mutual TLS on /secapi).

Run: /usr/bin/python3 -m pytest -q tests/integration/test_sandbox_wechat.py
"""

import datetime
import gzip
import hashlib
import hmac
import json
import os
import re
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
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANDBOX_DIR = os.path.join(ROOT, "sandbox")
SANDBOX = os.path.join(SANDBOX_DIR, "sandbox.py")
PYTHON = "/usr/bin/python3"
APPID = "wx2421b1c4370ec43b"
MCH_ID = "1900000109"
API_KEY = "sandboxsandboxsandboxsandbox1234"
MWEB_SCENE = '{"h5_info":{"type":"Wap","wap_url":"https://shop.example","wap_name":"shop"}}'
sys.path.insert(0, SANDBOX_DIR)

import wechat_sign  # noqa: E402  (the module under test)


# ---------------------------------------------------------------------------
# an independent implementation of the v2 rules, used to check the sandbox


def indep_sign(fields, key=API_KEY, sign_type="MD5"):
    text = "&".join("%s=%s" % (k, fields[k]) for k in sorted(fields, key=lambda k: k.encode())
                    if k != "sign" and fields[k] != "") + "&key=" + key
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()
    return hashlib.md5(text.encode()).hexdigest().upper()


def xml_fields(data, root="xml"):
    tree = ET.fromstring(data)
    assert tree.tag == root
    return {child.tag: child.text or "" for child in tree}


def build_xml(fields):
    return ("<xml>" + "".join("<%s><![CDATA[%s]]></%s>" % (k, v, k) for k, v in fields.items())
            + "</xml>").encode("utf-8")


# ---------------------------------------------------------------------------
# fixtures


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, check=True,
                          capture_output=True).stdout


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))


def http_call(req, timeout=30, opener=OPENER):
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


class Sandbox:
    def __init__(self, state_dir, app_public, time_scale=0.01, extra=()):
        self.state_dir = state_dir
        self.http_port = free_port()
        self.https_port = free_port()
        self.base = "http://127.0.0.1:%d" % self.http_port
        self.tls_base = "https://127.0.0.1:%d" % self.https_port
        self.log_path = os.path.join(os.path.dirname(state_dir), "sandbox-%d.log" % self.http_port)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PYTHON, SANDBOX, "--state-dir", state_dir, "--http-port", str(self.http_port),
             "--https-port", str(self.https_port), "--app-id", "2021000123456789",
             "--app-public-key", app_public, "--time-scale", str(time_scale), *extra],
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

    def path(self, name):
        return os.path.join(self.state_dir, name)

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

    def ctl(self, path, body=None, expect=200):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data,
                                     method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
        status, _, raw = http_call(req)
        assert status == expect, (path, status, raw)
        return json.loads(raw)

    def trade(self, out_trade_no):
        return self.ctl("/_sandbox/wechat/trades/" + urllib.parse.quote(out_trade_no))

    def tls_opener(self, with_cert):
        ctx = ssl.create_default_context(cafile=self.path("ca.pem"))
        if with_cert:
            ctx.load_cert_chain(self.path("wechat_apiclient_cert.pem"),
                                self.path("wechat_apiclient_key.pem"))
        return urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                           urllib.request.ProxyHandler({}))

    def call(self, path, fields, sign_type=None, key=API_KEY, raw=None, tls=None):
        """POST a signed request; returns (reply fields, raw reply bytes).
        tls: None (plain HTTP), "cert" or "nocert"."""
        if raw is None:
            fields = dict({"appid": APPID, "mch_id": MCH_ID, "nonce_str": "5K8264ILTKCH16CQ"},
                          **fields)
            if sign_type:
                fields["sign_type"] = sign_type
            fields["sign"] = indep_sign(fields, key, sign_type or "MD5")
            raw = build_xml(fields)
        base = self.base if tls is None else self.tls_base
        opener = OPENER if tls is None else self.tls_opener(tls == "cert")
        status, headers, body = http_call(urllib.request.Request(
            base + path, data=raw, method="POST", headers={"Content-Type": "text/xml"}),
            opener=opener)
        assert status == 200, (status, body)
        assert headers["Content-Type"].startswith("text/xml")
        return xml_fields(body), body

    def order(self, out_trade_no, notify_url="http://127.0.0.1:9/notify/wechat",
              sign_type=None, **extra):
        fields = {"body": "课程 Course", "out_trade_no": out_trade_no, "total_fee": "1990",
                  "spbill_create_ip": "127.0.0.1", "notify_url": notify_url,
                  "trade_type": "NATIVE", "product_id": "p1"}
        fields.update(extra)
        fields = {k: v for k, v in fields.items() if v is not None}
        reply, _ = self.call("/pay/unifiedorder", fields, sign_type)
        return reply


@pytest.fixture(scope="module")
def app_public(tmp_path_factory):
    folder = tmp_path_factory.mktemp("appkeys")
    private = str(folder / "app_private_key.pem")
    public = str(folder / "app_public_key.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", private)
    openssl("pkey", "-in", private, "-pubout", "-out", public)
    return public


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, app_public):
    state = os.path.join(str(tmp_path_factory.mktemp("wxsandbox")), "state")
    box = Sandbox(state, app_public)
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


SUCCESS_REPLY = (b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
                 b"<return_msg><![CDATA[OK]]></return_msg></xml>")
FAIL_REPLY = (b"<xml><return_code><![CDATA[FAIL]]></return_code>"
              b"<return_msg><![CDATA[busy]]></return_msg></xml>")


class Receiver:
    """A merchant notify endpoint: answers with queued bodies, records raw XML."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = []
        self.replies = []
        self.default = SUCCESS_REPLY
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append({"content_type": self.headers.get("Content-Type"),
                                              "raw": raw})
                    reply = receiver.replies.pop(0) if receiver.replies else receiver.default
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/notify/wechat" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fields(self, i):
        return xml_fields(self.received[i]["raw"])

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


def assert_signed_reply(reply, sign_type="MD5"):
    assert reply["return_code"] == "SUCCESS", reply
    assert reply["sign"] == indep_sign(reply, sign_type=sign_type), reply
    assert reply["appid"] == APPID and reply["mch_id"] == MCH_ID
    assert "sign_type" not in reply


# ---------------------------------------------------------------------------
# signing


DOC_PARAMS = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000",
              "body": "test", "nonce_str": "ibuaiVcKdpRxkhJA"}
DOC_KEY = "192006250b4c09247ec02edce69f6a2d"
DOC_STRING = ("appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100"
              "&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d")


def test_documented_sign_example_md5_and_hmac_sha256(sandbox):
    assert wechat_sign.string_to_sign(DOC_PARAMS, DOC_KEY) == DOC_STRING
    assert wechat_sign.sign(DOC_PARAMS, DOC_KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert wechat_sign.sign(DOC_PARAMS, DOC_KEY, "HMAC-SHA256") == \
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    # empty values and sign are left out; sign_type is signed
    noisy = dict(DOC_PARAMS, attach="", sign="XYZ")
    assert wechat_sign.string_to_sign(noisy, DOC_KEY) == DOC_STRING
    assert "sign_type=MD5&" in wechat_sign.string_to_sign(dict(DOC_PARAMS, sign_type="MD5"),
                                                          DOC_KEY)
    assert wechat_sign.verify(dict(DOC_PARAMS, sign="9A0A8659F005D6984697E2CA0A9CF3B7"), DOC_KEY)
    assert not wechat_sign.verify(dict(DOC_PARAMS, sign="9A0A8659F005D6984697E2CA0A9CF3B8"),
                                  DOC_KEY)
    # the control API signs the same way, with a given key
    got = sandbox.ctl("/_sandbox/wechat/sign", {"params": DOC_PARAMS, "key": DOC_KEY})
    assert got == {"string_to_sign": DOC_STRING, "sign": "9A0A8659F005D6984697E2CA0A9CF3B7",
                   "sign_type": "MD5"}
    got = sandbox.ctl("/_sandbox/wechat/sign", {"params": DOC_PARAMS, "key": DOC_KEY,
                                                "sign_type": "HMAC-SHA256"})
    assert got["sign"] == "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"


def test_sign_matches_openssl_dgst(sandbox, tmp_path):
    params = {"appid": APPID, "mch_id": MCH_ID, "body": "腾讯充值中心-QQ会员充值 & more",
              "total_fee": "1", "nonce_str": "x" * 32, "B": "upper", "a_b": "3", "ab": "4",
              "sign_type": "HMAC-SHA256", "empty": ""}
    text = wechat_sign.string_to_sign(params, API_KEY)
    assert text.startswith("B=upper&a_b=3&ab=4&appid=")
    assert text.endswith("&sign_type=HMAC-SHA256&total_fee=1&key=" + API_KEY)
    data = tmp_path / "tosign.txt"
    data.write_bytes(text.encode("utf-8"))
    md5 = openssl("dgst", "-md5", "-r", str(data)).split()[0].decode().upper()
    mac = openssl("dgst", "-sha256", "-hmac", API_KEY, "-r", str(data)).split()[0].decode().upper()
    assert wechat_sign.digest(text, API_KEY, "MD5") == md5
    assert wechat_sign.digest(text, API_KEY, "HMAC-SHA256") == mac
    assert wechat_sign.sign(params, API_KEY, "HMAC-SHA256") == mac == indep_sign(
        {k: v for k, v in params.items() if v}, sign_type="HMAC-SHA256")
    got = sandbox.ctl("/_sandbox/wechat/sign", {"params": params})
    assert got["sign_type"] == "HMAC-SHA256" and got["sign"] == mac
    assert got["string_to_sign"] == text


# ---------------------------------------------------------------------------
# unifiedorder


def test_unifiedorder_native_md5(sandbox):
    reply = sandbox.order("wx_native_1")
    assert_signed_reply(reply)
    assert reply["result_code"] == "SUCCESS" and reply["trade_type"] == "NATIVE"
    assert re.fullmatch(r"wx[A-Za-z0-9]{30}", reply["prepay_id"])
    assert re.fullmatch(r"weixin://wxpay/bizpayurl\?pr=[A-Za-z0-9]+", reply["code_url"])
    assert "mweb_url" not in reply and len(reply["nonce_str"]) <= 32
    trade = sandbox.trade("wx_native_1")
    assert trade["trade_state"] == "NOTPAY" and trade["total_fee"] == 1990
    assert trade["sign_type"] == "MD5" and trade["code_url"] == reply["code_url"]


def test_unifiedorder_jsapi_and_mweb_hmac(sandbox):
    reply = sandbox.order("wx_jsapi_1", sign_type="HMAC-SHA256", trade_type="JSAPI",
                          openid="oJSAPIopenid0000000000000001", product_id=None)
    assert_signed_reply(reply, "HMAC-SHA256")
    assert reply["result_code"] == "SUCCESS" and reply["trade_type"] == "JSAPI"
    assert "code_url" not in reply and "mweb_url" not in reply
    reply = sandbox.order("wx_mweb_1", sign_type="HMAC-SHA256", trade_type="MWEB",
                          scene_info='{"h5_info":{"type":"Wap","wap_url":"https://x.example",'
                                     '"wap_name":"shop"}}', product_id=None)
    assert_signed_reply(reply, "HMAC-SHA256")
    assert reply["mweb_url"] == "%s/wechat/mweb?prepay_id=%s" % (sandbox.base, reply["prepay_id"])
    # an MD5-signed reply would not verify as HMAC and vice versa
    assert reply["sign"] != indep_sign(reply, sign_type="MD5")


def test_bad_sign_wrong_key_and_wrong_appid_are_refused(sandbox):
    base = {"body": "b", "out_trade_no": "wx_badsign", "total_fee": "1",
            "spbill_create_ip": "127.0.0.1", "notify_url": "http://127.0.0.1:9/n",
            "trade_type": "NATIVE"}
    reply, _ = sandbox.call("/pay/unifiedorder", base, key="x" * 32)
    assert reply == {"return_code": "FAIL", "return_msg": "签名错误"}
    # an HMAC sign while the message says MD5 (and the reverse)
    fields = dict({"appid": APPID, "mch_id": MCH_ID, "nonce_str": "n1"}, **base)
    fields["sign"] = indep_sign(fields, sign_type="HMAC-SHA256")
    reply, _ = sandbox.call("/pay/unifiedorder", None, raw=build_xml(fields))
    assert reply["return_code"] == "FAIL" and reply["return_msg"] == "签名错误"
    fields = dict(fields, sign_type="HMAC-SHA256")
    fields["sign"] = indep_sign(fields, sign_type="MD5")
    reply, _ = sandbox.call("/pay/unifiedorder", None, raw=build_xml(fields))
    assert reply["return_msg"] == "签名错误"
    reply, _ = sandbox.call("/pay/unifiedorder", dict(base, appid="wx0000000000000000"))
    assert reply["return_code"] == "FAIL" and "sign" not in reply
    reply, _ = sandbox.call("/pay/unifiedorder", base, sign_type="SHA1")
    assert reply["return_code"] == "FAIL"
    sandbox.ctl("/_sandbox/wechat/trades/wx_badsign", expect=404)


@pytest.mark.parametrize("change,code", [
    ({"total_fee": "0"}, "FAIL"), ({"total_fee": "01"}, "FAIL"), ({"total_fee": "1.00"}, "FAIL"),
    ({"total_fee": "-1"}, "FAIL"), ({"out_trade_no": "x" * 33}, "FAIL"),
    ({"out_trade_no": "bad no"}, "FAIL"), ({"trade_type": "APP"}, "FAIL"),
    ({"notify_url": "http://127.0.0.1:9/n?x=1"}, "FAIL"), ({"notify_url": "ftp://h/n"}, "FAIL"),
    ({"spbill_create_ip": "localhost"}, "FAIL"), ({"body": None}, "FAIL"),
    ({"body": "字" * 43}, "FAIL"), ({"nonce_str": "n" * 33}, "FAIL"),
    ({"time_expire": "2099-01-01"}, "FAIL"), ({"fee_type": "USD"}, "FAIL"),
    ({"trade_type": "JSAPI"}, "PARAM_ERROR"),
    ({"time_expire": "20200101000000"}, "INVALID_REQUEST"),
])
def test_unifiedorder_field_checks(sandbox, change, code):
    change = dict(change)
    out_trade_no = change.pop("out_trade_no", "wx_fields_1")
    reply = sandbox.order(out_trade_no, **change)
    if code == "FAIL":
        assert reply["return_code"] == "FAIL" and "sign" not in reply, reply
    else:
        assert_signed_reply(reply)
        assert reply["result_code"] == "FAIL" and reply["err_code"] == code
    sandbox.ctl("/_sandbox/wechat/trades/wx_fields_1", expect=404)


def test_unifiedorder_accepts_the_allowed_characters_and_future_expiry(sandbox):
    reply = sandbox.order("A-z_0|9*@x", time_expire="20991231235959", total_fee="100000",
                          body="字" * 42)
    assert reply["result_code"] == "SUCCESS", reply
    assert sandbox.trade("A-z_0|9*@x")["time_expire"] == "20991231235959"


def test_same_out_trade_no_again_paid_and_closed(sandbox):
    first = sandbox.order("wx_dup_1")
    again = sandbox.order("wx_dup_1", nonce_str="other")
    assert again["result_code"] == "SUCCESS" and again["prepay_id"] == first["prepay_id"]
    assert again["code_url"] == first["code_url"]
    changed = sandbox.order("wx_dup_1", total_fee="1991")
    assert changed["result_code"] == "FAIL" and changed["err_code"] == "INVALID_REQUEST"
    changed = sandbox.order("wx_dup_1", body="another body")
    assert changed["err_code"] == "INVALID_REQUEST"
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_dup_1"})
    assert sandbox.order("wx_dup_1")["err_code"] == "ORDERPAID"
    sandbox.order("wx_dup_2")
    sandbox.ctl("/_sandbox/wechat/age", {"out_trade_no": "wx_dup_2", "seconds": 300})
    closed, _ = sandbox.call("/pay/closeorder", {"out_trade_no": "wx_dup_2"})
    assert closed["result_code"] == "SUCCESS"
    assert sandbox.order("wx_dup_2")["err_code"] == "ORDERCLOSED"


# ---------------------------------------------------------------------------
# notifications


def test_notification_retried_after_fail_then_acked_and_sign_verifies(sandbox, receiver):
    receiver.replies = [FAIL_REPLY, b"success", b"<xml><return_code>SUCC"]
    sandbox.order("wx_notify_1", notify_url=receiver.url, attach="a&b=c")
    paid = sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_notify_1"})
    assert paid["trade_state"] == "SUCCESS"
    trade = wait_for(lambda: (lambda t: t if t["notifications"][0]["acked"] else None)(
        sandbox.trade("wx_notify_1")))
    note = trade["notifications"][0]
    assert [a["acked"] for a in note["attempts"]] == [False, False, False, True]
    assert note["attempts"][0]["body"].startswith("<xml><return_code><![CDATA[FAIL")
    assert len(receiver.received) == 4
    first = receiver.received[0]
    assert first["content_type"].startswith("text/xml")
    assert b"<total_fee>1990</total_fee>" in first["raw"]
    assert b"<out_trade_no><![CDATA[wx_notify_1]]></out_trade_no>" in first["raw"]
    fields = receiver.fields(0)
    assert fields["sign"] == indep_sign(fields)
    assert "sign_type" not in fields   # the order did not name one: MD5 by default
    assert fields["return_code"] == "SUCCESS" and fields["result_code"] == "SUCCESS"
    assert fields["appid"] == APPID and fields["mch_id"] == MCH_ID
    assert fields["total_fee"] == "1990" and fields["cash_fee"] == "1990"
    assert fields["fee_type"] == "CNY" and fields["bank_type"] == "OTHERS"
    assert fields["is_subscribe"] == "N" and fields["trade_type"] == "NATIVE"
    assert fields["openid"] == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" and fields["attach"] == "a&b=c"
    assert re.fullmatch(r"4200[0-9]{24}", fields["transaction_id"])
    assert fields["transaction_id"] == trade["transaction_id"]
    assert re.fullmatch(r"20[0-9]{12}", fields["time_end"]) and fields["time_end"] == trade["time_end"]
    # each attempt gets a fresh nonce and sign; the content stays the same
    later = receiver.fields(3)
    assert later["sign"] == indep_sign(later) and later["transaction_id"] == fields["transaction_id"]


def test_hmac_order_gets_hmac_notification_with_sign_type(sandbox, receiver):
    sandbox.order("wx_notify_h", notify_url=receiver.url, sign_type="HMAC-SHA256",
                  trade_type="JSAPI", openid="oJSAPIopenid0000000000000002", product_id=None)
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_notify_h"})
    fields = receiver.fields(0)
    assert fields["sign_type"] == "HMAC-SHA256"
    assert fields["sign"] == indep_sign(fields, sign_type="HMAC-SHA256")
    assert fields["openid"] == "oJSAPIopenid0000000000000002" and fields["trade_type"] == "JSAPI"
    assert sandbox.trade("wx_notify_h")["notifications"][0]["acked"] is True


def test_notification_gives_up_after_nine_attempts(sandbox, receiver):
    receiver.default = b"<xml><return_code>FAIL</return_code></xml>"
    sandbox.order("wx_giveup", notify_url=receiver.url)
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_giveup"})
    trade = wait_for(lambda: (lambda t: t if t["notifications"][0]["gave_up"] else None)(
        sandbox.trade("wx_giveup")))
    assert len(trade["notifications"][0]["attempts"]) == 9
    assert trade["notifications"][0]["acked"] is False


def test_control_notify_overrides_sign_variants_and_raw_body(sandbox, receiver):
    sandbox.order("wx_ctl_1", notify_url=receiver.url)
    out = sandbox.ctl("/_sandbox/wechat/notify", {
        "out_trade_no": "wx_ctl_1", "overrides": {"total_fee": "1", "is_subscribe": None}})
    assert out["http_status"] == 200 and out["acked"] is True
    sent = xml_fields(out["xml"].encode())
    assert sent == receiver.fields(0) and sent == out["fields"]
    assert sent["total_fee"] == "1" and "is_subscribe" not in sent
    assert sent["sign"] == indep_sign(sent)
    out = sandbox.ctl("/_sandbox/wechat/notify", {"out_trade_no": "wx_ctl_1", "sign": "bad"})
    assert out["fields"]["sign"] != indep_sign(out["fields"])
    out = sandbox.ctl("/_sandbox/wechat/notify", {"out_trade_no": "wx_ctl_1", "sign": False})
    assert "sign" not in out["fields"]
    out = sandbox.ctl("/_sandbox/wechat/notify", {"out_trade_no": "wx_ctl_1",
                                                  "sign_type": "HMAC-SHA256"})
    assert out["fields"]["sign_type"] == "HMAC-SHA256"
    assert out["fields"]["sign"] == indep_sign(out["fields"], sign_type="HMAC-SHA256")
    # HMAC-signed but without the sign_type field (a merchant configured for HMAC)
    out = sandbox.ctl("/_sandbox/wechat/notify", {"out_trade_no": "wx_ctl_1",
                                                  "sign_type": "HMAC-SHA256",
                                                  "overrides": {"sign_type": None}})
    assert "sign_type" not in out["fields"]
    assert out["fields"]["sign"] == indep_sign(out["fields"], sign_type="HMAC-SHA256")
    out = sandbox.ctl("/_sandbox/wechat/notify", {"out_trade_no": "wx_ctl_1",
                                                  "result_code": "FAIL"})
    assert out["fields"]["result_code"] == "FAIL" and out["fields"]["err_code"]
    receiver.replies = [b"not xml"]
    out = sandbox.ctl("/_sandbox/wechat/notify", {"out_trade_no": "wx_ctl_1",
                                                  "raw_body": "<xml><probe>1</probe></xml>"})
    assert out["acked"] is False and out["body"] == "not xml"
    assert receiver.received[-1]["raw"] == b"<xml><probe>1</probe></xml>"
    # unknown trade: the message is built from the overrides
    out = sandbox.ctl("/_sandbox/wechat/notify", {
        "out_trade_no": "nope", "notify_url": receiver.url,
        "overrides": {"return_code": "SUCCESS", "out_trade_no": "nope"}})
    assert out["fields"]["sign"] == indep_sign(out["fields"])
    # manual notifications do not change the trade
    trade = sandbox.trade("wx_ctl_1")
    assert trade["trade_state"] == "NOTPAY"
    assert all(n["kind"] == "manual" for n in trade["notifications"])


def test_faults_apply_to_wechat(sandbox, receiver):
    sandbox.ctl("/_sandbox/faults", {"http_5xx": True})
    status, _, _ = http_call(urllib.request.Request(
        sandbox.base + "/pay/orderquery", data=b"<xml/>", method="POST"))
    assert status == 502
    sandbox.ctl("/_sandbox/faults", {"http_5xx": False, "timeout": True})
    started = time.time()
    with pytest.raises((socket.timeout, urllib.error.URLError)):
        http_call(urllib.request.Request(sandbox.base + "/pay/orderquery", data=b"<xml/>",
                                         method="POST"), timeout=1)
    assert time.time() - started < 5
    sandbox.ctl("/_sandbox/faults", {"timeout": False, "wrong_amount": True, "duplicate": 3})
    sandbox.order("wx_fault_1", notify_url=receiver.url, total_fee="1000")
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_fault_1"})
    assert len(receiver.received) == 3
    fields = receiver.fields(0)
    assert fields["total_fee"] == "1001" and fields["sign"] == indep_sign(fields)
    sandbox.ctl("/_sandbox/faults", {"wrong_amount": False, "duplicate": 1,
                                     "bad_signature": True})
    sandbox.order("wx_fault_2", notify_url=receiver.url)
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_fault_2"})
    fields = receiver.fields(3)
    assert fields["out_trade_no"] == "wx_fault_2" and fields["sign"] != indep_sign(fields)
    sandbox.ctl("/_sandbox/faults", {"bad_signature": False, "drop_notify": True})
    sandbox.order("wx_fault_3", notify_url=receiver.url)
    trade = sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_fault_3"})
    assert trade["notifications"][0]["attempts"][0].get("dropped") is True
    sandbox.ctl("/_sandbox/faults", {"drop_notify": False})
    assert wait_for(lambda: sandbox.trade("wx_fault_3")["notifications"][0]["acked"])


# ---------------------------------------------------------------------------
# orderquery / closeorder


def test_orderquery_and_closeorder_states(sandbox, receiver):
    sandbox.order("wx_q_1", notify_url=receiver.url)
    reply, _ = sandbox.call("/pay/orderquery", {"out_trade_no": "wx_q_1"})
    assert_signed_reply(reply)
    assert reply["trade_state"] == "NOTPAY" and reply["total_fee"] == "1990"
    assert "transaction_id" not in reply
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_q_1"})
    reply, _ = sandbox.call("/pay/orderquery", {"out_trade_no": "wx_q_1"}, "HMAC-SHA256")
    assert_signed_reply(reply, "HMAC-SHA256")
    assert reply["trade_state"] == "SUCCESS" and reply["trade_type"] == "NATIVE"
    assert reply["openid"] == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" and reply["cash_fee"] == "1990"
    assert re.fullmatch(r"20[0-9]{12}", reply["time_end"])
    by_tx, _ = sandbox.call("/pay/orderquery", {"transaction_id": reply["transaction_id"]})
    assert by_tx["out_trade_no"] == "wx_q_1" and by_tx["trade_state"] == "SUCCESS"
    missing, _ = sandbox.call("/pay/orderquery", {"out_trade_no": "wx_q_none"})
    assert_signed_reply(missing)
    assert missing["result_code"] == "FAIL" and missing["err_code"] == "ORDERNOTEXIST"
    closed, _ = sandbox.call("/pay/closeorder", {"out_trade_no": "wx_q_1"})
    assert closed["result_code"] == "FAIL" and closed["err_code"] == "ORDERPAID"
    closed, _ = sandbox.call("/pay/closeorder", {"out_trade_no": "wx_q_none"})
    assert closed["err_code"] == "ORDERNOTEXIST"
    sandbox.order("wx_q_2")
    # WeChat: not within 5 minutes of creating the order
    early, _ = sandbox.call("/pay/closeorder", {"out_trade_no": "wx_q_2"})
    assert_signed_reply(early)
    assert early["result_code"] == "FAIL" and early["err_code"] == "SYSTEMERROR", early
    assert "5分钟" in early["err_code_des"]
    sandbox.ctl("/_sandbox/wechat/age", {"out_trade_no": "wx_q_2", "seconds": 299})
    early, _ = sandbox.call("/pay/closeorder", {"out_trade_no": "wx_q_2"})
    assert early["err_code"] == "SYSTEMERROR"
    reply, _ = sandbox.call("/pay/orderquery", {"out_trade_no": "wx_q_2"})
    assert reply["trade_state"] == "NOTPAY"
    sandbox.ctl("/_sandbox/wechat/age", {"out_trade_no": "wx_q_2", "seconds": 1})
    closed, _ = sandbox.call("/pay/closeorder", {"out_trade_no": "wx_q_2"})
    assert_signed_reply(closed)
    assert closed["result_code"] == "SUCCESS"
    reply, _ = sandbox.call("/pay/orderquery", {"out_trade_no": "wx_q_2"})
    assert reply["trade_state"] == "CLOSED"
    again, _ = sandbox.call("/pay/closeorder", {"out_trade_no": "wx_q_2"})
    assert again["err_code"] == "ORDERCLOSED"
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_q_2"}, expect=409)


def test_xxe_and_doctype_requests_are_refused(sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-XXE-MARKER")
    attacks = [
        ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file://%s">]>'
         '<xml><appid>%s</appid><out_trade_no>&x;</out_trade_no></xml>' % (secret, APPID)),
        ('<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
         '<xml><appid>&b;</appid></xml>'),
        '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd"><xml><appid>x</appid></xml>',
        '<xml><appid>x</appid><nested><a>1</a></nested></xml>',
        'not xml at all',
    ]
    for body in attacks:
        reply, raw = sandbox.call("/pay/orderquery", None, raw=body.encode())
        assert reply["return_code"] == "FAIL", body
        assert b"TOP-SECRET" not in raw and b"aaaaaaaaaa" not in raw
    with pytest.raises(wechat_sign.XmlError):
        wechat_sign.parse_xml(attacks[0])


# ---------------------------------------------------------------------------
# the phone pages


def test_scan_page_pays_by_code_url(sandbox, receiver):
    reply = sandbox.order("wx_page_1", notify_url=receiver.url)
    status, _, body = http_call(urllib.request.Request(
        sandbox.base + "/wechat/scan?code_url=" + urllib.parse.quote(reply["code_url"], safe="")))
    text = body.decode()
    assert status == 200 and 'id="pay-button"' in text and "19.90" in text
    assert reply["prepay_id"] in text
    phone = http_call(urllib.request.Request(sandbox.base + "/wechat/phone"))[2].decode()
    assert 'id="pay-wx_page_1"' in phone and 'name="code_url"' in phone
    form = urllib.parse.urlencode({"code_url": reply["code_url"]}).encode()
    status, _, body = http_call(urllib.request.Request(sandbox.base + "/wechat/pay", data=form,
                                                      method="POST"))
    assert status == 200 and b'id="paid"' in body
    assert receiver.received and receiver.fields(0)["out_trade_no"] == "wx_page_1"
    assert 'id="pay-wx_page_1"' not in http_call(urllib.request.Request(
        sandbox.base + "/wechat/phone"))[2].decode()
    status, _, _ = http_call(urllib.request.Request(sandbox.base + "/wechat/pay", data=form,
                                                    method="POST"))
    assert status == 409
    status, _, _ = http_call(urllib.request.Request(
        sandbox.base + "/wechat/scan?code_url=weixin%3A%2F%2Fwxpay%2Fbizpayurl%3Fpr%3Dnope"))
    assert status == 404


def test_mweb_pays_and_redirects(sandbox, receiver):
    reply = sandbox.order("wx_page_2", notify_url=receiver.url, trade_type="MWEB",
                          product_id=None, scene_info=MWEB_SCENE)
    back = "http://127.0.0.1:9/shop/return?order=7"
    status, _, body = http_call(urllib.request.Request(
        reply["mweb_url"] + "&redirect_url=" + urllib.parse.quote(back, safe="")))
    assert status == 200 and b'id="pay-button"' in body and b"redirect_url" in body
    form = urllib.parse.urlencode({"prepay_id": reply["prepay_id"], "redirect_url": back}).encode()
    status, headers, _ = http_call(urllib.request.Request(sandbox.base + "/wechat/pay",
                                                          data=form, method="POST"))
    assert status == 302 and headers["Location"] == back
    assert sandbox.trade("wx_page_2")["trade_state"] == "SUCCESS"
    assert receiver.received  # the first attempt landed before the redirect


def test_mweb_url_lives_5_minutes_and_code_url_2_hours(sandbox):
    """WeChat: an mweb_url is good for 5 minutes, a code_url / prepay_id for
    2 hours. The trade's clock is moved with the control API."""
    mweb = sandbox.order("wx_life_1", trade_type="MWEB", product_id=None, scene_info=MWEB_SCENE)
    sandbox.ctl("/_sandbox/wechat/age", {"out_trade_no": "wx_life_1", "seconds": 299})
    assert http_call(urllib.request.Request(mweb["mweb_url"]))[0] == 200
    sandbox.ctl("/_sandbox/wechat/age", {"out_trade_no": "wx_life_1", "seconds": 2})
    status, _, body = http_call(urllib.request.Request(mweb["mweb_url"]))
    assert status == 400 and b"MWEB_URL_EXPIRED" in body
    native = sandbox.order("wx_life_2")
    scan = sandbox.base + "/wechat/scan?code_url=" + urllib.parse.quote(native["code_url"], safe="")
    sandbox.ctl("/_sandbox/wechat/age", {"out_trade_no": "wx_life_2", "seconds": 7199})
    assert http_call(urllib.request.Request(scan))[0] == 200
    sandbox.ctl("/_sandbox/wechat/age", {"out_trade_no": "wx_life_2", "seconds": 2})
    status, _, body = http_call(urllib.request.Request(scan))
    assert status == 400 and b"PREPAY_EXPIRED" in body


def test_jsapi_page_checks_the_client_paysign(sandbox):
    reply = sandbox.order("wx_page_3", trade_type="JSAPI", openid="oJSAPIopenid0000000000000003",
                          product_id=None, sign_type="HMAC-SHA256")
    client = {"appId": APPID, "timeStamp": "1700000000", "nonceStr": "abc123",
              "package": "prepay_id=" + reply["prepay_id"], "signType": "HMAC-SHA256"}
    client["paySign"] = indep_sign(client, sign_type="HMAC-SHA256")
    url = sandbox.base + "/wechat/jsapi?" + urllib.parse.urlencode(client)
    status, _, body = http_call(urllib.request.Request(url))
    assert status == 200 and b'id="pay-button"' in body
    bad = dict(client, paySign=indep_sign(client, sign_type="MD5"))
    status, _, body = http_call(urllib.request.Request(
        sandbox.base + "/wechat/jsapi?" + urllib.parse.urlencode(bad)))
    assert status == 400 and b"PAYSIGN_ERROR" in body
    status, _, body = http_call(urllib.request.Request(
        sandbox.base + "/wechat/jsapi?prepay_id=" + reply["prepay_id"]))
    assert status == 200 and b'id="pay-button"' in body


# ---------------------------------------------------------------------------
# refunds (mutual TLS) and refund notifications


def test_refund_needs_the_client_certificate(sandbox):
    sandbox.order("wx_ref_0")
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_ref_0"})
    fields = {"out_trade_no": "wx_ref_0", "out_refund_no": "r0", "total_fee": "1990",
              "refund_fee": "1"}
    for tls in ("nocert", None):
        reply, _ = sandbox.call("/secapi/pay/refund", fields, tls=tls)
        assert reply == {"return_code": "FAIL", "return_msg": "client certificate required"}
    # the HTTPS port still serves clients without a certificate elsewhere
    reply, _ = sandbox.call("/pay/orderquery", {"out_trade_no": "wx_ref_0"}, tls="nocert")
    assert reply["trade_state"] == "SUCCESS"
    reply, _ = sandbox.call("/secapi/pay/refund", fields, tls="cert")
    assert_signed_reply(reply)
    assert reply["result_code"] == "SUCCESS"
    # a certificate from another CA is refused in the handshake
    other = sandbox.state_dir + "-other"
    os.makedirs(other, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + MCH_ID,
            "-keyout", other + "/k.pem", "-out", other + "/c.pem", "-days", "2")
    ctx = ssl.create_default_context(cafile=sandbox.path("ca.pem"))
    ctx.load_cert_chain(other + "/c.pem", other + "/k.pem")
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                         urllib.request.ProxyHandler({}))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        http_call(urllib.request.Request(sandbox.tls_base + "/secapi/pay/refund", data=b"<xml/>",
                                         method="POST"), opener=opener)


def test_refund_flow_query_idempotency_and_notification(sandbox, receiver, tmp_path):
    sandbox.order("wx_ref_1", notify_url=receiver.url)
    paid = sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_ref_1"})
    base = {"out_trade_no": "wx_ref_1", "total_fee": "1990", "notify_url": receiver.url}
    reply, _ = sandbox.call("/secapi/pay/refund", dict(base, out_refund_no="r1", refund_fee="990"),
                            tls="cert", sign_type="HMAC-SHA256")
    assert_signed_reply(reply, "HMAC-SHA256")
    assert reply["result_code"] == "SUCCESS" and reply["refund_fee"] == "990"
    assert reply["transaction_id"] == paid["transaction_id"] and reply["out_refund_no"] == "r1"
    refund_id = reply["refund_id"]
    again, _ = sandbox.call("/secapi/pay/refund", dict(base, out_refund_no="r1", refund_fee="990"),
                            tls="cert")
    assert again["result_code"] == "SUCCESS" and again["refund_id"] == refund_id
    changed, _ = sandbox.call("/secapi/pay/refund", dict(base, out_refund_no="r1",
                                                         refund_fee="991"), tls="cert")
    assert changed["result_code"] == "FAIL" and changed["err_code"] == "INVALID_REQUEST"
    over, _ = sandbox.call("/secapi/pay/refund", dict(base, out_refund_no="r2", refund_fee="1001"),
                           tls="cert")
    assert over["result_code"] == "FAIL" and over["err_code"] == "INVALID_REQUEST"
    wrong_total, _ = sandbox.call("/secapi/pay/refund", dict(base, out_refund_no="r3",
                                                             total_fee="1", refund_fee="1"),
                                  tls="cert")
    assert wrong_total["result_code"] == "FAIL"
    missing, _ = sandbox.call("/secapi/pay/refund", dict(base, out_trade_no="wx_ref_none",
                                                         out_refund_no="r4", refund_fee="1"),
                              tls="cert")
    assert missing["err_code"] == "ORDERNOTEXIST"

    state = wait_for(lambda: (lambda r: r if r["notifications"] and r["notifications"][0]["acked"]
                              else None)(sandbox.ctl("/_sandbox/wechat/refunds/r1")))
    assert state["refund_status"] == "SUCCESS"
    query, _ = sandbox.call("/pay/refundquery", {"out_refund_no": "r1"})
    assert_signed_reply(query)
    assert query["refund_status_0"] == "SUCCESS" and query["refund_id_0"] == refund_id
    assert query["refund_count"] == "1" and query["refund_fee_0"] == "990"
    assert re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d", query["refund_success_time_0"])
    order, _ = sandbox.call("/pay/orderquery", {"out_trade_no": "wx_ref_1"})
    assert order["trade_state"] == "REFUND"
    none, _ = sandbox.call("/pay/refundquery", {"out_refund_no": "r_none"})
    assert none["err_code"] == "REFUNDNOTEXIST"

    # the refund notification: no sign, req_info decryptable with openssl
    note = [r for r in receiver.received if b"req_info" in r["raw"]][0]
    outer = xml_fields(note["raw"])
    assert set(outer) == {"return_code", "appid", "mch_id", "nonce_str", "req_info"}
    key_hex = hashlib.md5(API_KEY.encode()).hexdigest().lower().encode().hex()
    enc = tmp_path / "req_info.b64"
    enc.write_text(outer["req_info"] + "\n")
    plain = openssl("enc", "-d", "-aes-256-ecb", "-K", key_hex, "-base64", "-A", "-in", str(enc))
    inner = xml_fields(plain, root="root")
    assert inner["out_refund_no"] == "r1" and inner["refund_id"] == refund_id
    assert inner["refund_fee"] == "990" and inner["total_fee"] == "1990"
    assert inner["settlement_refund_fee"] == "990" and inner["refund_status"] == "SUCCESS"
    assert inner["transaction_id"] == paid["transaction_id"]
    assert inner["out_trade_no"] == "wx_ref_1"
    assert re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d", inner["success_time"])
    for key in ("refund_recv_accout", "refund_account", "refund_request_source"):
        assert inner[key]
    assert wechat_sign.decrypt_req_info(outer["req_info"], API_KEY).encode() == plain

    # a second partial refund up to the remaining amount, then nothing is left
    reply, _ = sandbox.call("/secapi/pay/refund", dict(base, out_refund_no="r5", refund_fee="1000"),
                            tls="cert")
    assert reply["result_code"] == "SUCCESS"
    over, _ = sandbox.call("/secapi/pay/refund", dict(base, out_refund_no="r6", refund_fee="1"),
                           tls="cert")
    assert over["err_code"] == "INVALID_REQUEST"
    wait_for(lambda: sandbox.ctl("/_sandbox/wechat/refunds/r5")["refund_status"] == "SUCCESS")
    query, _ = sandbox.call("/pay/refundquery", {"out_trade_no": "wx_ref_1"})
    assert query["refund_count"] == "2" and query["refund_fee"] == "1990"

    # control: a refund notification encrypted with another key, and overrides
    out = sandbox.ctl("/_sandbox/wechat/refund_notify", {"out_refund_no": "r1",
                                                         "api_key": "y" * 32})
    with pytest.raises(Exception):
        wechat_sign.decrypt_req_info(xml_fields(out["xml"].encode())["req_info"], API_KEY)
    out = sandbox.ctl("/_sandbox/wechat/refund_notify", {
        "out_refund_no": "r1", "overrides": {"refund_status": "REFUNDCLOSE"}})
    assert xml_fields(out["plain"].encode(), root="root")["refund_status"] == "REFUNDCLOSE"
    assert out["acked"] is True


def test_client_certificate_files_and_config(sandbox):
    cfg = sandbox.ctl("/_sandbox/wechat/config")
    assert cfg["appid"] == APPID and cfg["mch_id"] == MCH_ID and cfg["api_key"] == API_KEY
    assert cfg["client_cert"] == sandbox.path("wechat_apiclient_cert.pem")
    subject = openssl("x509", "-in", cfg["client_cert"], "-noout", "-subject").decode()
    assert ("CN = " + MCH_ID) in subject
    verify = subprocess.run(["openssl", "verify", "-CAfile", sandbox.path("ca.pem"),
                             "-purpose", "sslclient", cfg["client_cert"]], capture_output=True)
    assert verify.returncode == 0, verify.stderr
    assert oct(os.stat(cfg["client_key"]).st_mode & 0o777) == "0o600"


def test_custom_wechat_flags_and_bad_api_key(tmp_path, app_public):
    state = str(tmp_path / "state")
    box = Sandbox(state, app_public, extra=["--wechat-appid", "wx1111111111111111",
                                            "--wechat-mch-id", "1234567890",
                                            "--wechat-api-key", "K" * 32])
    try:
        fields = {"appid": "wx1111111111111111", "mch_id": "1234567890", "nonce_str": "n",
                  "out_trade_no": "nope"}
        fields["sign"] = indep_sign(fields, key="K" * 32)
        reply, _ = box.call("/pay/orderquery", None, raw=build_xml(fields))
        assert reply["err_code"] == "ORDERNOTEXIST"
        assert reply["sign"] == indep_sign(reply, key="K" * 32)
        subject = openssl("x509", "-in", box.path("wechat_apiclient_cert.pem"), "-noout",
                          "-subject").decode()
        assert "CN = 1234567890" in subject
    finally:
        assert box.stop() == 0
    done = subprocess.run([PYTHON, SANDBOX, "--state-dir", state, "--http-port", "1",
                           "--https-port", "2", "--app-id", "x", "--app-public-key", app_public,
                           "--wechat-api-key", "short"], capture_output=True, text=True)
    assert done.returncode == 2 and "wechat-api-key" in done.stderr


def test_reset_forgets_wechat_trades(tmp_path, app_public):
    box = Sandbox(str(tmp_path / "state"), app_public)
    try:
        assert box.order("wx_reset")["result_code"] == "SUCCESS"
        box.ctl("/_sandbox/reset", {})
        box.ctl("/_sandbox/wechat/trades/wx_reset", expect=404)
    finally:
        assert box.stop() == 0


# ---------------------------------------------------------------------------
# interop with an independent npm SDK (wechatpay-axios-plugin, pinned 0.9.6)

INTEROP_DIR = os.path.join(SANDBOX_DIR, "interop")


@pytest.fixture(scope="module")
def wx_sdk():
    import shutil
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the wechatpay-axios-plugin checks cannot run")
    if not os.path.isdir(os.path.join(INTEROP_DIR, "node_modules", "wechatpay-axios-plugin")):
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=INTEROP_DIR,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return os.path.join(INTEROP_DIR, "wechat_interop.js")


@pytest.fixture(scope="module")
def sdk_run(wx_sdk, sandbox):
    cmd = ["node", wx_sdk, "run", "--base", sandbox.base, "--tls-base", sandbox.tls_base,
           "--appid", APPID, "--mchid", MCH_ID, "--secret", API_KEY,
           "--cert", sandbox.path("wechat_apiclient_cert.pem"),
           "--key", sandbox.path("wechat_apiclient_key.pem"), "--ca", sandbox.path("ca.pem"),
           "--out-trade-no", "wx_sdk_1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr + "\n--- sandbox log\n" + sandbox.log_text()
    return json.loads(done.stdout)


def test_sdk_signed_requests_accepted_and_sdk_verifies_reply_signs(sdk_run):
    # the SDK's v2 client rejects a reply whose sign does not verify, so ok=True
    # means it verified the sandbox's MD5 and HMAC-SHA256 reply signs itself
    for key in ("unifiedorder_md5", "unifiedorder_hmac", "query_before", "query_after",
                "refund", "refundquery"):
        assert sdk_run[key]["ok"] is True, (key, sdk_run[key])
    assert len(sdk_run["unifiedorder_hmac"]["data"]["sign"]) == 64
    assert sdk_run["unifiedorder_md5"]["data"]["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    assert sdk_run["query_before"]["data"]["trade_state"] == "NOTPAY"
    assert sdk_run["query_after"]["data"]["trade_state"] == "SUCCESS"
    assert sdk_run["query_missing"]["data"]["err_code"] == "ORDERNOTEXIST"
    assert sdk_run["query_signed_with_other_key"]["data"] == {
        "return_code": "FAIL", "return_msg": "签名错误"}


def test_sdk_verifies_notifications_and_decrypts_refund_notification(sdk_run):
    assert sdk_run["notify_md5"]["valid"] is True and sdk_run["notify_md5"]["sign_type"] == "MD5"
    assert sdk_run["notify_hmac"]["valid"] is True
    assert sdk_run["notify_hmac"]["fields"]["sign_type"] == "HMAC-SHA256"
    assert sdk_run["tampered_changed"] is True and sdk_run["notify_tampered"] is False
    assert sdk_run["notify_content_type"].startswith("text/xml")
    inner = sdk_run["refund_notify_inner"]
    assert inner["out_refund_no"] == "wx_sdk_1_r1" and inner["refund_fee"] == "100"
    assert inner["refund_status"] == "SUCCESS"
    assert inner["refund_id"] == sdk_run["refund"]["data"]["refund_id"]
    assert "sign" not in sdk_run["refund_notify_outer"]
    assert sdk_run["refundquery"]["data"]["refund_status_0"] == "SUCCESS"


def test_sdk_check_notify_rejects_bad_sign(wx_sdk, sandbox, receiver):
    sandbox.order("wx_sdk_2", notify_url=receiver.url)
    bad = sandbox.ctl("/_sandbox/wechat/notify", {"out_trade_no": "wx_sdk_2", "sign": "bad"})
    good = sandbox.ctl("/_sandbox/wechat/notify", {"out_trade_no": "wx_sdk_2",
                                                   "sign_type": "HMAC-SHA256"})
    for out, expected in ((bad, False), (good, True)):
        done = subprocess.run(["node", wx_sdk, "check-notify", "--secret", API_KEY],
                              input=out["xml"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["valid"] is expected



# ---------------------------------------------------------------------------
# refunds refused, faults for active query, late payments (issue 4)


def signed_xml(fields, sign_type=None, key=API_KEY):
    fields = dict({"appid": APPID, "mch_id": MCH_ID, "nonce_str": "5K8264ILTKCH16CQ"}, **fields)
    if sign_type:
        fields["sign_type"] = sign_type
    fields["sign"] = indep_sign(fields, key, sign_type or "MD5")
    return build_xml(fields)


def refund_fields(out_trade_no, out_refund_no, total_fee, refund_fee, **extra):
    return dict({"out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
                 "total_fee": str(total_fee), "refund_fee": str(refund_fee)}, **extra)


def test_refund_of_an_unpaid_or_closed_trade_is_refused(sandbox):
    sandbox.order("wx_ref_unpaid")
    reply, _ = sandbox.call("/secapi/pay/refund", refund_fields("wx_ref_unpaid", "ru1", 1990, 1),
                            tls="cert")
    assert_signed_reply(reply)
    assert reply["result_code"] == "FAIL" and reply["err_code"] == "INVALID_REQUEST"
    sandbox.ctl("/_sandbox/wechat/age", {"out_trade_no": "wx_ref_unpaid", "seconds": 300})
    sandbox.call("/pay/closeorder", {"out_trade_no": "wx_ref_unpaid"})
    reply, _ = sandbox.call("/secapi/pay/refund", refund_fields("wx_ref_unpaid", "ru1", 1990, 1),
                            tls="cert")
    assert reply["err_code"] == "INVALID_REQUEST"
    sandbox.ctl("/_sandbox/wechat/refunds/ru1", expect=404)


def test_no_notify_fault_pays_silently_and_orderquery_shows_it(sandbox, receiver):
    sandbox.ctl("/_sandbox/faults", {"no_notify": True})
    sandbox.order("wx_silent_1", notify_url=receiver.url)
    trade = sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_silent_1"})
    assert trade["trade_state"] == "SUCCESS" and trade["notifications"] == []
    reply, _ = sandbox.call("/pay/orderquery", {"out_trade_no": "wx_silent_1"})
    assert reply["trade_state"] == "SUCCESS" and reply["transaction_id"] == trade["transaction_id"]
    time.sleep(0.3)
    assert receiver.received == []
    # the phone page's pay button obeys it too
    sandbox.order("wx_silent_2", notify_url=receiver.url)
    form = urllib.parse.urlencode({"prepay_id": sandbox.trade("wx_silent_2")["prepay_id"]})
    status, _, _ = http_call(urllib.request.Request(sandbox.base + "/wechat/pay",
                                                    data=form.encode(), method="POST"))
    assert status == 200 and receiver.received == []
    assert sandbox.trade("wx_silent_2")["trade_state"] == "SUCCESS"


def test_refund_timeout_executes_the_refund_and_refundquery_settles_it(sandbox, receiver):
    sandbox.order("wx_rto_1", notify_url=receiver.url)
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_rto_1"})
    sandbox.ctl("/_sandbox/faults", {"refund_timeout": True})
    body = signed_xml(refund_fields("wx_rto_1", "rto1", 1990, 1990, notify_url=receiver.url))
    req = urllib.request.Request(sandbox.tls_base + "/secapi/pay/refund", data=body,
                                 method="POST", headers={"Content-Type": "text/xml"})
    started = time.time()
    with pytest.raises((socket.timeout, urllib.error.URLError, TimeoutError)):
        http_call(req, timeout=1, opener=sandbox.tls_opener(True))
    assert time.time() - started < 5
    # other calls are served; the refund exists
    query, _ = sandbox.call("/pay/refundquery", {"out_refund_no": "rto1"})
    assert query["result_code"] == "SUCCESS" and query["refund_fee_0"] == "1990"
    refund_id = query["refund_id_0"]
    sandbox.ctl("/_sandbox/faults", {"refund_timeout": False})
    retry, _ = sandbox.call("/secapi/pay/refund",
                            refund_fields("wx_rto_1", "rto1", 1990, 1990, notify_url=receiver.url),
                            tls="cert")
    assert retry["result_code"] == "SUCCESS" and retry["refund_id"] == refund_id
    query, _ = sandbox.call("/pay/refundquery", {"out_trade_no": "wx_rto_1"})
    assert query["refund_count"] == "1" and query["refund_fee"] == "1990"
    assert wait_for(lambda: sandbox.ctl("/_sandbox/wechat/refunds/rto1")["refund_status"]
                    == "SUCCESS")


def test_pay_closed_late_payment_wechat(sandbox, receiver):
    sandbox.order("wx_late_1", notify_url=receiver.url)
    sandbox.ctl("/_sandbox/wechat/age", {"out_trade_no": "wx_late_1", "seconds": 300})
    reply, _ = sandbox.call("/pay/closeorder", {"out_trade_no": "wx_late_1"})
    assert reply["result_code"] == "SUCCESS"
    sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": "wx_late_1"}, expect=409)
    trade = sandbox.ctl("/_sandbox/pay_closed", {"out_trade_no": "wx_late_1"})
    assert trade["channel"] == "wechat" and trade["trade_state"] == "SUCCESS"
    assert trade["transaction_id"] and trade["time_end"] and trade["time_close"]
    reply, _ = sandbox.call("/pay/orderquery", {"out_trade_no": "wx_late_1"})
    assert reply["trade_state"] == "SUCCESS"
    note = receiver.fields(0)
    assert note["out_trade_no"] == "wx_late_1" and note["result_code"] == "SUCCESS"
    assert note["sign"] == indep_sign(note)
    assert note["transaction_id"] == trade["transaction_id"]
    # now refundable like any paid trade
    reply, _ = sandbox.call("/secapi/pay/refund", refund_fields("wx_late_1", "late_r1", 1990, 1990),
                            tls="cert")
    assert reply["result_code"] == "SUCCESS"
    sandbox.ctl("/_sandbox/pay_closed", {"out_trade_no": "wx_late_1"}, expect=409)
    # the per-provider route; an expired trade (closed by time_expire)
    expire = (datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8)))
              + datetime.timedelta(seconds=1)).strftime("%Y%m%d%H%M%S")
    sandbox.order("wx_late_2", time_expire=expire)
    assert wait_for(lambda: sandbox.trade("wx_late_2")["trade_state"] == "CLOSED", timeout=5)
    trade = sandbox.ctl("/_sandbox/wechat/pay_closed", {"out_trade_no": "wx_late_2",
                                                        "openid": "oLATEopenid"})
    assert trade["trade_state"] == "SUCCESS" and trade["openid"] == "oLATEopenid"
    sandbox.ctl("/_sandbox/wechat/pay_closed", {"out_trade_no": "wx_late_none"}, expect=404)


def test_two_payment_numbers_of_one_order_are_both_payable(sandbox, receiver):
    ids = set()
    for number in ("wx_twice_a", "wx_twice_b"):
        sandbox.order(number, notify_url=receiver.url)
        trade = sandbox.ctl("/_sandbox/wechat/pay", {"out_trade_no": number})
        assert trade["trade_state"] == "SUCCESS"
        ids.add(trade["transaction_id"])
    assert len(ids) == 2
    assert {receiver.fields(i)["out_trade_no"] for i in range(len(receiver.received))} == {
        "wx_twice_a", "wx_twice_b"}


# ---------------------------------------------------------------------------
# bills (issue 5 groundwork): a fresh sandbox at 1.00% so only these trades count


def beijing_day():
    return datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8))).strftime("%Y%m%d")


@pytest.fixture(scope="module")
def bill_box(tmp_path_factory, app_public):
    state = os.path.join(str(tmp_path_factory.mktemp("wxbills")), "state")
    box = Sandbox(state, app_public, extra=["--fee-rate-bp", "100"])
    for number, fee in (("wb1", 1990), ("wb2", 250), ("wb3", 300), ("wb4", 1000)):
        box.order(number, total_fee=str(fee), body="账单 bill, " + number, attach="a=" + number)
        if number != "wb3":
            box.ctl("/_sandbox/wechat/pay", {"out_trade_no": number})
    for number, fee, refund_no, refund in (("wb2", 250, "wb2_r1", 100),
                                           ("wb4", 1000, "wb4_all", 1000)):
        reply, _ = box.call("/secapi/pay/refund", refund_fields(number, refund_no, fee, refund),
                            tls="cert")
        assert reply["result_code"] == "SUCCESS"
        assert wait_for(lambda: box.ctl("/_sandbox/wechat/refunds/" + refund_no)[
            "refund_status"] == "SUCCESS")
    yield box
    assert box.stop() == 0, box.log_text()


def download_bill(box, bill_date, **extra):
    """Returns (content type, body bytes)."""
    body = signed_xml(dict({"bill_date": bill_date}, **extra))
    status, headers, data = http_call(urllib.request.Request(
        box.base + "/pay/downloadbill", data=body, method="POST",
        headers={"Content-Type": "text/xml"}))
    assert status == 200
    return headers["Content-Type"], data


def parse_wechat_bill(text):
    lines = text.split("\r\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    header = lines[0].split(",")
    assert not header[0].startswith("`")
    summary_at = next(i for i, l in enumerate(lines) if l.startswith("总交易单数"))
    rows = []
    for line in lines[1:summary_at]:
        fields = line.split(",")
        assert all(f.startswith("`") for f in fields), line
        rows.append(dict(zip(header, [f[1:] for f in fields])))
    assert len(lines) == summary_at + 2
    sheader = lines[summary_at].split(",")
    summary = dict(zip(sheader, [f[1:] for f in lines[summary_at + 1].split(",")]))
    return header, rows, summary


def yuan_fen(text):
    sign = -1 if text.startswith("-") else 1
    whole, frac = text.lstrip("-").split(".")
    assert len(frac) in (2, 5) and (len(frac) == 2 or frac[2:] == "000")
    return sign * (int(whole) * 100 + int(frac[:2]))


def test_wechat_bill_all_rows_summary_and_gzip(bill_box):
    day = beijing_day()
    ctype, data = download_bill(bill_box, day, bill_type="ALL")
    assert ctype.startswith("text/plain")
    text = data.decode("utf-8")
    header, rows, summary = parse_wechat_bill(text)
    assert len(header) == 27 and header[0] == "交易时间" and header[-1] == "费率备注"
    got = sorted((r["商户订单号"], r["交易状态"], r["应结订单金额"], r["退款金额"], r["手续费"],
                  r["订单金额"], r["申请退款金额"], r["商户退款单号"]) for r in rows)
    assert got == sorted([
        ("wb1", "SUCCESS", "19.90", "0.00", "0.20000", "19.90", "0.00", "0"),  # 19.9 fen -> 20
        ("wb2", "SUCCESS", "2.50", "0.00", "0.03000", "2.50", "0.00", "0"),    # 2.5 -> 3 (half up)
        ("wb2", "REFUND", "0.00", "1.00", "-0.01000", "0.00", "1.00", "wb2_r1"),
        ("wb4", "SUCCESS", "10.00", "0.00", "0.10000", "10.00", "0.00", "0"),
        ("wb4", "REFUND", "0.00", "10.00", "-0.10000", "0.00", "10.00", "wb4_all"),
    ])
    trade = bill_box.trade("wb1")
    row = next(r for r in rows if r["商户订单号"] == "wb1")
    assert row["微信订单号"] == trade["transaction_id"] and row["公众账号ID"] == APPID
    assert row["商户号"] == MCH_ID and row["费率"] == "1.00%" and row["货币种类"] == "CNY"
    assert row["交易时间"].replace("-", "").replace(" ", "").replace(":", "") == trade["time_end"]
    assert row["商品名称"] == "账单 bill， wb1"    # a comma inside a field becomes full-width
    assert row["商户数据包"] == "a=wb1" and row["交易类型"] == "NATIVE"
    refund = next(r for r in rows if r["商户退款单号"] == "wb4_all")
    assert refund["微信退款单号"] == bill_box.ctl("/_sandbox/wechat/refunds/wb4_all")["refund_id"]
    assert refund["退款类型"] == "ORIGINAL" and refund["退款状态"] == "SUCCESS"
    assert summary == {"总交易单数": "5", "应结订单总金额": "32.40", "退款总金额": "11.00",
                       "充值券退款总金额": "0.00", "手续费总金额": "0.22000", "订单总金额": "32.40",
                       "申请退款总金额": "11.00"}
    assert yuan_fen(summary["手续费总金额"]) == sum(yuan_fen(r["手续费"]) for r in rows)
    assert yuan_fen(summary["应结订单总金额"]) == sum(yuan_fen(r["应结订单金额"]) for r in rows)
    # gzip variant: the same text
    ctype, packed = download_bill(bill_box, day, bill_type="ALL", tar_type="GZIP")
    assert packed[:2] == b"\x1f\x8b" and gzip.decompress(packed) == data
    # bill_type absent means ALL
    assert download_bill(bill_box, day)[1] == data


def test_wechat_bill_success_and_refund_types(bill_box):
    day = beijing_day()
    header, rows, summary = parse_wechat_bill(
        download_bill(bill_box, day, bill_type="SUCCESS")[1].decode())
    assert len(header) == 20 and "退款金额" not in header
    assert sorted(r["商户订单号"] for r in rows) == ["wb1", "wb2", "wb4"]
    assert summary["总交易单数"] == "3" and summary["退款总金额"] == "0.00"
    header, rows, summary = parse_wechat_bill(
        download_bill(bill_box, day, bill_type="REFUND")[1].decode())
    assert len(header) == 29 and header[14:16] == ["退款申请时间", "退款成功时间"]
    assert sorted(r["商户退款单号"] for r in rows) == ["wb2_r1", "wb4_all"]
    assert all(r["交易状态"] == "REFUND" for r in rows)
    refund = bill_box.ctl("/_sandbox/wechat/refunds/wb2_r1")
    row = next(r for r in rows if r["商户退款单号"] == "wb2_r1")
    assert row["退款成功时间"] == refund["success_time"] and row["退款申请时间"] == refund["created"]
    time_end = bill_box.trade("wb2")["time_end"]
    assert row["交易时间"].replace("-", "").replace(" ", "").replace(":", "") == time_end
    assert summary == {"总交易单数": "2", "应结订单总金额": "0.00", "退款总金额": "11.00",
                       "充值券退款总金额": "0.00", "手续费总金额": "-0.11000", "订单总金额": "0.00",
                       "申请退款总金额": "11.00"}


def test_wechat_bill_errors(bill_box):
    for fields, msg in (({"bill_date": "20010101"}, "No Bill Exist"),
                        ({"bill_date": "2001-01-01"}, "invalid bill_date"),
                        ({"bill_date": "20010230"}, "invalid bill_date"),
                        ({"bill_date": beijing_day(), "bill_type": "NOPE"}, "invalid bill_type"),
                        ({"bill_date": beijing_day(), "tar_type": "ZIP"}, "invalid tar_type")):
        ctype, data = download_bill(bill_box, **fields)
        assert ctype.startswith("text/xml")
        reply = xml_fields(data)
        assert reply["return_code"] == "FAIL" and reply["return_msg"] == msg, reply
    bad = signed_xml({"bill_date": beijing_day()}, key="k" * 32)
    status, _, data = http_call(urllib.request.Request(bill_box.base + "/pay/downloadbill",
                                                       data=bad, method="POST"))
    assert xml_fields(data) == {"return_code": "FAIL", "return_msg": "签名错误"}


def test_wechat_bill_discrepancy_injection(bill_box):
    day = beijing_day()
    bill_box.ctl("/_sandbox/bill_faults", {
        "channel": "wechat", "date": day, "amount_mismatch": "wb1", "fee_mismatch": "wb2",
        "status_mismatch": ["wb3"], "drop_row": "wb4", "extra_row": "WX_EXTRA_1"})
    try:
        _, rows, summary = parse_wechat_bill(download_bill(bill_box, day)[1].decode())
        by = {}
        for row in rows:
            by.setdefault(row["商户订单号"], []).append(row)
        assert [(r["应结订单金额"], r["订单金额"]) for r in by["wb1"]] == [("19.91", "19.91")]
        assert sorted(r["手续费"] for r in by["wb2"]) == ["-0.02000", "0.04000"]
        assert [(r["交易状态"], r["应结订单金额"]) for r in by["wb3"]] == [("SUCCESS", "3.00")]
        assert "wb4" not in by
        assert [(r["交易状态"], r["应结订单金额"]) for r in by["WX_EXTRA_1"]] == [("SUCCESS", "1.00")]
        assert summary["总交易单数"] == "5" and summary["应结订单总金额"] == "26.41"
        # the Alipay channel of the same day is unaffected
        assert all(s["channel"] == "wechat" for s in bill_box.ctl("/_sandbox/bill_faults"))
        # status mismatch on a paid trade: its payment shows as a refund
        bill_box.ctl("/_sandbox/bill_faults", {"channel": "wechat", "date": day,
                                               "status_mismatch": "wb1"})
        _, rows, _ = parse_wechat_bill(download_bill(bill_box, day)[1].decode())
        assert [(r["交易状态"], r["退款金额"]) for r in rows if r["商户订单号"] == "wb1"] == [
            ("REFUND", "19.90")]
    finally:
        bill_box.ctl("/_sandbox/bill_faults", {"channel": "wechat", "date": day, "clear": True})
    _, rows, _ = parse_wechat_bill(download_bill(bill_box, day)[1].decode())
    assert len(rows) == 5
    bill_box.ctl("/_sandbox/reset", {})
    assert bill_box.ctl("/_sandbox/bill_faults") == []
    ctype, data = download_bill(bill_box, day)
    assert xml_fields(data)["return_msg"] == "No Bill Exist"
