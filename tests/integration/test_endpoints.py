"""The public endpoints under abuse and behind proxies (issue 10, items 7, 8,
9, 10, 13, 17): what the notify endpoints keep of what they refuse (cut,
hashed, rate-limited per source, pruned by cron), provider failures seen by
buyers and by the operator's log, server-to-server fields on signed links,
MD5 downgrades, the buyer's IP for WeChat H5 behind a proxy, and Alipay's
subject.

The module has its own harness (database, sandbox) in <run>/endpoints: it
runs cron and counts rejected notifications per source, which must not meet
the other modules' traffic (all of it from 127.0.0.1)."""

import hashlib
import http.client
import json
import os
import shutil
import time
import urllib.parse
import uuid

import pytest
import requests

from conftest import (API_KEY, APP_ID, ASAN_DIR, BUILD, CHECKOUT_SECRET, MOUNT, RUN, SELLER_ID,
                      TIMEOUT, WEBHOOK_SECRET, Harness, S, error_code, signed_link, unique_user,
                      wx_parse, wx_xml)

RATE_LIMIT = 5


@pytest.fixture(scope="module")
def eh(harness):
    h = Harness(run_dir=RUN / "endpoints", asan_dir=ASAN_DIR)
    try:
        h.start()
    except BaseException:
        h.stop()
        raise
    yield h
    errors = h.stop()
    assert not errors, errors


def make_stack(h, name, trusted_proxies="", reject_limit=100000, gateway=None, wx_gateway=None):
    """A lighttpd stack of the module's harness with its own [server] keys
    and gateways; the caller stops it."""
    def write(st):
        key = st.dir / "app_private_key.pem"
        shutil.copyfile(h.keys["pkcs1"], key)
        os.chmod(key, 0o600)
        wechat = h.wechat_config(sign_type="HMAC-SHA256", client_cert="", client_key="")
        if wx_gateway:
            wechat["gateway"] = wx_gateway
        S.write_config(
            st.config, base_url=st.base_url, db_port=h.db_port, log_file=st.paygate_log,
            app_id=APP_ID, gateway=gateway or h.gateway, app_private_key=key,
            alipay_public_key=h.alipay_public_key_file, seller_id=SELLER_ID, ca_file=h.ca_file,
            return_url="%s/shop" % st.base_url, api_key=API_KEY, checkout_secret=CHECKOUT_SECRET,
            storefront=True, webhook_url=h.webhooks.url, webhook_secret=WEBHOOK_SECRET,
            wechat=wechat, trusted_proxies=trusted_proxies,
            rejected_notifications_per_minute=reject_limit)
    st = S.Stack("lighttpd", h.run / "stacks" / name, build_dir=BUILD, port=S.free_port(),
                 config_writer=write, env=h.env, mount=MOUNT, fcgi_children=2,
                 registry=h.registry, asan_options=h.env["ASAN_OPTIONS"])
    st.start()
    return st


@pytest.fixture(scope="module")
def plain(eh):
    """No trusted proxies, no practical limit."""
    st = make_stack(eh, "plain")
    yield st
    st.stop()


@pytest.fixture(scope="module")
def proxied(eh):
    """Behind a trusted reverse proxy at 127.0.0.1, RATE_LIMIT rejected
    notifications stored per source and minute."""
    st = make_stack(eh, "proxied", trusted_proxies="127.0.0.1/32, 10.0.0.0/8", reject_limit=RATE_LIMIT)
    yield st
    st.stop()


@pytest.fixture(scope="module")
def no_gateway(eh):
    """Both providers' gateways point at a closed port."""
    port = S.free_port()
    st = make_stack(eh, "no-gateway", gateway="https://127.0.0.1:%d/gateway.do" % port,
                    wx_gateway="https://127.0.0.1:%d" % port)
    yield st
    st.stop()


def post_form(st, path, body, headers=None):
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
    hdrs.update(headers or {})
    return requests.post(st.base_url + path, data=body, headers=hdrs, timeout=TIMEOUT)


def by_hash(h, body):
    return h.query("SELECT id, outcome, raw_len, LENGTH(raw_body) AS stored, raw_body, raw_sha256, "
                   "source FROM notifications WHERE raw_sha256=%s ORDER BY id",
                   hashlib.sha256(body).hexdigest())


def wait_for_fresh_minute():
    """Counting is per UTC minute: start early in one, so that a handful of
    requests all fall in the same minute."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


# ------------------------------------------------------------------ item 7

def test_rejected_notification_is_kept_cut_with_its_length_and_hash(eh, plain):
    body = ("out_trade_no=%s&sign=forged&pad=" % uuid.uuid4().hex).encode() + b"x" * 20000
    r = post_form(plain, "/notify/alipay", body)
    assert r.text == "failure"
    (row,) = by_hash(eh, body)
    assert row["outcome"] == "bad_signature"
    assert row["raw_len"] == len(body)
    assert row["stored"] == 2048 and bytes(row["raw_body"]) == body[:2048]
    assert row["source"] == "127.0.0.1"


def test_accepted_notification_is_kept_whole(eh, plain):
    c = eh.new_payment(plain)
    form = eh.notification(c["payment_no"], c["amount_fen"], body="y" * 5000)
    body = urllib.parse.urlencode(form).encode()
    assert post_form(plain, "/notify/alipay", body).text == "success"
    (row,) = by_hash(eh, body)
    assert row["outcome"] == "accepted"
    assert row["raw_len"] == len(body) == row["stored"] and bytes(row["raw_body"]) == body


def test_rejected_notifications_stored_per_source_and_minute_are_limited(eh, proxied):
    wait_for_fresh_minute()
    flood = "198.51.100.%d" % (int(time.time()) % 250 + 1)
    other = "203.0.113.%d" % (int(time.time()) % 250 + 1)
    bodies = [("sign=forged&n=%d&k=%s" % (i, uuid.uuid4().hex)).encode() for i in range(RATE_LIMIT + 4)]
    for b in bodies:
        r = post_form(proxied, "/notify/alipay", b, {"X-Forwarded-For": flood})
        assert r.text == "failure"
    stored = [b for b in bodies if by_hash(eh, b)]
    assert stored == bodies[:RATE_LIMIT], "stored %d of %d" % (len(stored), len(bodies))
    assert all(by_hash(eh, b)[0]["source"] == flood for b in stored)
    (count,) = eh.query("SELECT SUM(rejected) AS n FROM notification_sources WHERE source=%s", flood)
    assert int(count["n"]) == len(bodies)   # counted, though not stored
    # another source is not held back by the flood; wechat counts the same way
    b = ("sign=forged&k=%s" % uuid.uuid4().hex).encode()
    post_form(proxied, "/notify/alipay", b, {"X-Forwarded-For": other})
    assert by_hash(eh, b)[0]["source"] == other
    xml = wx_xml({"return_code": "SUCCESS", "out_trade_no": uuid.uuid4().hex, "sign": "X"}).encode()
    r = requests.post(proxied.base_url + "/notify/wechat", data=xml, timeout=TIMEOUT,
                      headers={"Content-Type": "text/xml", "X-Forwarded-For": flood})
    assert wx_parse(r.text)["return_code"] == "FAIL"
    assert not by_hash(eh, xml)


def test_cron_prunes_old_rejected_notifications_and_keeps_accepted_ones(eh, plain):
    c = eh.new_payment(plain)
    form = eh.notification(c["payment_no"], c["amount_fen"])
    accepted = urllib.parse.urlencode(form).encode()
    assert post_form(plain, "/notify/alipay", accepted).text == "success"
    old_bad = ("sign=forged&k=%s" % uuid.uuid4().hex).encode()
    new_bad = ("sign=forged&k=%s" % uuid.uuid4().hex).encode()
    for b in (old_bad, new_bad):
        assert post_form(plain, "/notify/alipay", b).text == "failure"
    ids = [by_hash(eh, b)[0]["id"] for b in (accepted, old_bad)]
    # 91 days ago: past the default retention of 90 days
    eh.query("UPDATE notifications SET received_at = received_at - INTERVAL 91 DAY WHERE id IN (%s, %s)",
             *ids)
    eh.ctl("cron")
    assert not by_hash(eh, old_bad)
    assert by_hash(eh, new_bad)
    assert by_hash(eh, accepted)[0]["outcome"] == "accepted"


def test_retention_and_limit_keys_are_checked(eh, tmp_path):
    for key, value in (("notification_retention_days", "0"), ("rejected_notifications_per_minute", "0"),
                       ("trusted_proxies", "proxy.example.com")):
        text = eh.cli_config.read_text().replace(
            "[server]\n", "[server]\n%s = %s\n" % (key, value), 1)
        text = "\n".join(line for line in text.split("\n")
                         if not (line.startswith(key + " =") and line != "%s = %s" % (key, value)))
        path = tmp_path / ("bad-%s.ini" % key)
        path.write_text(text)
        r = eh.ctl("check-config", config=path, check=False)
        assert r.returncode != 0 and key in r.stderr + r.stdout, (key, r.stdout, r.stderr)


# ------------------------------------------------------------------ item 8

def test_provider_down_buyer_gets_a_plain_page_operator_gets_the_detail(eh, no_gateway):
    st = no_gateway
    user = unique_user("down")
    before = st.paygate_log.read_text() if st.paygate_log.exists() else ""
    r = requests.get(signed_link(st.base_url, "course-c", user, extra="&channel=alipay&method=qr"),
                     allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 502, r.text[:500]
    assert r.headers["X-Paygate-Error"] == "upstream_error"
    assert 'id="error-code">upstream_error<' in r.text
    for leak in ("httpc", "127.0.0.1", "connect", "Connection", "gateway.do"):
        assert leak not in r.text, (leak, r.text)
    # the API caller: a code and a plain message, no internal host names
    r = eh.checkout(st, channel="wechat", method="native")
    assert r.status_code == 502 and error_code(r) == "upstream_error", r.text
    assert "127.0.0.1" not in r.text and "httpc" not in r.text, r.text
    deadline = time.time() + 5
    while time.time() < deadline:
        log = st.paygate_log.read_text()[len(before):]
        if "checkout: wechat native" in log:
            break
        time.sleep(0.1)
    lines = [ln for ln in log.splitlines() if "failed at the provider" in ln]
    assert any("checkout: alipay qr" in ln and "upstream_error" in ln and "127.0.0.1" in ln
               for ln in lines), log
    assert any("checkout: wechat native" in ln and "127.0.0.1" in ln for ln in lines), log


# ------------------------------------------------------------------ item 9

@pytest.mark.parametrize("field,value", [("request_id", "shop-key-1"), ("buyer_ip", "203.0.113.5")])
def test_signed_link_refuses_server_to_server_fields(eh, plain, field, value):
    user = unique_user("link")
    link = signed_link(plain.base_url, "course-c", user, extra="&channel=alipay&method=page&%s=%s" % (field, value))
    r = requests.get(link, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 400, r.text[:300]
    assert r.headers["X-Paygate-Error"] == "invalid_field"
    assert 'id="error-code">invalid_field<' in r.text   # the buyer's page: plain words and the code
    assert not eh.query("SELECT id FROM orders WHERE user_ref=%s", user)
    # the same key stays free for the shop's backend
    if field == "request_id":
        c = eh.new_payment(plain, user=user, request_id=value + user)
        assert c["status"] == "CREATED"


# ------------------------------------------------------------------ item 10

def test_md5_notification_refused_when_hmac_is_configured(eh, plain):
    c = eh.new_payment(plain, channel="wechat", method="native")
    f = eh.wx_notification(c["payment_no"], c["amount_fen"], sign_type="MD5", with_sign_type_field=True)
    r = eh.notify_wechat(plain, f)
    assert wx_parse(r.text)["return_code"] == "FAIL", r.text
    assert eh.payment(c["payment_no"])["status"] == "CREATED"
    body = wx_xml(f).encode()
    assert by_hash(eh, body)[0]["outcome"] == "bad_signature"
    # the configured algorithm is still accepted
    f = eh.wx_notification(c["payment_no"], c["amount_fen"], sign_type="HMAC-SHA256")
    assert wx_parse(eh.notify_wechat(plain, f).text)["return_code"] == "SUCCESS"
    assert eh.payment(c["payment_no"])["status"] == "PAID"


def test_empty_signature_and_key_never_match(eh, plain):
    r = requests.get(signed_link(plain.base_url, "course-c", unique_user()).split("&sig=")[0] + "&sig=",
                     allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code in (401, 403), r.text[:300]
    r = requests.post(plain.base_url + "/checkout", data={"product": "course-c", "user": "u"},
                      headers={"Authorization": "Bearer "}, timeout=TIMEOUT)
    assert r.status_code == 401, r.text


# ------------------------------------------------------------------ item 13

def open_from(url, source_ip):
    """GET url with the connection's source address source_ip (a loopback
    alias: the buyer's phone)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT, source_address=(source_ip, 0))
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_mweb_behind_a_trusted_proxy_sends_the_buyers_ip(eh, proxied):
    user = unique_user("h5")
    r = requests.get(signed_link(proxied.base_url, "ebook-sql", user, extra="&channel=wechat&method=mweb"),
                     allow_redirects=False, timeout=TIMEOUT,
                     headers={"X-Forwarded-For": "6.6.6.6, 127.0.0.2", "User-Agent": "Mobile"})
    assert r.status_code == 302, r.text[:300]
    (o,) = eh.query("SELECT p.payment_no FROM orders o JOIN payments p ON p.order_id=o.id "
                    "WHERE o.user_ref=%s", user)
    trade = eh.wx_trade(o["payment_no"])
    assert trade["spbill_create_ip"] == "127.0.0.2"   # the hop our proxy saw, not the forged one
    scene = json.loads(trade["request"]["scene_info"])
    origin = "%s://%s" % urllib.parse.urlsplit(proxied.base_url)[:2]
    assert scene["h5_info"]["wap_url"] == origin, scene
    # the buyer's phone opens the H5 cashier: WeChat's address check passes
    status, page = open_from(r.headers["Location"], "127.0.0.2")
    assert status == 200 and 'id="pay-button"' in page, page[:500]
    # the proxy's own address would have been refused
    status, page = open_from(r.headers["Location"], "127.0.0.1")
    assert status == 403 and "网络环境未能通过安全验证" in page


def test_forwarded_for_is_not_believed_from_an_untrusted_peer(eh, plain):
    c = eh.new_payment(plain, channel="wechat", method="mweb")
    assert eh.wx_trade(c["payment_no"])["spbill_create_ip"] == "127.0.0.1"
    r = eh.checkout(plain, channel="wechat", method="mweb")
    assert r.status_code == 201
    r = requests.post(plain.base_url + "/checkout", timeout=TIMEOUT,
                      data={"product": "course-c", "user": unique_user(), "channel": "wechat",
                            "method": "mweb"},
                      headers={"Authorization": "Bearer " + API_KEY, "X-Forwarded-For": "127.0.0.9"})
    assert eh.wx_trade(r.json()["payment_no"])["spbill_create_ip"] == "127.0.0.1"


def test_api_checkout_takes_the_buyers_ip(eh, plain):
    c = eh.new_payment(plain, channel="wechat", method="mweb", buyer_ip="127.0.0.3")
    trade = eh.wx_trade(c["payment_no"])
    assert trade["spbill_create_ip"] == "127.0.0.3"
    status, _ = open_from(c["mweb_url"], "127.0.0.3")
    assert status == 200
    c = eh.new_payment(plain, channel="wechat", method="mweb", buyer_ip="2001:db8::7")
    assert eh.wx_trade(c["payment_no"])["spbill_create_ip"] == "2001:db8::7"
    for bad in ("localhost", "127.0.0.1 ", "10.0.0.0/8", "1.2.3.4.5"):
        r = eh.checkout(plain, channel="wechat", method="mweb", buyer_ip=bad)
        assert r.status_code == 400 and error_code(r) == "invalid_field", (bad, r.text)


# ------------------------------------------------------------------ item 17

def test_alipay_subject_is_sanitized_end_to_end(eh, plain):
    sku = "slash-" + uuid.uuid4().hex[:8]
    eh.ctl("product", "add", "--sku", sku, "--title", "C/C++ = fun & games? 100% <new>", "--price-fen", "500")
    c = eh.new_payment(plain, product=sku, method="qr")
    trade = eh.sandbox_trade(c["payment_no"])
    assert trade["subject"] == "C C fun games 100 new", trade
