"""The payee's confirmation page runs the WeChat JS-SDK's wx.config (issue 15:
inside WeChat's browser requestMerchantTransfer works only after it). The
page's signature is hex SHA1("jsapi_ticket=…&noncestr=…&timestamp=…&url=…")
over the URL the payee opened; the jsapi_ticket comes from the Official
Account ([wechat] app_secret: POST /cgi-bin/stable_token, then GET
/cgi-bin/ticket/getticket), cached in the database (wechat_mp_credentials) for
every process and host, refreshed shortly before it expires and once more with
a new token on a token error. The sandbox counts the calls and its "phone"
(POST /_sandbox/wechat_mp/jssdk_config) checks a wx.config as WeChat does."""

import base64
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import threading

import pytest
import requests

from conftest import RUN
from test_payouts_wechat import PAYOUTS
from test_payouts_wechat_confirm import BROWSER_DIR, _token, _wait, _waiting, with_mp
from test_wechat_v3 import V3

ZH_UNAVAILABLE = "暂时无法在微信中确认收款"


def _stack(harness, name, secret=True, cli=False):
    v = with_mp(V3(harness, name=name), secret)
    v.stack.start()
    if cli:
        v.cli.write_text(v.cli.read_text() + PAYOUTS)
    return v


@pytest.fixture(scope="module")
def js(harness):
    """Two stacks (own FastCGI processes) on the same database, the right secret."""
    one = _stack(harness, "wxjs1", cli=True)
    two = _stack(harness, "wxjs2")
    try:
        yield one, two
    finally:
        one.stack.stop()
        two.stack.stop()


@pytest.fixture(scope="module")
def js_bad(harness):
    v = _stack(harness, "wxjsbad", secret="wrongSecret0123456789abcdefWRONG")
    try:
        yield v
    finally:
        v.stack.stop()


@pytest.fixture(scope="module")
def js_none(harness):
    v = _stack(harness, "wxjsnone", secret=None)
    try:
        yield v
    finally:
        v.stack.stop()


def _mp(harness, **config):
    return harness.sandbox_post("/_sandbox/wechat_mp/config", config).json()


def _calls(harness):
    c = harness.sandbox_get("/_sandbox/wechat_mp/state").json()["calls"]
    return c["stable_token"], c["getticket"]


def _fresh_start(harness, expires_in=7200):
    """No cached credentials, the sandbox's all gone, counts at 0."""
    harness.query("DELETE FROM wechat_mp_credentials")
    harness.sandbox_post("/_sandbox/wechat_mp/invalidate", {"what": "both", "how": "revoke"})
    _mp(harness, expires_in=expires_in, js_domains=[], reset_calls=True)


def _url(v, batch_no):
    return "%s/payouts/%s/confirm?token=%s" % (v.stack.base_url, batch_no, _token(batch_no))


def _attrs(text):
    div = re.search(r'<div id="confirm"([^>]*)>', text).group(1)
    return {k: html.unescape(val) for k, val in re.findall(r'data-([a-z-]+)="([^"]*)"', div)}


def _phone(harness, attrs, url):
    """What the payee's WeChat says to the page's wx.config at url."""
    return harness.sandbox_post("/_sandbox/wechat_mp/jssdk_config", {
        "appId": attrs["app-id"], "timestamp": int(attrs["timestamp"]), "nonceStr": attrs["nonce"],
        "signature": attrs["signature"], "url": url, "jsApiList": ["requestMerchantTransfer"]}).json()["errMsg"]


def _cached(harness):
    return {r["kind"]: r for r in harness.query("SELECT * FROM wechat_mp_credentials")}


def _secrets_absent(harness, texts, *extra):
    rows = _cached(harness)
    values = [r["value"] for r in rows.values() if r["value"]] + list(extra)
    values.append(harness.sandbox_get("/_sandbox/wechat_mp/state").json()["app_secret"])
    for t in texts:
        for v in values:
            assert v not in t


def _logs(*vs):
    return [v.stack.paygate_log.read_text(errors="replace") for v in vs if v.stack.paygate_log.exists()]


def test_one_ticket_shared_by_page_views_and_two_stacks(harness, js):
    one, two = js
    _, _, batch_no = _waiting(harness, one)
    _fresh_start(harness)
    pages = []
    for v in (one, one, one, two, two):
        r = requests.get(_url(v, batch_no), timeout=30)
        assert r.status_code == 200 and 'data-signature="' in r.text, r.text
        pages.append((v, r))
    # one access token, one ticket, for five page views on two stacks
    assert _calls(harness) == (1, 1)
    rows = _cached(harness)
    for kind in ("access_token", "jsapi_ticket"):
        assert rows[kind]["expires_at"] - rows[kind]["fetched_at"] == 7200, rows
        assert rows[kind]["refresh_at"] - rows[kind]["fetched_at"] == 6900, rows   # 5 minutes early
    for v, r in pages:
        a = _attrs(r.text)
        assert a["app-id"] == one.cfg["appid"] and re.fullmatch(r"[0-9a-f]{40}", a["signature"]), a
        # WeChat accepts it for the page's own URL (its #fragment aside), for no other
        assert _phone(harness, a, _url(v, batch_no)) == "config:ok"
        assert _phone(harness, a, _url(v, batch_no) + "#top") == "config:ok"
        assert _phone(harness, a, _url(v, batch_no) + "&x=1") == "config:invalid signature"
        assert _phone(harness, dict(a, signature="0" * 40), _url(v, batch_no)) == "config:invalid signature"
        # the page loads the JS-SDK from its one allowed origin; the inline script is the hashed one
        assert '<script src="https://res.wx.qq.com/open/js/jweixin-1.6.0.js"></script>' in r.text
        csp = r.headers["Content-Security-Policy"]
        inline = re.search(r"<script>(.*?)</script>", r.text, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert "script-src https://res.wx.qq.com 'sha256-%s'" % digest in csp, csp
        assert "default-src 'none'" in csp and "connect-src" not in csp
    # the JS接口安全域名: a page on a domain the Official Account does not list is refused
    _mp(harness, js_domains=["pay.example.com"])
    assert _phone(harness, _attrs(pages[0][1].text), _url(one, batch_no)) == "config:invalid url domain"
    _mp(harness, js_domains=[])
    _secrets_absent(harness, [r.text for _, r in pages] + _logs(one, two))


def test_concurrent_first_views_fetch_the_ticket_once(harness, js):
    """Two stacks find no fresh ticket while a third session holds the
    ticket's row lock: both wait for it; the first to get it fetches, the
    other reads what it stored. Deterministic: the lock decides the order."""
    one, two = js
    _, _, batch_no = _waiting(harness, one)
    _fresh_start(harness)
    appid = one.cfg["appid"]
    harness.query("INSERT INTO wechat_mp_credentials (appid, kind) VALUES (%s, 'jsapi_ticket')", appid)
    holder = harness.db()
    holder.autocommit(False)
    got = {}
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT * FROM wechat_mp_credentials WHERE appid = %s AND kind = 'jsapi_ticket' FOR UPDATE",
                        (appid,))

        def view(v):
            got[v.stack.base_url] = requests.get(_url(v, batch_no), timeout=60)
        threads = [threading.Thread(target=view, args=(v,)) for v in (one, two)]
        for t in threads:
            t.start()
        _wait(lambda: harness.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST"
                                    " WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                                    "%wechat_mp_credentials%")[0]["n"] >= 2,
              "both page views waiting on the ticket's row lock")
        assert _calls(harness) == (0, 0)
    finally:
        holder.rollback()
        holder.close()
    for t in threads:
        t.join(60)
    assert _calls(harness) == (1, 1)
    for v in (one, two):
        r = got[v.stack.base_url]
        assert r.status_code == 200 and _phone(harness, _attrs(r.text), _url(v, batch_no)) == "config:ok"


def test_ticket_refreshed_shortly_before_it_expires(harness, js):
    one, two = js
    _, _, batch_no = _waiting(harness, one)
    _fresh_start(harness, expires_in=60)
    try:
        first = requests.get(_url(one, batch_no), timeout=30)
        rows = _cached(harness)
        # a 60 s ticket is used for 30 s (half of a lifetime under 10 minutes)
        assert rows["jsapi_ticket"]["expires_at"] - rows["jsapi_ticket"]["fetched_at"] == 60, rows
        assert rows["jsapi_ticket"]["refresh_at"] - rows["jsapi_ticket"]["fetched_at"] == 30, rows
        requests.get(_url(two, batch_no), timeout=30)
        assert _calls(harness) == (1, 1)
        # 31 seconds later, here and at WeChat
        harness.query("UPDATE wechat_mp_credentials SET fetched_at = fetched_at - 31, expires_at = expires_at - 31,"
                      " refresh_at = refresh_at - 31")
        harness.sandbox_post("/_sandbox/wechat_mp/invalidate", {"what": "both", "how": "expire"})
        second = requests.get(_url(two, batch_no), timeout=30)
        assert _calls(harness) == (2, 2)
        assert _phone(harness, _attrs(second.text), _url(two, batch_no)) == "config:ok"
        # the old ticket is gone at WeChat: the old page's signature no longer works
        assert _phone(harness, _attrs(first.text), _url(one, batch_no)) == "config:invalid signature"
        requests.get(_url(one, batch_no), timeout=30)
        assert _calls(harness) == (2, 2)
    finally:
        _mp(harness, expires_in=7200)


@pytest.mark.parametrize("how,errcode", [("revoke", 40001), ("expire", 42001)])
def test_token_error_fetches_a_new_token_once(harness, js, how, errcode):
    one, _ = js
    _, _, batch_no = _waiting(harness, one)
    _fresh_start(harness)
    requests.get(_url(one, batch_no), timeout=30)
    assert _calls(harness) == (1, 1)
    # WeChat drops the token paygate holds (another system forced a refresh / it expired
    # early); the ticket is due, the cached token still looks fresh
    harness.sandbox_post("/_sandbox/wechat_mp/invalidate", {"what": "token", "how": how})
    harness.query("UPDATE wechat_mp_credentials SET refresh_at = 0 WHERE kind = 'jsapi_ticket'")
    r = requests.get(_url(one, batch_no), timeout=30)
    # getticket refused with the old token, one new token, getticket again
    assert _calls(harness) == (2, 3)
    assert _phone(harness, _attrs(r.text), _url(one, batch_no)) == "config:ok"
    log = _logs(one)[0]
    assert "errcode %d" % errcode in log and "fetching a new access token" in log
    _secrets_absent(harness, [r.text] + _logs(one))


def test_wrong_app_secret_page_says_so_log_names_the_error_not_the_secret(harness, js, js_bad):
    one, _ = js
    _, _, batch_no = _waiting(harness, one)
    _fresh_start(harness)
    r = requests.get(_url(js_bad, batch_no), timeout=30)
    assert r.status_code == 200 and ZH_UNAVAILABLE in r.text, r.text
    assert '<p id="confirm-unavailable">' in r.text                 # shown, not hidden
    assert "data-signature" not in r.text and "jweixin" not in r.text
    assert _calls(harness) == (1, 0)                                  # refused at stable_token
    log = _logs(js_bad)[0]
    assert "errcode 40125" in log and "app_secret" in log, log[-2000:]
    _secrets_absent(harness, [r.text] + _logs(js_bad), "wrongSecret0123456789abcdefWRONG")
    # in English too
    r = requests.get(_url(js_bad, batch_no), timeout=30, headers={"Accept-Language": "en"})
    assert "Accepting the payout in WeChat is not available" in r.text


def test_without_app_secret_page_says_so_and_nothing_is_fetched(harness, js, js_none):
    one, _ = js
    _, _, batch_no = _waiting(harness, one)
    _fresh_start(harness)
    r = requests.get(_url(js_none, batch_no), timeout=30)
    assert r.status_code == 200 and ZH_UNAVAILABLE in r.text and '<p id="confirm-unavailable">' in r.text
    assert "data-signature" not in r.text and "jweixin" not in r.text
    assert _calls(harness) == (0, 0)
    assert "app_secret is not set" in _logs(js_none)[0]


def test_check_config_warns_when_wechat_payouts_have_no_app_secret(harness, js):
    one, _ = js
    r = harness.ctl("check-config", config=one.cli, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: [wechat] app_secret: missing" in r.stderr, r.stderr
    with_secret = RUN / "cli-wxjs-secret.ini"
    with_secret.write_text(one.cli.read_text().replace("[wechat]\n", "[wechat]\napp_secret = s3cretS3cret\n", 1))
    r = harness.ctl("check-config", config=with_secret, check=False)
    assert r.returncode == 0 and "app_secret" not in r.stderr + r.stdout, r.stderr
    bad = RUN / "cli-wxjs-badbase.ini"
    bad.write_text(one.cli.read_text().replace("[wechat]\n", "[wechat]\nmp_api_base = ftp://x\n", 1))
    r = harness.ctl("check-config", config=bad, check=False)
    assert r.returncode != 0 and "mp_api_base" in r.stdout + r.stderr


@pytest.mark.skipif(not os.access("/usr/bin/chromium", os.X_OK) or not shutil.which("node"),
                    reason="needs Debian's chromium (scripts/deps.sh) and node")
def test_browser_page_opened_on_another_host_name_cannot_confirm(harness, js):
    """The page signs for base_url; opened as localhost instead of 127.0.0.1
    (a domain that is not the configured one) WeChat refuses wx.config: the
    page says so and the bridge never runs requestMerchantTransfer."""
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip("tests/browser/node_modules missing (run the confirm browser test first)")
    one, _ = js
    cid, _, batch_no = _waiting(harness, one)
    _fresh_start(harness)
    url = _url(one, batch_no).replace("//127.0.0.1:", "//localhost:", 1)
    assert "localhost" in url
    profile = RUN / "browser" / ("payout-js-" + cid)
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    r = subprocess.run(["node", str(BROWSER_DIR / "payout_confirm.js"), "--url", url, "--sandbox",
                        harness.sandbox_url, "--user-data-dir", str(profile), "--expect", "unavailable"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180,
                       env=dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1"))
    assert r.returncode == 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout[-3000:], r.stderr[-3000:])
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["config_result"] == {"errMsg": "config:invalid signature"}, seen
    assert seen["button_disabled"] and ZH_UNAVAILABLE in seen["unavailable_text"], seen
    assert seen["invoked"] is None, seen
